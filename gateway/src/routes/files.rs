//! SPEC section 7: uploads into the local store (served back under `/public`) or the
//! configured S3-compatible store, and a video's screenshot through ffmpeg.

use crate::app::AppState;
use crate::auth::{Access, Me};
use crate::error::ApiError;
use crate::ok;
use crate::params::Params;
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use im_adapters::objects::ObjectStore;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Component, PathBuf};
use std::time::Duration;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router(max_body: usize) -> Router<AppState> {
    Router::new()
        .route("/api/chat/uploadStreamSingleToServerDiy/{diydir}", post(upload_diy))
        .route("/api/chat/uploadAliyun", post(upload_store))
        .layer(DefaultBodyLimit::max(max_body))
        .route("/api/chat/getVideoScreenshot", post(screenshot))
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", "文件过大")
}

/// The token of a multipart request: header, Bearer or query (the body is the file).
async fn uploader(state: &AppState, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Me, ApiError> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::to_owned);
    let token = headers.get("token").and_then(|v| v.to_str().ok()).map(str::to_owned).or(bearer).or_else(|| query.get("token").cloned());
    state.authenticate(token.as_deref(), Access::UsersAndVisitors).await
}

/// What kind of file the bytes really are (by their content, not their name).
fn sniff(bytes: &[u8]) -> Result<(&'static str, &'static str, bool), ApiError> {
    let kind = infer::get(bytes).ok_or_else(|| ApiError::bad("unsupported_type", "不支持的文件类型"))?;
    let mime = kind.mime_type();
    let video = mime.starts_with("video/");
    if !(video || mime.starts_with("image/") || mime.starts_with("audio/")) {
        return Err(ApiError::bad("unsupported_type", "只能上传图片、音频或视频"));
    }
    Ok((mime, kind.extension(), video))
}

/// Reads the one file of the request, refusing anything over `max` bytes.
async fn read_file(mut multipart: Multipart, max: usize) -> Result<Vec<u8>, ApiError> {
    let invalid = || ApiError::bad("invalid_upload", "请上传一个文件");
    while let Some(mut field) = multipart.next_field().await.map_err(|e| multipart_error(&e.to_string()))? {
        if field.file_name().is_none() {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e.to_string()))? {
            if bytes.len() + chunk.len() > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.is_empty() {
            return Err(invalid());
        }
        return Ok(bytes);
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

/// Stores an upload under `dir/yyyymmdd/<uuid>.<ext>` in `store`.
async fn store(state: &AppState, store: &dyn ObjectStore, dir: &str, bytes: Vec<u8>) -> ApiResult {
    let files = state.files();
    let (mime, ext, video) = sniff(&bytes)?;
    let max = if video { files.max_video_bytes } else { files.max_image_bytes };
    if bytes.len() > max {
        return Err(too_large());
    }
    let day = chrono::Utc::now().format("%Y%m%d");
    let path = format!("{dir}/{day}/{}.{ext}", uuid::Uuid::now_v7().simple());
    let size = bytes.len();
    let url = store.put(&path, bytes, mime).await.map_err(ApiError::internal)?;
    Ok(ok(json!({"url": url, "path": path, "size": size, "mime": mime})))
}

fn largest(state: &AppState) -> usize {
    state.files().max_image_bytes.max(state.files().max_video_bytes)
}

async fn upload_diy(
    State(state): State<AppState>,
    Path(diydir): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    multipart: Multipart,
) -> ApiResult {
    uploader(&state, &headers, &query).await?;
    let valid = (1..=32).contains(&diydir.len()) && diydir.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(ApiError::bad("invalid_diydir", "目录名只能是1到32位字母、数字、下划线或中划线"));
    }
    let bytes = read_file(multipart, largest(&state)).await?;
    store(&state, state.local_files().as_ref(), &diydir, bytes).await
}

/// `uploadAliyun`: into the configured object store; without one, the local store.
async fn upload_store(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    multipart: Multipart,
) -> ApiResult {
    uploader(&state, &headers, &query).await?;
    let bytes = read_file(multipart, largest(&state)).await?;
    store(&state, state.object_store().as_ref(), "oss", bytes).await
}

/// The local file a `/public/...` URL (relative or absolute) names, if it is one of ours.
fn local_file(state: &AppState, url: &str) -> Option<(String, PathBuf)> {
    let path = match url.find("/public/") {
        Some(i) => &url[i + "/public/".len()..],
        None => return None,
    };
    let relative = PathBuf::from(path);
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = state.files().upload_dir.join(&relative);
    full.is_file().then(|| (path.to_owned(), full))
}

/// `getVideoScreenshot`: a frame of an uploaded video as JPEG.
async fn screenshot(State(state): State<AppState>, params: Params) -> ApiResult {
    state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let url = params.required("url")?;
    let (path, file) = local_file(&state, &url).ok_or_else(|| ApiError::bad("video_not_found", "视频不存在,请先上传"))?;
    let is_video = infer::get_from_path(&file).ok().flatten().is_some_and(|k| k.mime_type().starts_with("video/"));
    if !is_video {
        return Err(ApiError::bad("not_a_video", "该文件不是视频"));
    }
    let cover_path = format!("{}-cover.jpg", path.rsplit_once('.').map_or(path.as_str(), |(stem, _)| stem));
    let cover = state.files().upload_dir.join(&cover_path);
    for at in ["00:00:01", "00:00:00"] {
        let run = tokio::process::Command::new(&state.files().ffmpeg)
            .args(["-y", "-loglevel", "error", "-ss", at, "-i"])
            .arg(&file)
            .args(["-frames:v", "1", "-q:v", "3"])
            .arg(&cover)
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(Duration::from_secs(60), run).await {
            Err(_) => return Err(ApiError::bad("screenshot_failed", "截取视频封面超时")),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApiError::bad("ffmpeg_unavailable", "服务器未安装 ffmpeg,无法截取视频封面"));
            }
            Ok(Err(e)) => return Err(ApiError::internal(e)),
            Ok(Ok(out)) if out.status.success() && cover.is_file() => {
                return Ok(ok(json!({"url": format!("/public/{cover_path}")})));
            }
            Ok(Ok(_)) => continue,
        }
    }
    Err(ApiError::bad("screenshot_failed", "无法从该视频截取封面"))
}
