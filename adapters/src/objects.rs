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
    #[error("object {0:?} is not in the store")]
    NotFound(String),
    #[error("object is larger than {0} bytes")]
    TooLarge(u64),
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores the finished file at `file` (`size` bytes, on local disk; the store may move
    /// it away) under `key` (`dir/day/name.ext`) and returns its public URL. An
    /// `attachment` is served for download (`Content-Disposition: attachment`), never
    /// shown inline.
    async fn put(&self, key: &str, file: &Path, size: u64, content_type: &str, attachment: bool) -> Result<String, ObjectError>;
    /// The key of an object this store handed out `url` for, if it is one of ours.
    fn key_of(&self, url: &str) -> Option<String>;
    /// Copies the object `key` to the local file `to`, refusing one larger than `max`
    /// bytes.
    async fn fetch(&self, key: &str, to: &Path, max: u64) -> Result<(), ObjectError>;
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
    async fn put(&self, key: &str, file: &Path, _size: u64, _content_type: &str, _attachment: bool) -> Result<String, ObjectError> {
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

    /// A `/public/…` URL, relative or absolute (a download link names the file by its
    /// extension; `/public` serves documents as attachments).
    fn key_of(&self, url: &str) -> Option<String> {
        let key = &url[url.find("/public/")? + "/public/".len()..];
        let key = key.split(['?', '#']).next().unwrap_or_default();
        check_key(key).ok().map(|()| key.to_owned())
    }

    async fn fetch(&self, key: &str, to: &Path, max: u64) -> Result<(), ObjectError> {
        check_key(key)?;
        let from = self.root.join(key);
        match tokio::fs::metadata(&from).await {
            Ok(m) if m.is_file() && m.len() > max => Err(ObjectError::TooLarge(max)),
            Ok(m) if m.is_file() => {
                tokio::fs::copy(&from, to).await?;
                Ok(())
            }
            _ => Err(ObjectError::NotFound(key.to_owned())),
        }
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
    async fn put(&self, key: &str, file: &Path, size: u64, content_type: &str, attachment: bool) -> Result<String, ObjectError> {
        check_key(key)?;
        let url = self.bucket.put_object(Some(&self.credentials), key).sign(Duration::from_secs(300));
        // Streamed from disk: an upload is never whole in memory.
        let body = reqwest::Body::from(tokio::fs::File::open(file).await?);
        let mut request = self.client.put(url).header("content-type", content_type).header("content-length", size);
        if attachment {
            // Stored with the object: the store serves it as a download.
            request = request.header("content-disposition", "attachment");
        }
        let resp = request.body(body).send().await.map_err(|e| ObjectError::Remote(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(ObjectError::Remote(format!("put {key}: HTTP {}", resp.status())));
        }
        Ok(format!("{}/{key}", self.public_url.trim_end_matches('/')))
    }

    /// A URL under this store's public base.
    fn key_of(&self, url: &str) -> Option<String> {
        let key = url.strip_prefix(self.public_url.trim_end_matches('/'))?.strip_prefix('/')?;
        let key = key.split(['?', '#']).next().unwrap_or_default();
        check_key(key).ok().map(|()| key.to_owned())
    }

    /// A signed GET, streamed to `to` chunk by chunk, stopped past `max` bytes.
    async fn fetch(&self, key: &str, to: &Path, max: u64) -> Result<(), ObjectError> {
        use tokio::io::AsyncWriteExt as _;
        check_key(key)?;
        let url = self.bucket.get_object(Some(&self.credentials), key).sign(Duration::from_secs(300));
        let mut resp = self.client.get(url).send().await.map_err(|e| ObjectError::Remote(e.to_string()))?;
        match resp.status().as_u16() {
            200..=299 => {}
            404 => return Err(ObjectError::NotFound(key.to_owned())),
            status => return Err(ObjectError::Remote(format!("get {key}: HTTP {status}"))),
        }
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(ObjectError::TooLarge(max));
        }
        let mut out = tokio::fs::File::create(to).await?;
        let mut written = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| ObjectError::Remote(e.to_string()))? {
            written += chunk.len() as u64;
            if written > max {
                return Err(ObjectError::TooLarge(max));
            }
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(())
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

    #[test]
    fn each_store_knows_its_own_urls() {
        let local = LocalStore::new("/tmp/uploads");
        assert_eq!(local.key_of("https://im.example.com/public/oss/20260101/a.pdf?x=1").as_deref(), Some("oss/20260101/a.pdf"));
        assert_eq!(local.key_of("/public/../im.db"), None);
        assert_eq!(local.key_of("https://elsewhere.example/a.pdf"), None);
        let s3 = S3Store::new(&S3Settings {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "b".into(),
            region: "us-east-1".into(),
            access_key: "k".into(),
            secret_key: "s".into(),
            public_url: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s3.key_of("http://127.0.0.1:9000/b/oss/20260101/v.mp4").as_deref(), Some("oss/20260101/v.mp4"));
        assert_eq!(s3.key_of("http://127.0.0.1:9000/other/v.mp4"), None);
        assert_eq!(s3.key_of("http://127.0.0.1:9000/b/../v.mp4"), None);
    }
}
