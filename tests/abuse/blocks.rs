//! Blocks and consent (issue 11, items 6, 9 and 10): a block is the blocker's and
//! outlives the friendship, covering messages, friend requests and group invitations; a
//! refused friend request waits out a cooldown before it may be repeated.

use im_e2e::{Backend, TestServer, TestUser, assert_fail, both_backends};
use serde_json::{Value, json};

both_backends!(a_block_survives_the_end_of_the_friendship, a_refused_request_waits_out_the_cooldown);

const SEND: &str = "/api/chat/socket/sendmessage";

fn ok_data(resp: (u16, Value)) -> Value {
    assert_eq!(resp.0, 200, "{}", resp.1);
    resp.1["data"].clone()
}

async fn head(server: &TestServer) -> i64 {
    server.state.store().head().await.unwrap()
}

async fn apply(server: &TestServer, from: &TestUser, to: i64) -> (u16, Value) {
    server.post("/api/chat/applyfriend", Some(&from.token), json!({"friend_id": to})).await
}

async fn befriend(server: &TestServer, a: &TestUser, b: &TestUser) {
    let id = ok_data(apply(server, a, b.id).await)["id"].as_i64().unwrap();
    ok_data(server.post(&format!("/api/chat/handleapply/{id}"), Some(&b.token), json!({"status": "agree"})).await);
}

fn text(to: i64, data: &str) -> Value {
    json!({"sendto_id": to, "chatType": "single", "type": "text", "data": data})
}

/// The blocked user deletes the friendship to shake the block off, then messages and
/// asks again: everything is refused and nothing reaches the log, until the blocker
/// lifts the block (which needs no friendship).
async fn a_block_survives_the_end_of_the_friendship(backend: Backend) {
    let server = TestServer::start(backend).await;
    let blocker = server.register("blocker01", "123456").await;
    let pest = server.register("pest0001", "123456").await;
    // The blocker takes messages from strangers (so only the block stands in the way).
    ok_data(server.post("/api/chat/userset", Some(&blocker.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    befriend(&server, &pest, &blocker).await;
    ok_data(server.post(SEND, Some(&pest.token), text(blocker.id, "hello friend")).await);
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", pest.id), Some(&blocker.token), json!({})).await);
    assert_fail(&server.post(SEND, Some(&pest.token), text(blocker.id, "let me in")).await, 400, "blocked");

    ok_data(server.post(&format!("/api/chat/deletegoodfriend/{}", blocker.id), Some(&pest.token), json!({})).await);
    let before = head(&server).await;
    assert_fail(&server.post(SEND, Some(&pest.token), text(blocker.id, "not friends now")).await, 400, "blocked");
    assert_fail(&apply(&server, &pest, blocker.id).await, 400, "blocked");
    let direct = server.post("/api/chat/autoAddFriendAndAgree", Some(&pest.token), json!({"friend_id": blocker.id})).await;
    assert_eq!(direct.0, 400, "{}", direct.1);
    assert_eq!(head(&server).await, before, "nothing the blocked user tried reached the log");

    // Lifting the block needs no friendship; then the stranger rules apply again.
    let lifted = ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", pest.id), Some(&blocker.token), json!({})).await);
    assert_eq!(lifted["isblack"], 0);
    ok_data(server.post(SEND, Some(&pest.token), text(blocker.id, "sorry")).await);
    ok_data(apply(&server, &pest, blocker.id).await);

    // A block survives a restart of the read side (it is in the log, not only a row).
    let stranger = server.register("stranger1", "123456").await;
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", stranger.id), Some(&blocker.token), json!({})).await);
    assert_fail(&server.post(SEND, Some(&stranger.token), text(blocker.id, "hi")).await, 400, "blocked");
    assert!(server.state.friends().is_blocked_by(blocker.id, stranger.id).await.unwrap());
}

/// A refused request may not be repeated to the same user before the cooldown is over;
/// after it, it may.
async fn a_refused_request_waits_out_the_cooldown(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.friend_retry = std::time::Duration::from_secs(1)).await;
    let asker = server.register("asker001", "123456").await;
    let busy = server.register("busy0001", "123456").await;
    let id = ok_data(apply(&server, &asker, busy.id).await)["id"].as_i64().unwrap();
    ok_data(server.post(&format!("/api/chat/handleapply/{id}"), Some(&busy.token), json!({"status": "refuse"})).await);
    let before = head(&server).await;
    for _ in 0..5 {
        assert_fail(&apply(&server, &asker, busy.id).await, 429, "recently_refused");
    }
    assert_eq!(head(&server).await, before, "repeats append nothing");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(ok_data(apply(&server, &asker, busy.id).await)["status"], "pending");
}
