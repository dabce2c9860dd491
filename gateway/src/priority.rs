//! How `im rebuild` shares the CPU among its threads.
//!
//! A rebuild's writer is two threads taking turns: the main thread, which makes each
//! range's statements, and the read-model connection's thread, which runs them. Every
//! other thread works ahead of them (the log's reader, decoding, the inbox's planner,
//! freeing written ranges), up to a bounded distance. On two cores those threads took
//! turns with the writer: at each range's start, the profile showed the main thread
//! getting about a third of a core while the blocking pool freed the range before and
//! decoded the next, the connection's thread idle 15–27 ms per 20,000 positions.
//!
//! So the threads working ahead run under Linux's idle scheduling policy: whenever the
//! writer's threads wake they take the CPU at once, and the threads working ahead get
//! what they leave. They never starve: when the writer waits for them, it leaves them the
//! whole machine. (At nice 10 instead, a woken writer thread still waited out the
//! running thread's slice: `perf sched` showed 3–4 ms scheduling delays, the connection's
//! thread woken for a statement and not running.)

/// Puts the calling thread under the idle scheduling policy; for the rebuild's runtime
/// threads as they start. Threads made before the runtime (the main thread) and by the
/// main thread (the read-model connection's, the log's) keep theirs. Elsewhere than on
/// Linux a no-op.
pub fn working_ahead() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: changes the calling thread's (0) policy only; any thread may take the
        // idle policy, no privilege needed; `param` outlives the call.
        let answer = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if answer != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "a rebuild thread keeps its scheduling policy");
        }
    }
}
