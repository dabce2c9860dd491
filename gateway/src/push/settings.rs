//! `IM_PUSH_*`: what the pusher is configured with.

use std::time::Duration;

/// `IM_PUSH_*`: pushes to offline devices (issue 15). Nothing is pushed until a
/// provider's endpoint is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSettings {
    /// `IM_PUSH_UNIPUSH_URL`: where uni-push (Getui) requests go.
    pub unipush_url: Option<String>,
    /// `IM_PUSH_FCM_URL`: the FCM v1 `messages:send` URL of the project.
    pub fcm_url: Option<String>,
    /// `IM_PUSH_APNS_URL`: the APNs base URL (`/3/device/<token>` is added).
    pub apns_url: Option<String>,
    /// `IM_PUSH_WEBHOOK_URL`: the operator's own endpoint.
    pub webhook_url: Option<String>,
    /// `IM_PUSH_AUTH`: sent as `Authorization: Bearer …` to every endpoint.
    pub auth: Option<String>,
    /// `IM_PUSH_COLLAPSE_MS`: messages to one chat within this of the first are one push.
    pub collapse: Duration,
    /// `IM_PUSH_RETRIES`: attempts after the first when an endpoint fails (5xx, 429, no answer).
    pub retries: u32,
    /// `IM_PUSH_BACKOFF_MS`: the first retry's wait, doubled for each next one.
    pub backoff: Duration,
    /// `IM_PUSH_QUEUE`: messages waiting to be pushed at most (beyond: dropped, counted).
    pub queue: usize,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            unipush_url: None,
            fcm_url: None,
            apns_url: None,
            webhook_url: None,
            auth: None,
            collapse: Duration::from_secs(2),
            retries: 5,
            backoff: Duration::from_millis(500),
            queue: 10_000,
        }
    }
}

impl PushSettings {
    /// The endpoint of a provider, when configured.
    pub fn url(&self, provider: im_domain::push::Provider) -> Option<&str> {
        use im_domain::push::Provider;
        match provider {
            Provider::Unipush => self.unipush_url.as_deref(),
            Provider::Fcm => self.fcm_url.as_deref(),
            Provider::Apns => self.apns_url.as_deref(),
            Provider::Webhook => self.webhook_url.as_deref(),
        }
    }

    /// Whether any provider is configured.
    pub fn enabled(&self) -> bool {
        im_domain::push::Provider::ALL.into_iter().any(|p| self.url(p).is_some())
    }
}
