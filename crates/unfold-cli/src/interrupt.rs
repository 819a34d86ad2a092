//! Clean interrupts of a training run. The first SIGINT (Ctrl-C) or SIGTERM asks the trainer to
//! stop after the step under way ([`unfold::train::StopFlag`]): it writes a checkpoint, the
//! command prints how to resume and exits with 128 + the signal's number (130 for SIGINT, 143
//! for SIGTERM). A second signal ends the process at once.

use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

use unfold::train::StopFlag;

/// The flag the handler sets (null: no run is listening).
static FLAG: AtomicPtr<std::sync::atomic::AtomicBool> = AtomicPtr::new(std::ptr::null_mut());
/// The first signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    if SIGNAL
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // SAFETY: _exit is async-signal-safe; a second signal means "now".
        unsafe { libc::_exit(128 + sig) };
    }
    let p = FLAG.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: `p` points into the `StopFlag` that `listen` keeps alive until `Listening`
        // drops, and dropping it clears `FLAG` first; an atomic store is signal-safe.
        unsafe { (*p).store(true, Ordering::SeqCst) };
    }
}

/// While alive, SIGINT and SIGTERM set `flag` instead of killing the process.
pub struct Listening {
    flag: StopFlag,
}

impl Listening {
    /// The signal that asked the run to stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        match SIGNAL.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// The exit status for an interrupted run: 128 + the signal's number.
    pub fn exit_status(&self) -> i32 {
        128 + self.signal().unwrap_or(2)
    }

    /// The flag the trainer reads.
    pub fn flag(&self) -> StopFlag {
        self.flag.clone()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        FLAG.store(std::ptr::null_mut(), Ordering::SeqCst);
    }
}

/// Routes SIGINT and SIGTERM to a new stop flag until the returned guard drops.
pub fn listen() -> Listening {
    let flag = StopFlag::new();
    FLAG.store(
        flag.as_atomic() as *const _ as *mut std::sync::atomic::AtomicBool,
        Ordering::SeqCst,
    );
    #[cfg(unix)]
    // SAFETY: installs a handler that only touches atomics and calls _exit.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    Listening { flag }
}
