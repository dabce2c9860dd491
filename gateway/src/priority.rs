//! How `im rebuild` shares the CPU among its threads.
//!
//! A rebuild's writer is two threads taking turns: the main thread, which makes each
//! range's statements, and the read-model connection's thread, which runs them. Every
//! other thread works ahead of them (the log's reader, decoding, the inbox's planner,
//! freeing written ranges), up to a bounded distance. On two cores those threads took
//! turns with the writer: at each range's start, the profile showed the main thread
//! getting about a third of a core while the blocking pool freed the range before and
//! decoded the next, the connection's thread idle 15–27 ms per 20,000 positions. Run at
//! a lower priority, the threads working ahead get what the writer leaves; they never
//! starve (while the writer waits for them it leaves the whole machine to them).

/// The nice value of the threads working ahead of a rebuild's writer (0 is the
/// default; 19 the lowest).
pub const WORKING_AHEAD: i32 = 10;

/// Lowers the calling thread's priority to [`WORKING_AHEAD`]; for the rebuild's runtime
/// threads as they start. Threads made before the runtime (the main thread) and by the
/// main thread (the read-model connection's, the log's) keep theirs. Elsewhere than on
/// Linux, where priorities are per process, a no-op.
pub fn working_ahead() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority on this thread's own id
        // changes its nice value only (raising it needs no privilege).
        let answer = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, WORKING_AHEAD) };
        if answer != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "a rebuild thread keeps its priority");
        }
    }
}
