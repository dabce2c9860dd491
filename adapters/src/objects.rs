//! Object stores for uploads: the local directory (embedded) and any S3-compatible
//! endpoint (Aliyun OSS, MinIO, AWS …), written through presigned path-style requests.

use async_trait::async_trait;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object key {0:?} is not a plain relative path")]
    BadKey(String),
    #[error("object store io: {0}")]
    Io(#[from] std::io::Error),
    #[error("object store: {0}")]
    Remote(String),
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores the finished file at `file` (`size` bytes, on local disk; the store may move
    /// it away) under `key` (`dir/day/name.ext`) and returns its public URL.
    async fn put(&self, key: &str, file: &Path, size: u64, content_type: &str) -> Result<String, ObjectError>;
    fn name(&self) -> &'static str;
}

fn check_key(key: &str) -> Result<(), ObjectError> {
    let plain = !key.is_empty() && Path::new(key).components().all(|c| matches!(c, Component::Normal(_)));
    if plain { Ok(()) } else { Err(ObjectError::BadKey(key.to_owned())) }
}

/// A directory served under `/public`.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, file: &Path, _size: u64, _content_type: &str) -> Result<String, ObjectError> {
        check_key(key)?;
        let target = self.root.join(key);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // A rename when the file is on the same disk; else copy aside, then rename: a
        // reader never sees half a file.
        if tokio::fs::rename(file, &target).await.is_err() {
            let tmp = target.with_extension("part");
            tokio::fs::copy(file, &tmp).await?;
            tokio::fs::rename(&tmp, &target).await?;
        }
        Ok(format!("/public/{key}"))
    }

    fn name(&self) -> &'static str {
        "local"
    }
}

/// Where an S3-compatible store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Base of the URLs handed to clients (default: `<endpoint>/<bucket>`).
    pub public_url: Option<String>,
}

pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    client: reqwest::Client,
    public_url: String,
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> Result<Self, ObjectError> {
        let endpoint = settings.endpoint.parse().map_err(|e| ObjectError::Remote(format!("endpoint: {e}")))?;
        let bucket = Bucket::new(endpoint, UrlStyle::Path, settings.bucket.clone(), settings.region.clone())
            .map_err(|e| ObjectError::Remote(format!("bucket: {e}")))?;
        let public_url =
            settings.public_url.clone().unwrap_or_else(|| format!("{}/{}", settings.endpoint.trim_end_matches('/'), settings.bucket));
        Ok(Self {
            bucket,
            credentials: Credentials::new(settings.access_key.clone(), settings.secret_key.clone()),
            client: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().map_err(|e| ObjectError::Remote(e.to_string()))?,
            public_url,
        })
    }

    /// Creates the bucket if it does not exist yet.
    pub async fn ensure_bucket(&self) -> Result<(), ObjectError> {
        let url = self.bucket.create_bucket(&self.credentials).sign(Duration::from_secs(300));
        let resp = self
            .client
            .put(url)
            .header("content-length", "0")
            .body(Vec::new())
            .send()
            .await
            .map_err(|e| ObjectError::Remote(e.to_string()))?;
        match resp.status().as_u16() {
            200..=299 | 409 => Ok(()),
            status => Err(ObjectError::Remote(format!("create bucket: HTTP {status}"))),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, file: &Path, size: u64, content_type: &str) -> Result<String, ObjectError> {
        check_key(key)?;
        let url = self.bucket.put_object(Some(&self.credentials), key).sign(Duration::from_secs(300));
        // Streamed from disk: an upload is never whole in memory.
        let body = reqwest::Body::from(tokio::fs::File::open(file).await?);
        let resp = self
            .client
            .put(url)
            .header("content-type", content_type)
            .header("content-length", size)
            .body(body)
            .send()
            .await
            .map_err(|e| ObjectError::Remote(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(ObjectError::Remote(format!("put {key}: HTTP {}", resp.status())));
        }
        Ok(format!("{}/{key}", self.public_url.trim_end_matches('/')))
    }

    fn name(&self) -> &'static str {
        "s3"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_plain_relative_paths() {
        assert!(check_key("a/20260101/x.png").is_ok());
        for bad in ["", "../x", "/etc/passwd", "a/../../x", "./x"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
