//! The upload and ffmpeg slots one process has (see `routes::files`).

use crate::settings::FileSettings;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// How many uploads and ffmpeg runs one process takes on at once.
#[derive(Clone)]
pub struct Uploads {
    pub(crate) receiving: Arc<Semaphore>,
    pub(crate) ffmpeg: Arc<Semaphore>,
}

impl Uploads {
    /// Slots as the settings say; the incoming directory is emptied of what a crash
    /// left behind.
    pub fn new(files: &FileSettings) -> Self {
        let _ = std::fs::remove_dir_all(&files.incoming_dir);
        Self {
            receiving: Arc::new(Semaphore::new(files.max_concurrent.max(1))),
            ffmpeg: Arc::new(Semaphore::new(files.ffmpeg_concurrent.max(1))),
        }
    }
}
