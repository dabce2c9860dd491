//! The `im` binary's memory: mimalloc for Rust's allocations, and how `im rebuild`
//! tunes it for itself.

use libmimalloc_sys::{mi_free, mi_good_size, mi_malloc, mi_realloc, mi_usable_size};
use rusqlite::ffi;
use std::ffi::{c_int, c_void};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (its number in mimalloc v3's `mi_option_e`, which
/// libmimalloc-sys builds and does not name).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Before `im rebuild` opens anything, a one-shot process that frees and allocates
/// hundreds of MB a second (each range's decoded events and rows):
/// * mimalloc keeps the pages it frees. By default it hands them back to the kernel
///   10 ms later and the next range faults them in again, zeroed: `clear_page_erms`
///   under mimalloc's page allocation was 20 % of a rebuild's samples. The peak grows
///   ~10 % (to ~400 MB for 364k positions).
/// * SQLite allocates through mimalloc instead of glibc's malloc, whose per-thread arena
///   grew and shrank its heap for SQLite's page cache (4,300 `mprotect` calls and 5,000
///   more page faults per rebuild; `_int_malloc`/`_int_free` ~4 % of the samples on
///   SQLite's thread): user CPU −4 %. (A server gains nothing measurable from it and
///   holds ~40 MB more, so it keeps glibc's.)
/// * SQLite keeps no statistics of its memory (`SQLITE_CONFIG_MEMSTATUS` off): with them
///   every allocation and free took a process-wide mutex, 6.5 % of the connection's
///   thread's samples (`pthread_mutex_lock`/`unlock`); nothing here reads them.
pub fn for_rebuild() {
    // SAFETY: sets an option mimalloc reads at each purge; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    // SAFETY: before SQLite is first used (like the allocator below, refused after:
    // then the statistics stay, which costs speed only); the option takes one int.
    let _ = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
    let answer = sqlite_on_mimalloc();
    if answer != ffi::SQLITE_OK {
        tracing::warn!(code = answer, "SQLite keeps its default allocator");
    }
}

/// Makes SQLite allocate through mimalloc. Only before SQLite is first used: returns
/// SQLite's answer (`SQLITE_OK`, or `SQLITE_MISUSE` once it has started).
fn sqlite_on_mimalloc() -> c_int {
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(sqlite_malloc),
        xFree: Some(sqlite_free),
        xRealloc: Some(sqlite_realloc),
        xSize: Some(sqlite_size),
        xRoundup: Some(sqlite_roundup),
        xInit: Some(sqlite_init),
        xShutdown: Some(sqlite_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLITE_CONFIG_MALLOC copies the methods it is given; each of them keeps
    // the contract of malloc/free/realloc (SQLite never asks for a negative size).
    unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods as *const ffi::sqlite3_mem_methods) }
}

unsafe extern "C" fn sqlite_malloc(size: c_int) -> *mut c_void {
    // SAFETY: plain allocation.
    unsafe { mi_malloc(size.max(0) as usize) }
}

unsafe extern "C" fn sqlite_free(p: *mut c_void) {
    // SAFETY: `p` came from `sqlite_malloc` or `sqlite_realloc` (or is null).
    unsafe { mi_free(p) }
}

unsafe extern "C" fn sqlite_realloc(p: *mut c_void, size: c_int) -> *mut c_void {
    // SAFETY: as `sqlite_free`.
    unsafe { mi_realloc(p, size.max(0) as usize) }
}

unsafe extern "C" fn sqlite_size(p: *mut c_void) -> c_int {
    // SAFETY: as `sqlite_free`.
    unsafe { mi_usable_size(p) }.min(c_int::MAX as usize) as c_int
}

unsafe extern "C" fn sqlite_roundup(size: c_int) -> c_int {
    // SAFETY: a pure function of its argument.
    unsafe { mi_good_size(size.max(0) as usize) }.min(c_int::MAX as usize) as c_int
}

unsafe extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn sqlite_shutdown(_: *mut c_void) {}
