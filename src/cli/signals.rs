//! SIGINT, SIGTERM and SIGHUP: the build stops with nothing left at or beside the destination,
//! exiting with 128 plus the signal's number.
//!
//! A signal sets the build's cancel flag, which the library checks between entries, between
//! chunks of data and just before it renames the finished image into place. A build blocked
//! where it cannot check (a pipe that sends nothing, a network wait) is ended by the signal
//! thread after a short grace: it removes the temporary image and exits. While the image is
//! being finished the thread waits for the main thread, which then either has cancelled or
//! removes the image it has just committed; so a signal never ends in a committed image.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// How long the main thread has to stop on its own before the signal thread ends the process.
const GRACE: Duration = Duration::from_millis(1500);

/// Where the build stands, as the signal thread needs to know it.
#[derive(Default)]
struct Files {
    /// The temporary image while it is being written.
    temp: Option<PathBuf>,
}

/// The signal handling of one run.
pub struct Interrupt {
    cancel: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
    files: Arc<Mutex<Files>>,
}

/// The name of a signal handled here.
fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

impl Interrupt {
    /// Starts listening for SIGINT, SIGTERM and SIGHUP.
    pub fn install() -> Interrupt {
        let cancel = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicI32::new(0));
        let files = Arc::new(Mutex::new(Files::default()));
        match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => {
                let (cancel, signal, files) = (cancel.clone(), signal.clone(), files.clone());
                let _ = std::thread::Builder::new()
                    .name("oci2ext4-signals".into())
                    .spawn(move || {
                        if let Some(sig) = signals.forever().next() {
                            signal.store(sig, Ordering::SeqCst);
                            cancel.store(true, Ordering::SeqCst);
                            std::thread::sleep(GRACE);
                            // Waits while the main thread finishes or commits.
                            let files = files.lock().unwrap_or_else(|p| p.into_inner());
                            if let Some(temp) = &files.temp {
                                let _ = std::fs::remove_file(temp);
                            }
                            eprintln!("oci2ext4: error: cancelled by {}", name(sig));
                            std::process::exit(128 + sig);
                        }
                    });
            }
            Err(e) => eprintln!("oci2ext4: warning: cannot handle signals: {e}"),
        }
        Interrupt {
            cancel,
            signal,
            files,
        }
    }

    /// The flag a signal sets, for the build options.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// The exit status for the signal received, if any.
    pub fn exit_code(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(128 + sig),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the temporary image the build writes.
    pub fn writing(&self, temp: &Path) {
        self.lock().temp = Some(temp.to_path_buf());
    }

    /// Runs `finish` (which commits the image to `dest` when it succeeds) so that a signal
    /// received before it returns leaves no image: the signal thread waits meanwhile, and an
    /// image committed after the signal came is removed again.
    pub fn finishing<T>(
        &self,
        dest: &Path,
        finish: impl FnOnce() -> Result<T, super::Failure>,
    ) -> Result<T, super::Failure> {
        let mut files = self.lock();
        let result = finish();
        files.temp = None;
        match (result, self.exit_code()) {
            (Ok(_), Some(code)) => {
                let _ = std::fs::remove_file(dest);
                Err(self.failure(code))
            }
            (r, _) => r,
        }
    }

    /// The failure to report for a signal with exit status `code`.
    fn failure(&self, code: i32) -> super::Failure {
        super::Failure {
            message: format!("cancelled by {}", name(code - 128)),
            code,
        }
    }

    /// `result`, with any failure after a signal reported as the signal's.
    pub fn outcome<T>(&self, result: Result<T, super::Failure>) -> Result<T, super::Failure> {
        match (result, self.exit_code()) {
            (Err(_), Some(code)) => Err(self.failure(code)),
            (r, _) => r,
        }
    }
}
