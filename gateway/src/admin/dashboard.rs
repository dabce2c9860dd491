//! The console's dashboard: counts, charts of the last samples (messages per minute,
//! online sockets, projection lag) and each projection's checkpoint.

use super::html::{badge, esc, page};
use super::session::{session, to_login};
use crate::error::ApiError;
use crate::samples::Sample;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use im_projections::users::Counted;
use std::time::Duration;

/// Takes a sample every `every` until the server shuts down.
pub async fn sample(state: AppState, every: Duration) {
    let mut shutdown = state.shutdown_signal();
    loop {
        let messages = state.users().count(Counted::Messages).await.unwrap_or(0);
        let online = state.online_count().await as i64;
        state.samples().push(crate::now_millis(), messages, online, lag(&state).await);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
    }
}

/// How far the slowest read model is behind the log's head.
async fn lag(state: &AppState) -> i64 {
    behind(state, state.store().head().await.unwrap_or(0))
}

/// How far the slowest read model is behind `head`.
fn behind(state: &AppState, head: i64) -> i64 {
    state.projector().positions().iter().map(|(_, p)| (head - p).max(0)).max().unwrap_or(0)
}

/// An SVG line chart of `values` (oldest first) with its latest value and range.
fn chart(id: &str, title: &str, values: &[f64], unit: &str) -> String {
    let (w, h) = (300.0, 100.0);
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let step = if values.len() > 1 { w / (values.len() - 1) as f64 } else { w };
    let points: Vec<String> =
        values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, h - v / max * (h - 8.0) - 4.0)).collect();
    let line = if points.len() == 1 { format!("0,{y} {w},{y}", y = points[0].split(',').nth(1).unwrap_or("96")) } else { points.join(" ") };
    let latest = values.last().copied().unwrap_or(0.0);
    format!(
        "<div class=\"card chart\" id={id}><h3>{} <span class=muted>{latest:.0} {unit}</span></h3>\
         <svg viewBox=\"0 0 {w} {h}\" preserveAspectRatio=none role=img aria-label=\"{}\">\
         <line class=axis x1=0 y1={h} x2={w} y2={h} /><polygon class=area points=\"0,{h} {line} {w},{h}\" /><polyline class=line points=\"{line}\" /></svg>\
         <div class=range><span>{} 个样本</span><span>峰值 {max:.0}</span></div></div>",
        esc(title),
        esc(title),
        values.len(),
    )
}

pub(super) async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let users = state.users();
    let (Ok(u), Ok(g), Ok(m), Ok(r), Ok((pending, _))) = (
        users.count(Counted::Users).await,
        users.count(Counted::Groups).await,
        users.count(Counted::Messages).await,
        users.count(Counted::Reports).await,
        state.friends().reports(true, 1, 1).await,
    ) else {
        return ApiError::internal("dashboard counts").into_response();
    };
    let head = state.store().head().await.unwrap_or(0);
    let lag: String = state
        .projector()
        .positions()
        .iter()
        .map(|(name, p)| {
            let behind = (head - p).max(0);
            let state = if behind == 0 { badge("ok", "同步") } else { badge("warn", &format!("落后 {behind}")) };
            format!("<tr><td>{name}</td><td>{p}</td><td>{state}</td></tr>")
        })
        .collect();
    let stat = |id: &str, label: &str, v: i64| format!("<div class=stat id={id}><b>{v}</b><span>{label}</span></div>");
    let online = state.online_count().await as i64;
    let samples = state.samples().with_now(crate::now_millis(), m, online, behind(&state, head));
    let series = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let body = format!(
        "<div class=stats>{}{}{}{}{}{}</div><div class=charts>{}{}{}</div>\
         <div class=card><h3>投影</h3><table id=projections><tr><th>投影</th><th>检查点</th><th>状态</th></tr>{lag}</table></div>",
        stat("users", "用户", u),
        stat("groups", "群聊", g),
        stat("messages", "消息", m),
        stat("online", "在线", online),
        stat("log-head", "日志位置", head),
        stat("reports", &format!("举报(待处理 {pending})"), r),
        chart("chart-messages", "每分钟消息", &series(|s| s.per_minute), "条/分"),
        chart("chart-online", "在线连接", &series(|s| s.online as f64), "个"),
        chart("chart-lag", "投影落后", &series(|s| s.lag as f64), "个事件"),
    );
    page("概览", &body, Some(&s)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{SAMPLES, Samples};

    #[test]
    fn samples_keep_the_last_sixty_and_a_per_minute_rate() {
        let samples = Samples::default();
        samples.push(0, 100, 1, 0);
        samples.push(30_000, 160, 2, 3);
        let all = samples.all();
        assert_eq!(all[0].per_minute, 0.0);
        assert_eq!(all[1].per_minute, 120.0, "60 messages in half a minute");
        for i in 2..100 {
            samples.push(i * 60_000, 160, 0, 0);
        }
        let all = samples.all();
        assert_eq!(all.len(), SAMPLES);
        assert_eq!(all[0].at, 40 * 60_000);
        let now = samples.with_now(100 * 60_000, 220, 0, 0);
        assert_eq!((now.len(), now[SAMPLES].per_minute), (SAMPLES + 1, 60.0), "a live point, not kept");
        assert_eq!(samples.all().len(), SAMPLES);
        let svg = chart("c", "每分钟消息", &all.iter().map(|s| s.per_minute).collect::<Vec<_>>(), "条/分");
        assert!(svg.contains("<polyline class=line points=\"0.0,96.0"), "{svg}");
    }
}
