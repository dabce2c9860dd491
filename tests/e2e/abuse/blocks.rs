//! Blocks and consent (issue 11, items 6, 9 and 10): a block is the blocker's and
//! outlives the friendship, covering messages, friend requests and group invitations; a
//! refused friend request waits out a cooldown before it may be repeated.

use im_e2e::{Backend, TestServer, TestUser, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};

both_backends!(
    a_block_survives_the_end_of_the_friendship,
    a_refused_request_waits_out_the_cooldown,
    nobody_is_pulled_into_a_group_without_consent
);

const SEND: &str = "/api/chat/socket/sendmessage";

async fn apply(server: &TestServer, from: &TestUser, to: i64) -> (u16, Value) {
    server.post("/api/chat/applyfriend", Some(&from.token), json!({"friend_id": to})).await
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
    server.befriend(&pest, &blocker).await;
    ok_data(server.post(SEND, Some(&pest.token), text(blocker.id, "hello friend")).await);
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", pest.id), Some(&blocker.token), json!({})).await);
    assert_fail(&server.post(SEND, Some(&pest.token), text(blocker.id, "let me in")).await, 400, "blocked");

    ok_data(server.post(&format!("/api/chat/deletegoodfriend/{}", blocker.id), Some(&pest.token), json!({})).await);
    let before = server.head().await;
    assert_fail(&server.post(SEND, Some(&pest.token), text(blocker.id, "not friends now")).await, 400, "blocked");
    assert_fail(&apply(&server, &pest, blocker.id).await, 400, "blocked");
    let direct = server.post("/api/chat/autoAddFriendAndAgree", Some(&pest.token), json!({"friend_id": blocker.id})).await;
    assert_eq!(direct.0, 400, "{}", direct.1);
    assert_eq!(server.head().await, before, "nothing the blocked user tried reached the log");

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
    let before = server.head().await;
    for _ in 0..5 {
        assert_fail(&apply(&server, &asker, busy.id).await, 429, "recently_refused");
    }
    assert_eq!(server.head().await, before, "repeats append nothing");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(ok_data(apply(&server, &asker, busy.id).await)["status"], "pending");
}

async fn invite(server: &TestServer, by: &TestUser, group: i64, user: i64) -> (u16, Value) {
    server.post("/api/chat/groupInviteUser", Some(&by.token), json!({"id": group, "user_id": user})).await
}

async fn members(server: &TestServer, group: i64) -> Vec<i64> {
    let info = server.state.groups().group(im_domain::GroupId(group)).await.unwrap().unwrap();
    let mut ids: Vec<i64> = info["group_users"].as_array().unwrap().iter().map(|m| m["user_id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

/// Only the inviter's friends join by the group's policy; anyone else gets an invitation
/// they accept or decline (even in an open group, from any member), and someone who
/// blocked the inviter is neither added nor asked.
async fn nobody_is_pulled_into_a_group_without_consent(backend: Backend) {
    let server = TestServer::start(backend).await;
    let owner = server.register("gowner01", "123456").await;
    let member = server.register("gmember1", "123456").await;
    let stranger = server.register("gstrang1", "123456").await;
    let hater = server.register("ghater01", "123456").await;
    server.befriend(&owner, &member).await;
    server.befriend(&owner, &hater).await;
    let created = ok_data(server.post("/api/chat/group/create", Some(&owner.token), json!({"ids": [member.id]})).await);
    let group = created["id"].as_i64().unwrap();
    // An open group: members add their friends at once.
    ok_data(server.post("/api/chat/groupAddUserSet", Some(&owner.token), json!({"id": group, "invite_confirm": 0})).await);

    let mut stranger_ws = server.ws(&stranger.token).await;
    stranger_ws.next_non_ping().await; // welcome
    let invited = ok_data(invite(&server, &member, group, stranger.id).await);
    assert_eq!(invited["status"], "invited");
    assert!(!members(&server, group).await.contains(&stranger.id), "asked, not added");
    let notice = loop {
        let frame = stranger_ws.next_non_ping().await;
        if frame["type"] == "notice" {
            break frame;
        }
    };
    assert_eq!(notice["data"]["kind"], "group_invitation", "{notice}");
    assert_eq!(notice["data"]["group_id"], group);
    assert_fail(&invite(&server, &owner, group, stranger.id).await, 400, "already_invited");
    let waiting = ok_data(server.get("/api/chat/groupInvitations", Some(&stranger.token)).await);
    assert_eq!(waiting.as_array().unwrap().len(), 1, "{waiting}");
    assert_eq!(waiting[0]["inviter_id"], member.id);

    // Declined: still out, nothing waiting; asked again and accepted: in.
    let handle = |status: &str| json!({"id": group, "status": status});
    let declined = ok_data(server.post("/api/chat/groupInvitationHandle", Some(&stranger.token), handle("refuse")).await);
    assert_eq!(declined["status"], "refused");
    assert!(!members(&server, group).await.contains(&stranger.id));
    assert_eq!(ok_data(server.get("/api/chat/groupInvitations", Some(&stranger.token)).await), json!([]));
    assert_fail(&server.post("/api/chat/groupInvitationHandle", Some(&stranger.token), handle("agree")).await, 400, "no_invitation");
    ok_data(invite(&server, &owner, group, stranger.id).await);
    let joined = ok_data(server.post("/api/chat/groupInvitationHandle", Some(&stranger.token), handle("agree")).await);
    assert_eq!(joined["status"], "joined");
    assert!(members(&server, group).await.contains(&stranger.id));

    // Someone who blocked the inviter is neither added nor asked, friend or not.
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", owner.id), Some(&hater.token), json!({})).await);
    let before = server.head().await;
    assert_fail(&invite(&server, &owner, group, hater.id).await, 400, "blocked");
    assert_fail(&server.post("/api/chat/group/create", Some(&owner.token), json!({"ids": [hater.id, member.id]})).await, 400, "blocked");
    assert_eq!(server.head().await, before, "nothing appended");
    assert_eq!(ok_data(server.get("/api/chat/groupInvitations", Some(&hater.token)).await), json!([]));
    assert!(!members(&server, group).await.contains(&hater.id));
}
