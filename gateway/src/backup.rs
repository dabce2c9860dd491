//! `im backup` and `im restore`: the embedded store moved as a whole — the event log (a
//! consistent copy taken while the server runs), the token secret kept in the data dir,
//! and the local uploads. Read models are not copied: a server started on a restored
//! data dir rebuilds them from the log. (Postgres deployments use `pg_dump`, and S3
//! uploads stay in their bucket.)

use crate::settings::Settings;
use crate::tools::Usage;
use anyhow::Context;
use im_eventlog::sqlite::{LogFigures, snapshot, verify};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `manifest.json` of a backup: what it holds, to check a restore against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The backup layout (1).
    pub format: u32,
    pub log_head: i64,
    pub events: i64,
    /// Whether the data dir's `jwt_secret` is in the backup (not when `JWT_SECRET` is
    /// configured: then it moves with the configuration).
    pub secret: bool,
    /// Upload files copied.
    pub uploads: u64,
    /// When the backup was made (Unix ms).
    pub made_at: i64,
}

const LOG: &str = "im.db";
const SECRET: &str = "jwt_secret";
const UPLOADS: &str = "uploads";
const MANIFEST: &str = "manifest.json";

fn embedded_only(settings: &Settings, what: &str) -> anyhow::Result<()> {
    if settings.database_url.is_some() {
        return Err(Usage(format!("im {what} is for the embedded store; back Postgres up with pg_dump")).into());
    }
    Ok(())
}

/// Backs the data dir up into `to` (which must not exist, or be empty).
pub async fn backup(settings: &Settings, to: &Path) -> anyhow::Result<Manifest> {
    embedded_only(settings, "backup")?;
    let log = settings.sqlite_path();
    if !log.exists() {
        return Err(Usage(format!("{} holds no event log", settings.data_dir.display())).into());
    }
    if to.exists() && std::fs::read_dir(to).with_context(|| format!("reading {}", to.display()))?.next().is_some() {
        return Err(Usage(format!("{} is not empty: back up into a new directory", to.display())).into());
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let copy = to.join(LOG);
    let figures = tokio::task::spawn_blocking(move || snapshot(&log, &copy)).await??;
    let secret = settings.data_dir.join(SECRET);
    let has_secret = settings.jwt_secret.is_none() && secret.exists();
    if has_secret {
        copy_private(&secret, &to.join(SECRET))?;
    }
    let uploads = copy_tree(&settings.files.upload_dir, &to.join(UPLOADS))?;
    let manifest =
        Manifest { format: 1, log_head: figures.head, events: figures.events, secret: has_secret, uploads, made_at: crate::now_millis() };
    std::fs::write(to.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    Ok(manifest)
}

/// Restores a backup into the data dir, which must not hold a log yet; checks the copy
/// against its manifest.
pub async fn restore(settings: &Settings, from: &Path) -> anyhow::Result<Manifest> {
    embedded_only(settings, "restore")?;
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(from.join(MANIFEST)).map_err(|e| Usage(format!("{} is not a backup ({MANIFEST}: {e})", from.display())))?,
    )
    .with_context(|| format!("reading {}", from.join(MANIFEST).display()))?;
    if manifest.format != 1 {
        return Err(Usage(format!("backup format {} is not known to this version", manifest.format)).into());
    }
    let log = settings.sqlite_path();
    if log.exists() {
        return Err(Usage(format!("{} already holds an event log: restore into an empty data dir", settings.data_dir.display())).into());
    }
    let copy = from.join(LOG);
    let found: LogFigures = tokio::task::spawn_blocking(move || verify(&copy)).await??;
    if (found.head, found.events) != (manifest.log_head, manifest.events) {
        anyhow::bail!("the backup's log holds {found:?}, its manifest says head {} and {} events", manifest.log_head, manifest.events);
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    std::fs::copy(from.join(LOG), &log).with_context(|| format!("copying the log to {}", log.display()))?;
    if manifest.secret {
        copy_private(&from.join(SECRET), &settings.data_dir.join(SECRET))?;
    }
    let uploads = copy_tree(&from.join(UPLOADS), &settings.files.upload_dir)?;
    if uploads != manifest.uploads {
        anyhow::bail!("restored {uploads} upload files, the manifest lists {}", manifest.uploads);
    }
    Ok(manifest)
}

/// Copies the files under `from` (if it exists) into `to`; returns how many.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<u64> {
    if !from.exists() {
        return Ok(0);
    }
    let mut copied = 0;
    let mut pending: Vec<(PathBuf, PathBuf)> = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((dir, target)) = pending.pop() {
        std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let dest = target.join(entry.file_name());
            if kind.is_dir() {
                pending.push((entry.path(), dest));
            } else if kind.is_file() {
                std::fs::copy(entry.path(), &dest).with_context(|| format!("copying {}", entry.path().display()))?;
                copied += 1;
            }
        }
    }
    Ok(copied)
}

/// Copies a secret, readable by its owner only.
pub(crate) fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
