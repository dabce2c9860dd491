//! SPEC section 7: uploads into the local store (served back under `/public`) or the
//! configured S3-compatible store, and a video's screenshot through ffmpeg.

use super::bodies;
use crate::auth::{Access, Me};
use crate::error::ApiError;
use crate::ok;
use crate::params::Params;
use crate::proxy::ClientIp;
use crate::settings::FileSettings;
use crate::state::AppState;
use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use im_adapters::objects::{ObjectError, ObjectStore};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router(max_body: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_diy))
        .routes(routes!(upload_store))
        .layer(DefaultBodyLimit::max(max_body))
        .routes(routes!(screenshot))
}

/// Extensions the local store serves inline (what images, audio and video are stored
/// as); every other file under `/public` is a download.
const INLINE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "webp", "bmp", "ico", "tif", "tiff", "heif", "heic", "avif", "jxr", "psd", "cr2", "mp4", "m4v", "mkv",
    "webm", "mov", "avi", "wmv", "mpg", "mpeg", "flv", "3gp", "mp3", "m4a", "ogg", "oga", "opus", "flac", "wav", "amr", "aac", "aiff",
    "mid", "dsf", "ape",
];

/// `/public`: the local store's files. None is ever sniffed into another type by the
/// browser (`X-Content-Type-Options: nosniff`), and only media are shown inline:
/// documents come with `Content-Disposition: attachment`.
pub fn public(dir: &std::path::Path) -> axum::Router<AppState> {
    async fn headers(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
        let ext = request.uri().path().rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        let mut response = next.run(request).await;
        let h = response.headers_mut();
        h.insert("x-content-type-options", axum::http::HeaderValue::from_static("nosniff"));
        if !INLINE_EXTENSIONS.contains(&ext.as_str()) {
            h.insert("content-disposition", axum::http::HeaderValue::from_static("attachment"));
        }
        response
    }
    axum::Router::new().nest_service("/public", tower_http::services::ServeDir::new(dir)).layer(axum::middleware::from_fn(headers))
}

/// The description of `/public/{path}` (the route is the `ServeDir` of [`public`], which
/// has no handler of its own to carry it).
#[utoipa::path(
    get,
    path = "/public/{path}",
    tag = "files",
    summary = "A file of the local store, as an upload answered its URL",
    description = "Images, audio and video are served inline; every other file with `Content-Disposition: attachment`. \
                   Always `X-Content-Type-Options: nosniff`.",
    params(("path" = String, Path, description = "The path the upload answered, below `/public/`")),
    responses((status = 200, description = "The file"), (status = 404, description = "No such file"))
)]
#[allow(dead_code)] // never called: the ServeDir answers
async fn public_file() {}

/// The description of `/public`, merged into the API's.
#[derive(utoipa::OpenApi)]
#[openapi(paths(public_file))]
pub struct PublicFiles;

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", "文件过大")
}

fn busy() -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy", "服务器繁忙,请稍后再试")
}

/// The token of a multipart request: header, Bearer or query (the body is the file).
async fn uploader(state: &AppState, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Me, ApiError> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::to_owned);
    let token = headers.get("token").and_then(|v| v.to_str().ok()).map(str::to_owned).or(bearer).or_else(|| query.get("token").cloned());
    state.authenticate(token.as_deref(), Access::UsersAndVisitors).await
}

/// What kind of file the bytes really are (by their content, not their name).
struct Kind {
    mime: &'static str,
    ext: &'static str,
    class: Class,
}

/// What an upload is, for its size limit and how it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Images and audio: shown inline.
    Media,
    Video,
    /// Documents: pdf, office files, archives, text — always a download.
    Document,
}

/// Document types by the content's signature (office files are zip or OLE containers,
/// which `infer` tells apart).
const DOCUMENT_MIMES: &[&str] = &[
    "application/pdf",
    "application/zip",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/x-rar-compressed",
    "application/gzip",
    "application/x-tar",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/x-ole-storage",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/rtf",
    "application/epub+zip",
];

/// Plain-text documents, by the name's extension (text has no signature).
const TEXT_EXTENSIONS: &[&str] = &["txt", "csv", "md", "log", "json"];

/// The type of an upload named `name` whose first bytes are `head` (`complete`: the
/// whole file): media and video by signature, documents by signature, or text — valid
/// UTF-8 without NUL bytes under a text extension. Anything else (programs, scripts,
/// HTML) is refused.
fn sniff(head: &[u8], name: &str, complete: bool) -> Result<Kind, ApiError> {
    if let Some(kind) = infer::get(head) {
        let mime = kind.mime_type();
        let class = if mime.starts_with("video/") {
            Class::Video
        } else if mime.starts_with("image/") || mime.starts_with("audio/") {
            Class::Media
        } else if DOCUMENT_MIMES.contains(&mime) {
            Class::Document
        } else {
            return Err(ApiError::bad("unsupported_type", "只能上传图片、音频、视频或文档(pdf、office、压缩包、文本)"));
        };
        return Ok(Kind { mime, ext: kind.extension(), class });
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let text_ext = TEXT_EXTENSIONS.iter().find(|t| **t == ext);
    let text = match std::str::from_utf8(head) {
        Ok(t) => !t.contains('\0'),
        // Cut in the middle of a character at the end of the first chunk.
        Err(e) => !complete && e.error_len().is_none() && !head[..e.valid_up_to()].contains(&0),
    };
    match text_ext {
        Some(ext) if text => Ok(Kind { mime: "text/plain; charset=utf-8", ext, class: Class::Document }),
        _ => Err(ApiError::bad("unsupported_type", "只能上传图片、音频、视频或文档(pdf、office、压缩包、文本)")),
    }
}

/// A file name as the uploader gave it, for a file message: its last path component,
/// control characters dropped, at most 255 characters.
fn display_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    last.chars().filter(|c| !c.is_control()).take(255).collect::<String>().trim().to_owned()
}

/// Bytes read before the type is decided (every signature `infer` knows fits in them).
const SNIFF_BYTES: usize = 8 * 1024;

/// The most of an upload handed to one disk write.
const WRITE_BUF: usize = 64 * 1024;

/// An upload on disk while it arrives; the file is removed when this is dropped (a store
/// that keeps it moves it away first).
struct Incoming {
    path: PathBuf,
    size: u64,
    kind: Kind,
    /// The name the uploader gave it.
    name: String,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Receives the one file of the request into the incoming directory, chunk by chunk:
/// its type is decided from its first bytes (anything else is refused before the rest is
/// read), and it is refused as soon as it passes its type's size limit.
async fn receive(mut multipart: Multipart, files: &FileSettings) -> Result<Incoming, ApiError> {
    let invalid = || ApiError::bad("invalid_upload", "请上传一个文件");
    let chunk_error = |e: axum::extract::multipart::MultipartError| multipart_error(&e.to_string());
    while let Some(mut field) = multipart.next_field().await.map_err(chunk_error)? {
        let Some(name) = field.file_name().map(display_name) else { continue };
        // The first few KiB (plus at most one chunk) decide the type.
        let mut head = Vec::new();
        let mut complete = false;
        while head.len() < SNIFF_BYTES {
            match field.chunk().await.map_err(chunk_error)? {
                Some(chunk) => head.extend_from_slice(&chunk),
                None => {
                    complete = true;
                    break;
                }
            }
        }
        if head.is_empty() {
            return Err(invalid());
        }
        let kind = sniff(&head, &name, complete)?;
        let max = match kind.class {
            Class::Video => files.max_video_bytes,
            Class::Media => files.max_image_bytes,
            Class::Document => files.max_file_bytes,
        } as u64;
        tokio::fs::create_dir_all(&files.incoming_dir).await.map_err(ApiError::internal)?;
        let path = files.incoming_dir.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let mut out = tokio::fs::File::create(&path).await.map_err(ApiError::internal)?;
        // Each write is copied to the blocking pool; keep that copy small.
        out.set_max_buf_size(WRITE_BUF);
        let mut incoming = Incoming { path, size: 0, kind, name };
        let mut next = Some(axum::body::Bytes::from(head));
        while let Some(bytes) = next {
            incoming.size += bytes.len() as u64;
            if incoming.size > max {
                return Err(too_large());
            }
            out.write_all(&bytes).await.map_err(ApiError::internal)?;
            next = field.chunk().await.map_err(chunk_error)?;
        }
        out.flush().await.map_err(ApiError::internal)?;
        return Ok(incoming);
    }
    Err(invalid())
}

fn multipart_error(detail: &str) -> ApiError {
    if detail.contains("limit") || detail.contains("too large") {
        too_large()
    } else {
        ApiError::bad("invalid_upload", "上传格式不正确")
    }
}

/// Receives an upload and stores it under `dir/yyyymmdd/<uuid>.<ext>` in `store`: one of
/// a few at a time, within the uploader's (and their address's) daily quota.
async fn upload(
    state: &AppState,
    me: &Me,
    ip: &str,
    headers: &HeaderMap,
    store: &dyn ObjectStore,
    dir: &str,
    multipart: Multipart,
) -> ApiResult {
    let files = state.files();
    let _slot = state.uploads().receiving.clone().try_acquire_owned().map_err(|_| busy())?;
    let incoming = receive(multipart, files).await?;
    let quota_kib = files.quota_mib_per_day.saturating_mul(1024);
    if quota_kib > 0 {
        let cost = u32::try_from(incoming.size.div_ceil(1024)).unwrap_or(u32::MAX);
        let over = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "upload_quota", "今日上传已达上限");
        state.charge("upload-user", &me.id.0.to_string(), cost, quota_kib, DAY).await.map_err(|_| over.clone())?;
        state.charge("upload-ip", ip, cost, quota_kib.saturating_mul(4), DAY).await.map_err(|_| over)?;
    }
    let Kind { mime, ext, class } = incoming.kind;
    let day = chrono::Utc::now().format("%Y%m%d");
    let path = format!("{dir}/{day}/{}.{ext}", uuid::Uuid::now_v7().simple());
    let attachment = class == Class::Document;
    let url = store.put(&path, &incoming.path, incoming.size, mime, attachment).await.map_err(ApiError::internal)?;
    // The reference's shape: an array of the field's files, each with an absolute URL;
    // `name` and `size` are what a `file` message carries.
    let create_time = chrono::Utc::now().timestamp();
    Ok(ok(json!([{
        "url": state.absolute_url(headers, &url), "path": path, "image_class_id": 0, "create_time": create_time,
        "size": incoming.size, "mime": mime, "name": incoming.name,
    }])))
}

const DAY: Duration = Duration::from_secs(24 * 3600);

#[utoipa::path(
    post,
    path = "/api/chat/uploadStreamSingleToServerDiy/{diydir}",
    tag = "files",
    summary = "Uploads a file into the local store, answered with its URL under `/public`",
    params(("diydir" = String, Path, description = "A folder name under the upload directory")),
    request_body(content = bodies::Upload, content_type = "multipart/form-data"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn upload_diy(
    State(state): State<AppState>,
    Path(diydir): Path<String>,
    addr: ClientIp,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    multipart: Multipart,
) -> ApiResult {
    let me = uploader(&state, &headers, &query).await?;
    let valid = (1..=32).contains(&diydir.len()) && diydir.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(ApiError::bad("invalid_diydir", "目录名只能是1到32位字母、数字、下划线或中划线"));
    }
    upload(&state, &me, &addr.to_string(), &headers, state.local_files().as_ref(), &diydir, multipart).await
}

/// `uploadAliyun`: into the configured object store; without one, the local store.
#[utoipa::path(
    post,
    path = "/api/chat/uploadAliyun",
    tag = "files",
    summary = "Uploads a file into the configured store (S3-compatible, or local)",
    request_body(content = bodies::Upload, content_type = "multipart/form-data"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn upload_store(
    State(state): State<AppState>,
    addr: ClientIp,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    multipart: Multipart,
) -> ApiResult {
    let me = uploader(&state, &headers, &query).await?;
    upload(&state, &me, &addr.to_string(), &headers, state.object_store().as_ref(), "oss", multipart).await
}

/// A temporary file in the incoming directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Scratch {
    async fn new(files: &FileSettings, ext: &str) -> Result<Self, ApiError> {
        tokio::fs::create_dir_all(&files.incoming_dir).await.map_err(ApiError::internal)?;
        Ok(Self(files.incoming_dir.join(format!("{}.{ext}", uuid::Uuid::new_v4().simple()))))
    }
}

/// `getVideoScreenshot`: a frame of an uploaded video as JPEG, stored beside the video
/// (`<name>-cover.jpg`) in the store that holds it — the local one, read in place, or the
/// S3-compatible one, copied to a scratch file for ffmpeg first.
#[utoipa::path(
    post,
    path = "/api/chat/getVideoScreenshot",
    tag = "files",
    summary = "A frame of an uploaded video, as an image URL",
    request_body(content = bodies::Screenshot, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn screenshot(State(state): State<AppState>, headers: HeaderMap, params: Params) -> ApiResult {
    state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let url = params.required("url")?;
    let not_found = || ApiError::bad("video_not_found", "视频不存在,请先上传");
    let files = state.files();
    let (store, key) = [state.local_files(), state.object_store()]
        .into_iter()
        .find_map(|store| store.key_of(&url).map(|key| (store.clone(), key)))
        .ok_or_else(not_found)?;
    let _slot = state.uploads().ffmpeg.clone().try_acquire_owned().map_err(|_| busy())?;
    let copy;
    let video = if store.name() == "local" {
        let file = files.upload_dir.join(&key);
        if !file.is_file() {
            return Err(not_found());
        }
        file
    } else {
        copy = Scratch::new(files, "video").await?;
        match store.fetch(&key, &copy.0, files.max_video_bytes as u64).await {
            Ok(()) => {}
            Err(ObjectError::NotFound(_)) => return Err(not_found()),
            Err(ObjectError::TooLarge(_)) => return Err(too_large()),
            Err(e) => return Err(ApiError::internal(e)),
        }
        copy.0.clone()
    };
    let is_video = infer::get_from_path(&video).ok().flatten().is_some_and(|k| k.mime_type().starts_with("video/"));
    if !is_video {
        return Err(ApiError::bad("not_a_video", "该文件不是视频"));
    }
    let cover_key = format!("{}-cover.jpg", key.rsplit_once('.').map_or(key.as_str(), |(stem, _)| stem));
    let cover = Scratch::new(files, "jpg").await?;
    for at in ["00:00:01", "00:00:00"] {
        let run = tokio::process::Command::new(&files.ffmpeg)
            .args(FFMPEG_INPUT)
            .args(["-ss", at, "-i"])
            .arg(&video)
            .args(["-frames:v", "1", "-q:v", "3", "-f", "image2"])
            .arg(&cover.0)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(files.ffmpeg_timeout, run).await {
            Err(_) => return Err(ApiError::bad("screenshot_failed", "截取视频封面超时")),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApiError::bad("ffmpeg_unavailable", "服务器未安装 ffmpeg,无法截取视频封面"));
            }
            Ok(Err(e)) => return Err(ApiError::internal(e)),
            Ok(Ok(out)) if out.status.success() && cover.0.is_file() => {
                let size = tokio::fs::metadata(&cover.0).await.map_err(ApiError::internal)?.len();
                let stored = store.put(&cover_key, &cover.0, size, "image/jpeg", false).await.map_err(ApiError::internal)?;
                return Ok(ok(json!({"url": state.absolute_url(&headers, &stored)})));
            }
            Ok(Ok(_)) => continue,
        }
    }
    Err(ApiError::bad("screenshot_failed", "无法从该视频截取封面"))
}

/// How ffmpeg reads an uploaded video: a local file only (no network, no playlists that
/// point elsewhere), as one of the video containers uploads are sniffed as, on one thread.
const FFMPEG_INPUT: [&str; 10] = [
    "-y",
    "-nostdin",
    "-loglevel",
    "error",
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,asf",
    "-threads",
    "1",
];
