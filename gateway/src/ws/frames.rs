//! What a client says over the socket: parsed once into a [`ClientFrame`], then handled.

use crate::auth::{Me, Refusal};
use crate::error::ApiError;
use crate::state::AppState;
use crate::typing::Gate;
use im_projections::inbox::Mark;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;

/// An answer to a client frame, ready when its send is durable.
pub(super) type Answer = Pin<Box<dyn Future<Output = String> + Send>>;

/// The frame that answers a `send` on a session that is no longer live.
pub(super) fn revoked_frame(client_msg_id: &Value, refusal: Refusal) -> String {
    error_frame("client_msg_id", client_msg_id.clone(), refusal.api_error())
}

/// An `error` frame answering a client frame: `key` names what it answers (`client_msg_id`
/// for a send, `for` for the other frames).
fn error_frame(key: &str, answers: Value, e: ApiError) -> String {
    let mut data = serde_json::Map::new();
    data.insert(key.to_owned(), answers);
    data.insert("code".into(), json!(e.code));
    data.insert("msg".into(), json!(e.reason));
    json!({"type": "error", "data": data}).to_string()
}

/// `{"type":"ack","data":{"client_msg_id":…,"message":{…}}}`, the message spliced in as
/// the text it was serialized to.
fn ack_frame(client_msg_id: &Value, message: &serde_json::value::RawValue) -> String {
    #[derive(serde::Serialize)]
    struct Ack<'a> {
        r#type: &'static str,
        data: AckData<'a>,
    }
    #[derive(serde::Serialize)]
    struct AckData<'a> {
        client_msg_id: &'a Value,
        message: &'a serde_json::value::RawValue,
    }
    serde_json::to_string(&Ack { r#type: "ack", data: AckData { client_msg_id, message } }).unwrap_or_default()
}

/// Handles a client frame; a `send` is decided and queued now, answered when durable.
/// Unparsable or unknown frames are ignored, never fatal. `Err`: the socket's session
/// is no longer live — answer this and close.
pub(super) async fn on_client_frame(state: &AppState, me: &Me, gate: &mut Gate, text: &str) -> Result<Option<Answer>, String> {
    let Some(frame) = serde_json::from_str::<Value>(text).ok().and_then(ClientFrame::parse) else { return Ok(None) };
    Ok(match frame {
        ClientFrame::Ping => Some(Box::pin(std::future::ready(json!({"type": "pong"}).to_string()))),
        ClientFrame::Ack(seq) => {
            state.ledger().mark(Mark::UpTo { user: me.id.0, slot: me.slot, seq });
            None
        }
        ClientFrame::Typing(typing) => {
            let refused = |e: ApiError| error_frame("for", json!("typing"), e);
            match typing {
                Ok(typing) if gate.admit(&typing, std::time::Instant::now(), state.typing().interval) => {
                    crate::typing::relay(state, me, typing).await.err().map(|e| -> Answer { Box::pin(std::future::ready(refused(e))) })
                }
                Ok(_) => None,
                Err(e) => Some(Box::pin(std::future::ready(refused(e)))),
            }
        }
        ClientFrame::Read(mark) => {
            let refused = |e: ApiError| error_frame("for", json!("read"), e);
            let (state, me) = (state.clone(), me.clone());
            Some(Box::pin(async move {
                match mark {
                    // This socket hears its own mark as the answer; my other device, if
                    // any, as news.
                    Ok(mark) => match crate::reads::mark(&state, &me, mark).await {
                        Ok((row, moved)) => {
                            let frame = crate::reads::own_frame(&me, &row);
                            if moved && state.multi_device() {
                                state.offer_ephemeral_except(me.id, Some(me.session), frame.clone()).await;
                            }
                            frame
                        }
                        Err(e) => refused(e),
                    },
                    Err(e) => refused(e),
                }
            }))
        }
        ClientFrame::Send { client_msg_id, command } => {
            // The session may have ended since the socket opened (a login elsewhere, a
            // logout, a password reset, an operator): nothing is sent on a dead one.
            if let Ok(Err(refusal)) = state.check_session(me.id, me.session).await {
                return Err(revoked_frame(&client_msg_id, refusal));
            }
            let error = |client_msg_id: &Value, e: ApiError| error_frame("client_msg_id", client_msg_id.clone(), e);
            let pending = match command {
                Ok(command) => crate::send::submit(state, me, command).await,
                Err(e) => Err(e),
            };
            Some(match pending {
                Ok(pending) => Box::pin(async move {
                    match pending.await {
                        Ok(sent) => ack_frame(&client_msg_id, &sent.message),
                        Err(e) => error(&client_msg_id, e),
                    }
                }),
                Err(e) => Box::pin(std::future::ready(error(&client_msg_id, e))),
            })
        }
    })
}

/// What a client may say over the socket, parsed once.
#[derive(Debug)]
enum ClientFrame {
    Ping,
    /// Marks my inbox delivered up to this seq.
    Ack(i64),
    /// A typing indicator for the other party of a one-to-one chat.
    Typing(Result<crate::typing::Typing, crate::error::ApiError>),
    /// Marks one of my chats read up to a seq.
    Read(Result<crate::reads::ReadMark, crate::error::ApiError>),
    /// `sendmessage` as a frame: the command, or why its fields are refused.
    Send {
        client_msg_id: Value,
        command: Result<crate::send::SendMessage, crate::error::ApiError>,
    },
}

impl ClientFrame {
    fn parse(mut value: Value) -> Option<Self> {
        match value.get("type")?.as_str()? {
            "ping" => Some(Self::Ping),
            "ack" => {
                let seq = value.get("seq")?;
                seq.as_i64().or_else(|| seq.as_str()?.trim().parse().ok()).map(Self::Ack)
            }
            "send" => {
                let Value::Object(fields) = value.get_mut("data")?.take() else { return None };
                let client_msg_id = fields.get("client_msg_id").cloned().unwrap_or(Value::Null);
                let command = if fields.values().any(crate::params::contains_nul) {
                    Err(crate::error::ApiError::nul_refused())
                } else {
                    crate::send::SendMessage::parse(&crate::params::Params::from_fields(fields))
                };
                Some(Self::Send { client_msg_id, command })
            }
            "read" => {
                // `{"type":"read","data":{…}}`, or the fields beside `type`.
                let fields = match value.get_mut("data").map(Value::take) {
                    Some(Value::Object(fields)) => fields,
                    _ => match value {
                        Value::Object(fields) => fields,
                        _ => return None,
                    },
                };
                Some(Self::Read(crate::reads::ReadMark::parse(&crate::params::Params::from_fields(fields))))
            }
            "typing" => {
                let Value::Object(fields) = value.get_mut("data")?.take() else { return None };
                Some(Self::Typing(crate::typing::Typing::parse(&fields)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_once_and_junk_is_ignored() {
        let parse = |s: &str| serde_json::from_str::<Value>(s).ok().and_then(ClientFrame::parse);
        assert!(matches!(parse(r#"{"type":"ping"}"#), Some(ClientFrame::Ping)));
        assert!(matches!(parse(r#"{"type":"ack","seq":7}"#), Some(ClientFrame::Ack(7))));
        assert!(matches!(parse(r#"{"type":"ack","seq":"8"}"#), Some(ClientFrame::Ack(8))));
        assert!(parse(r#"{"type":"ack"}"#).is_none());
        let send = parse(r#"{"type":"send","data":{"sendto_id":2,"chatType":"single","type":"text","data":"hi","client_msg_id":"k1"}}"#);
        match send {
            Some(ClientFrame::Send { client_msg_id, command: Ok(command) }) => {
                assert_eq!(client_msg_id, json!("k1"));
                assert_eq!(command.to, 2);
            }
            other => panic!("a valid send: {other:?}"),
        }
        // A send whose fields are refused is still a send, answered with an error.
        match parse(r#"{"type":"send","data":{"sendto_id":0}}"#) {
            Some(ClientFrame::Send { command: Err(e), .. }) => assert_eq!(e.code, "invalid_sendto_id"),
            other => panic!("a refused send: {other:?}"),
        }
        assert!(parse(r#"{"type":"send","data":"x"}"#).is_none());
        match parse(r#"{"type":"read","data":{"chatType":"group","id":3,"seq":9}}"#) {
            Some(ClientFrame::Read(Ok(mark))) => assert_eq!((mark.chat.id, mark.seq), (3, Some(9))),
            other => panic!("a read frame: {other:?}"),
        }
        match parse(r#"{"type":"read","chatType":"single","id":"4"}"#) {
            Some(ClientFrame::Read(Ok(mark))) => assert_eq!((mark.chat.id, mark.seq), (4, None)),
            other => panic!("a read frame with its fields beside type: {other:?}"),
        }
        match parse(r#"{"type":"read","data":{"chatType":"single","id":4,"seq":-1}}"#) {
            Some(ClientFrame::Read(Err(e))) => assert_eq!(e.code, "invalid_seq"),
            other => panic!("a refused read: {other:?}"),
        }
        assert!(parse("not json").is_none());
        assert!(parse(r#"{"type":"whatever"}"#).is_none());
        assert!(parse(r#"[1,2]"#).is_none());
    }
}
