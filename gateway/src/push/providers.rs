//! What each push provider is sent: one HTTP request per device, its JSON shaped as the
//! provider expects, retried with backoff while the endpoint fails.

use super::settings::PushSettings;
use im_domain::push::Provider;
use serde_json::{Value, json};

/// One push, ready for any provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub user: i64,
    /// `single` or `group`, and the chat's id as the user sees it.
    pub chat_type: String,
    pub chat_id: i64,
    /// The sender's name, or the group's.
    pub title: String,
    /// The newest message's preview, with the count when several were collapsed.
    pub body: String,
    /// Messages this push stands for.
    pub count: usize,
    /// The newest message's id.
    pub message_id: String,
}

impl Notification {
    /// The key a provider collapses pushes of one chat under.
    pub fn collapse_key(&self) -> String {
        format!("{}-{}", self.chat_type, self.chat_id)
    }
}

/// The request for one device: URL, extra headers, JSON body.
pub fn request(provider: Provider, base: &str, device_token: &str, n: &Notification) -> (String, Vec<(&'static str, String)>, Value) {
    let data = json!({"chatType": n.chat_type, "id": n.chat_id, "count": n.count, "message_id": n.message_id});
    match provider {
        Provider::Unipush => (
            base.to_owned(),
            Vec::new(),
            json!({
                "request_id": uuid::Uuid::now_v7().simple().to_string(),
                "audience": {"cid": [device_token]},
                "push_message": {"notification": {"title": n.title, "body": n.body, "click_type": "payload", "payload": data.to_string()}},
                "settings": {"ttl": 86_400_000},
            }),
        ),
        Provider::Fcm => (
            base.to_owned(),
            Vec::new(),
            json!({"message": {
                "token": device_token,
                "notification": {"title": n.title, "body": n.body},
                "android": {"collapse_key": n.collapse_key()},
                "data": {"chatType": n.chat_type, "id": n.chat_id.to_string(), "count": n.count.to_string(), "message_id": n.message_id},
            }}),
        ),
        Provider::Apns => (
            format!("{}/3/device/{device_token}", base.trim_end_matches('/')),
            vec![("apns-push-type", "alert".to_owned()), ("apns-collapse-id", n.collapse_key())],
            json!({"aps": {"alert": {"title": n.title, "body": n.body}, "thread-id": n.collapse_key(), "sound": "default"}, "im": data}),
        ),
        Provider::Webhook => (
            base.to_owned(),
            Vec::new(),
            json!({"user_id": n.user, "device_token": device_token, "title": n.title, "body": n.body,
                   "chatType": n.chat_type, "id": n.chat_id, "count": n.count, "message_id": n.message_id}),
        ),
    }
}

/// How one device's push ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// The endpoint refused it (4xx other than 429): retrying would not help.
    Refused(u16),
    /// Every attempt failed.
    GaveUp,
}

/// Sends one device its push: the first attempt and up to `retries` more while the
/// endpoint fails (5xx, 429 or no answer), waiting `backoff`, then twice that, and so on.
pub async fn send(http: &reqwest::Client, settings: &PushSettings, provider: Provider, device_token: &str, n: &Notification) -> Outcome {
    let Some(base) = settings.url(provider) else { return Outcome::GaveUp };
    let (url, headers, body) = request(provider, base, device_token, n);
    let mut wait = settings.backoff;
    for attempt in 0..=settings.retries {
        if attempt > 0 {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
        let mut req = http.post(&url).json(&body);
        for (name, value) in &headers {
            req = req.header(*name, value);
        }
        if let Some(auth) = &settings.auth {
            req = req.bearer_auth(auth);
        }
        match req.send().await {
            Ok(answer) if answer.status().is_success() => return Outcome::Sent,
            Ok(answer) if answer.status().as_u16() == 429 || answer.status().is_server_error() => {
                tracing::debug!(provider = provider.as_str(), status = answer.status().as_u16(), attempt, "push endpoint failed; retrying");
            }
            Ok(answer) => return Outcome::Refused(answer.status().as_u16()),
            Err(e) => tracing::debug!(provider = provider.as_str(), error = %e, attempt, "push endpoint unreachable; retrying"),
        }
    }
    Outcome::GaveUp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Notification {
        Notification {
            user: 3,
            chat_type: "single".into(),
            chat_id: 2,
            title: "小红".into(),
            body: "[2条] 在吗".into(),
            count: 2,
            message_id: "m1".into(),
        }
    }

    #[test]
    fn each_provider_gets_its_own_shape() {
        let n = sample();
        let (url, headers, body) = request(Provider::Apns, "http://apns.local/", "dev1", &n);
        assert_eq!(url, "http://apns.local/3/device/dev1");
        assert!(headers.contains(&("apns-collapse-id", "single-2".to_owned())));
        assert_eq!(body["aps"]["alert"]["title"], "小红");
        let (_, _, body) = request(Provider::Fcm, "http://fcm.local/send", "dev2", &n);
        assert_eq!((body["message"]["token"].clone(), body["message"]["data"]["count"].clone()), (json!("dev2"), json!("2")));
        let (_, _, body) = request(Provider::Unipush, "http://uni.local", "cid3", &n);
        assert_eq!(body["audience"]["cid"], json!(["cid3"]));
        let (url, _, body) = request(Provider::Webhook, "http://hook.local/push", "d4", &n);
        assert_eq!((url.as_str(), body["count"].clone(), body["id"].clone()), ("http://hook.local/push", json!(2), json!(2)));
    }
}
