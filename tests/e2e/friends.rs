//! End-to-end: SPEC section 3 — friend requests and their answers (with the `notice`
//! frames), direct adds, the grouped friend list, each side's flags, the blacklist,
//! ending a friendship, reports, the routes' roles, and exactly-once acceptance under
//! concurrency. Every test runs on SQLite and on Postgres.

use im_e2e::{Backend, TestServer, assert_fail, both_backends, ok_data};
use im_e2e::{TestUser, WsClient};
use serde_json::{Value, json};

both_backends!(
    apply_succeeds_notifies_and_refusals_change_nothing,
    request_list_is_newest_first_and_paged,
    answering_a_request,
    crossing_requests_accepted_concurrently_make_one_friendship,
    one_request_accepted_concurrently_is_accepted_once,
    auto_add_respects_invite_confirm,
    friend_list_is_grouped_by_initial,
    friend_info_and_my_side_of_the_flags,
    blacklist_and_ismygoodfriend,
    deleting_ends_the_friendship_on_both_sides,
    reports_are_stored,
    route_roles,
);

// ---------------------------------------------------------------------------------
// helpers

/// POST /api/chat/applyfriend with `friend_id` merged into `extra`.
async fn apply(server: &TestServer, from: &TestUser, to: i64, extra: Value) -> (u16, Value) {
    let mut body = extra;
    body["friend_id"] = json!(to);
    server.post("/api/chat/applyfriend", Some(&from.token), body).await
}

async fn handle(server: &TestServer, by: &TestUser, request_id: i64, body: Value) -> (u16, Value) {
    server.post(&format!("/api/chat/handleapply/{request_id}"), Some(&by.token), body).await
}

/// `a` asks, `b` agrees: friends on both sides. Returns the request id.
async fn friend_list(server: &TestServer, user: &TestUser) -> Value {
    ok_data(server.get("/api/chat/goodfriendlist/1", Some(&user.token)).await)
}

async fn friend_count(server: &TestServer, user: &TestUser) -> i64 {
    friend_list(server, user).await["count"].as_i64().unwrap()
}

/// Every friend id in `user`'s list, in display order.
async fn friend_ids(server: &TestServer, user: &TestUser) -> Vec<i64> {
    let list = friend_list(server, user).await;
    list["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["list"].as_array().unwrap().iter().map(|f| f["friend_id"].as_i64().unwrap()))
        .collect()
}

async fn requests_to(server: &TestServer, user: &TestUser) -> Value {
    ok_data(server.get("/api/chat/listapplyfriend/1?limit=100", Some(&user.token)).await)
}

/// The status of request `id` as its addressee's list shows it.
async fn request_status(server: &TestServer, addressee: &TestUser, id: i64) -> String {
    let list = requests_to(server, addressee).await;
    let row = list["rows"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("request {id} in {list}"));
    row["status"].as_str().unwrap().to_owned()
}

async fn info(server: &TestServer, me: &TestUser, friend: i64) -> (u16, Value) {
    server.get(&format!("/api/chat/getgoodfriendinfo/{friend}"), Some(&me.token)).await
}

/// How many events of this type the log holds.
async fn event_count(server: &TestServer, event_type: &str) -> usize {
    let events = server.state.store().read_all(0, 10_000).await.unwrap();
    events.iter().filter(|e| e.event_type == event_type).count()
}

/// Events of this type whose payload names both users as `from`/`to` (either way).
async fn pair_event_count(server: &TestServer, event_type: &str, a: i64, b: i64) -> usize {
    let events = server.state.store().read_all(0, 10_000).await.unwrap();
    events
        .iter()
        .filter(|e| e.event_type == event_type)
        .filter(|e| {
            let (from, to) = {
                let p = e.payload.tree();
                (p["from"].as_i64(), p["to"].as_i64())
            };
            (from, to) == (Some(a), Some(b)) || (from, to) == (Some(b), Some(a))
        })
        .count()
}

/// The next `notice` frame, skipping welcome/system frames and pings.
async fn next_notice(ws: &mut WsClient) -> Value {
    loop {
        let frame = ws.next_non_ping().await;
        match frame["type"].as_str() {
            Some("notice") => return frame,
            Some("system") => continue,
            _ => panic!("expected a notice frame, got {frame}"),
        }
    }
}

async fn set_nickname(server: &TestServer, user: &TestUser, nickname: &str) {
    ok_data(server.post("/api/chat/updateUserinfo", Some(&user.token), json!({"nickname": nickname})).await);
}

async fn confirm_nobody(server: &TestServer, user: &TestUser) {
    let set =
        ok_data(server.post("/api/chat/userset", Some(&user.token), json!({"userset": r#"{"friendset":{"invite_confirm":0}}"#})).await);
    assert_eq!(set, "ok");
}

// ---------------------------------------------------------------------------------
// applyfriend

async fn apply_succeeds_notifies_and_refusals_change_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("applya01", "123456").await;
    let b = server.register("applyb01", "123456").await;
    let c = server.register("applyc01", "123456").await;
    let d = server.register("applyd01", "123456").await;
    let mut b_ws = server.ws(&b.token).await;
    assert_eq!(b_ws.next_non_ping().await["type"], "system"); // welcome

    // Integers as strings are accepted; the applicant's choices are kept.
    let req = ok_data(
        server
            .post(
                "/api/chat/applyfriend",
                Some(&a.token),
                json!({"friend_id": b.id.to_string(), "nickname": "Bee", "lookme": "0", "lookhim": "1"}),
            )
            .await,
    );
    let req_id = req["id"].as_i64().unwrap();
    assert!(req_id >= 1, "{req}");
    assert_eq!(req["user_id"], a.id);
    assert_eq!(req["friend_id"], b.id);
    assert_eq!(req["nickname"], "Bee");
    assert_eq!(req["lookme"], 0);
    assert_eq!(req["lookhim"], 1);
    assert_eq!(req["status"], "pending");
    assert!(req["create_time"].as_i64().unwrap() > 1_600_000_000_000, "{req}");
    assert_eq!(req["user"]["id"], a.id);
    assert_eq!(req["user"]["uuid"], a.uuid.as_str());
    assert_eq!(req["user"]["username"], "applya01");
    assert!(req["user"].get("nickname").is_some() && req["user"].get("avatar").is_some(), "{req}");
    assert!(req["user"].get("password").is_none(), "{req}");

    // The addressee is told at once.
    let notice = next_notice(&mut b_ws).await;
    assert_eq!(notice["data"]["kind"], "friend_apply", "{notice}");
    assert_eq!(notice["data"]["request"]["id"], req_id, "{notice}");
    assert!(notice["timestamp"].as_i64().unwrap() > 1_600_000_000_000, "{notice}");

    // A form body, with the defaults.
    let by_form = ok_data(server.post_form("/api/chat/applyfriend", Some(&c.token), &[("friend_id", &b.id.to_string())]).await);
    assert_eq!(by_form["user_id"], c.id);
    assert_eq!(by_form["friend_id"], b.id);
    assert_eq!(by_form["nickname"], "");
    assert_eq!(by_form["lookme"], 1);
    assert_eq!(by_form["lookhim"], 1);
    assert_eq!(by_form["status"], "pending");
    assert_eq!(next_notice(&mut b_ws).await["data"]["kind"], "friend_apply");

    // Refusals: each leaves everything as it was.
    server.state.set_user_active("ops", im_domain::UserId(d.id), false).await.unwrap();
    let requested_before = event_count(&server, "FriendRequested").await;
    let b_requests_before = requests_to(&server, &b).await;
    assert_eq!(b_requests_before["count"], 2);

    assert_fail(&apply(&server, &a, a.id, json!({})).await, 400, "self_request");
    assert_fail(&apply(&server, &a, 999_999, json!({})).await, 400, "target_unavailable");
    assert_fail(&apply(&server, &a, d.id, json!({})).await, 400, "target_unavailable");
    assert_fail(&apply(&server, &a, b.id, json!({})).await, 400, "request_pending");
    assert_fail(&apply(&server, &a, b.id, json!({"nickname": "again"})).await, 400, "request_pending");
    assert_fail(&server.post("/api/chat/applyfriend", Some(&a.token), json!({})).await, 400, "missing_friend_id");
    assert_fail(&server.post("/api/chat/applyfriend", Some(&a.token), json!({"friend_id": ""})).await, 400, "missing_friend_id");
    assert_fail(&server.post("/api/chat/applyfriend", Some(&a.token), json!({"friend_id": "abc"})).await, 400, "invalid_friend_id");
    assert_fail(&server.post("/api/chat/applyfriend", Some(&a.token), json!({"friend_id": 1.5})).await, 400, "invalid_friend_id");
    assert_fail(&server.post("/api/chat/applyfriend", Some(&a.token), json!({"friend_id": "0"})).await, 400, "invalid_friend_id");
    assert_fail(&server.post("/api/chat/applyfriend", Some(&a.token), json!({"friend_id": -3})).await, 400, "invalid_friend_id");
    assert_fail(&apply(&server, &c, a.id, json!({"lookme": "5"})).await, 400, "invalid_lookme");
    assert_fail(&apply(&server, &c, a.id, json!({"lookhim": "yes"})).await, 400, "invalid_lookhim");
    assert_fail(&server.post("/api/chat/applyfriend", None, json!({"friend_id": b.id})).await, 401, "missing_token");

    assert_eq!(event_count(&server, "FriendRequested").await, requested_before, "no request was recorded");
    assert_eq!(requests_to(&server, &b).await, b_requests_before);
    assert_eq!(requests_to(&server, &a).await["count"], 0);
    assert_eq!(friend_count(&server, &a).await, 0);
    assert!(b_ws.quiet_for(300).await, "refused requests notify nobody");

    // Already friends, whichever side asks.
    ok_data(handle(&server, &b, req_id, json!({"status": "agree"})).await);
    assert_fail(&apply(&server, &a, b.id, json!({})).await, 400, "already_friends");
    assert_fail(&apply(&server, &b, a.id, json!({})).await, 400, "already_friends");
    assert_eq!(event_count(&server, "FriendRequested").await, requested_before);

    // A visitor may ask too.
    let visitor = server.visitor("device-apply-01").await;
    let from_visitor = ok_data(apply(&server, &visitor, a.id, json!({})).await);
    assert_eq!(from_visitor["user_id"], visitor.id);
    assert_eq!(from_visitor["user"]["id"], visitor.id);
    assert_eq!(from_visitor["status"], "pending");
    assert_eq!(requests_to(&server, &a).await["count"], 1);
}

// ---------------------------------------------------------------------------------
// listapplyfriend

async fn request_list_is_newest_first_and_paged(backend: Backend) {
    let server = TestServer::start(backend).await;
    let target = server.register("listtgt1", "123456").await;
    let mut ids = Vec::new();
    let mut applicants = Vec::new();
    for i in 1..=3 {
        let u = server.register(&format!("listapp{i}"), "123456").await;
        ids.push(ok_data(apply(&server, &u, target.id, json!({"nickname": format!("n{i}")})).await)["id"].as_i64().unwrap());
        applicants.push(u);
    }
    // A request elsewhere is not listed.
    ok_data(apply(&server, &applicants[0], applicants[1].id, json!({})).await);

    let all = ok_data(server.get("/api/chat/listapplyfriend/1", Some(&target.token)).await);
    assert_eq!(all["count"], 3, "{all}");
    let rows = all["rows"].as_array().unwrap();
    let listed: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, vec![ids[2], ids[1], ids[0]], "newest first");
    let newest = &rows[0];
    assert_eq!(newest["user_id"], applicants[2].id);
    assert_eq!(newest["friend_id"], target.id);
    assert_eq!(newest["nickname"], "n3");
    assert_eq!(newest["status"], "pending");
    assert_eq!(newest["lookme"], 1);
    assert_eq!(newest["lookhim"], 1);
    assert!(newest["create_time"].as_i64().unwrap() > 1_600_000_000_000);
    let mut user_keys: Vec<&str> = newest["user"].as_object().unwrap().keys().map(String::as_str).collect();
    user_keys.sort_unstable();
    assert_eq!(user_keys, ["avatar", "id", "nickname", "username", "uuid"], "{newest}");
    assert_eq!(newest["user"]["uuid"], applicants[2].uuid.as_str());
    assert_eq!(newest["user"]["username"], "listapp3");

    // Paging.
    let page1 = ok_data(server.get("/api/chat/listapplyfriend/1?limit=2", Some(&target.token)).await);
    assert_eq!(page1["count"], 3);
    let p1: Vec<i64> = page1["rows"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(p1, vec![ids[2], ids[1]]);
    let page2 = ok_data(server.get("/api/chat/listapplyfriend/2?limit=2", Some(&target.token)).await);
    assert_eq!(page2["count"], 3);
    let p2: Vec<i64> = page2["rows"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(p2, vec![ids[0]]);
    let page3 = ok_data(server.get("/api/chat/listapplyfriend/3?limit=2", Some(&target.token)).await);
    assert_eq!(page3["count"], 3);
    assert_eq!(page3["rows"], json!([]));
    // `limit` may come as the body's or query's string; the max is allowed.
    ok_data(server.get("/api/chat/listapplyfriend/1?limit=100", Some(&target.token)).await);

    assert_fail(&server.get("/api/chat/listapplyfriend/0", Some(&target.token)).await, 400, "invalid_page");
    assert_fail(&server.get("/api/chat/listapplyfriend/-1", Some(&target.token)).await, 400, "invalid_page");
    assert_fail(&server.get("/api/chat/listapplyfriend/abc", Some(&target.token)).await, 400, "invalid_page");
    assert_fail(&server.get("/api/chat/listapplyfriend/1?limit=101", Some(&target.token)).await, 400, "invalid_limit");
    assert_fail(&server.get("/api/chat/listapplyfriend/1?limit=0", Some(&target.token)).await, 400, "invalid_limit");
    assert_fail(&server.get("/api/chat/listapplyfriend/1?limit=x", Some(&target.token)).await, 400, "invalid_limit");

    let visitor = server.visitor("device-list-01").await;
    assert_fail(&server.get("/api/chat/listapplyfriend/1", Some(&visitor.token)).await, 403, "visitor_forbidden");
    assert_fail(&server.get("/api/chat/listapplyfriend/1", None).await, 401, "missing_token");

    // Answered requests stay listed with their status.
    ok_data(handle(&server, &target, ids[0], json!({"status": "refuse"})).await);
    ok_data(handle(&server, &target, ids[1], json!({"status": "agree"})).await);
    assert_eq!(request_status(&server, &target, ids[0]).await, "refuse");
    assert_eq!(request_status(&server, &target, ids[1]).await, "agree");
    assert_eq!(request_status(&server, &target, ids[2]).await, "pending");
}

// ---------------------------------------------------------------------------------
// handleapply + isApplyfriend

async fn answering_a_request(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("handlea1", "123456").await;
    let b = server.register("handleb1", "123456").await;
    let c = server.register("handlec1", "123456").await;
    let mut a_ws = server.ws(&a.token).await;
    assert_eq!(a_ws.next_non_ping().await["type"], "system");

    // a asks b, choosing a remark and visibility for b.
    let req = ok_data(apply(&server, &a, b.id, json!({"nickname": "Bobby", "lookme": 0, "lookhim": 1})).await);
    let id = req["id"].as_i64().unwrap();

    // isApplyfriend: the pending request from that user to me, only that direction.
    let pending = ok_data(server.post(&format!("/api/chat/isApplyfriend/{}", a.uuid), Some(&b.token), json!({})).await);
    assert_eq!(pending["id"], id);
    assert_eq!(pending["user_id"], a.id);
    assert_eq!(pending["friend_id"], b.id);
    assert_eq!(pending["status"], "pending");
    let none = server.post(&format!("/api/chat/isApplyfriend/{}", b.uuid), Some(&a.token), json!({})).await;
    assert_fail(&none, 400, "request_not_found");
    assert_eq!(none.1["data"], "用户申请信息不存在");
    let none = server.post(&format!("/api/chat/isApplyfriend/{}", c.uuid), Some(&b.token), json!({})).await;
    assert_fail(&none, 400, "request_not_found");
    assert_eq!(none.1["data"], "用户申请信息不存在");
    let unknown = uuid::Uuid::new_v4();
    let none = server.post(&format!("/api/chat/isApplyfriend/{unknown}"), Some(&b.token), json!({})).await;
    assert_fail(&none, 400, "request_not_found");
    assert_eq!(none.1["data"], "用户申请信息不存在");

    // Only the addressee answers, with a valid status, an existing request.
    assert_fail(&handle(&server, &a, id, json!({"status": "agree"})).await, 403, "not_addressee");
    assert_fail(&handle(&server, &c, id, json!({"status": "agree"})).await, 403, "not_addressee");
    assert_fail(&handle(&server, &c, id, json!({"status": "refuse"})).await, 403, "not_addressee");
    assert_fail(&handle(&server, &b, id, json!({"status": "maybe"})).await, 400, "invalid_status");
    assert_fail(&handle(&server, &b, id, json!({})).await, 400, "missing_status");
    assert_fail(&handle(&server, &b, 999_999, json!({"status": "agree"})).await, 404, "request_not_found");
    assert_fail(&server.post("/api/chat/handleapply/abc", Some(&b.token), json!({"status": "agree"})).await, 400, "invalid_id");
    assert_fail(&handle(&server, &b, id, json!({"status": "agree", "lookhim": "7"})).await, 400, "invalid_lookhim");
    assert_eq!(request_status(&server, &b, id).await, "pending", "failed answers change nothing");
    assert_eq!(friend_count(&server, &b).await, 0);
    assert_eq!(event_count(&server, "FriendRequestAccepted").await, 0);

    // b agrees (a form body), choosing its own remark and visibility for a.
    let agreed = ok_data(
        server
            .post_form(
                &format!("/api/chat/handleapply/{id}"),
                Some(&b.token),
                &[("status", "agree"), ("nickname", "Alice"), ("lookme", "1"), ("lookhim", "0")],
            )
            .await,
    );
    assert_eq!(agreed["id"], id);
    assert_eq!(agreed["status"], "agree");
    assert_eq!(agreed["user_id"], a.id);

    // The applicant hears of it.
    let notice = next_notice(&mut a_ws).await;
    assert_eq!(notice["data"]["kind"], "friend_accepted", "{notice}");
    assert_eq!(notice["data"]["request"]["id"], id, "{notice}");

    // Friends on both sides, each with its own choices.
    assert_eq!(friend_ids(&server, &a).await, vec![b.id]);
    assert_eq!(friend_ids(&server, &b).await, vec![a.id]);
    let a_view = ok_data(info(&server, &a, b.id).await);
    assert_eq!(a_view["friend_id"], b.id);
    assert_eq!(a_view["nickname"], "Bobby");
    assert_eq!(a_view["lookme"], 0);
    assert_eq!(a_view["lookhim"], 1);
    assert_eq!(a_view["star"], 0);
    assert_eq!(a_view["isblack"], 0);
    let b_view = ok_data(info(&server, &b, a.id).await);
    assert_eq!(b_view["friend_id"], a.id);
    assert_eq!(b_view["nickname"], "Alice");
    assert_eq!(b_view["lookme"], 1);
    assert_eq!(b_view["lookhim"], 0);
    let a_list = friend_list(&server, &a).await;
    assert_eq!(a_list["rows"][0]["list"][0]["beizhu"], "Bobby", "{a_list}");
    let b_list = friend_list(&server, &b).await;
    assert_eq!(b_list["rows"][0]["list"][0]["beizhu"], "Alice", "{b_list}");

    // Handled once only; the request is no longer pending.
    assert_fail(&handle(&server, &b, id, json!({"status": "agree"})).await, 400, "already_handled");
    assert_fail(&handle(&server, &b, id, json!({"status": "refuse"})).await, 400, "already_handled");
    assert_eq!(request_status(&server, &b, id).await, "agree");
    assert_fail(&server.post(&format!("/api/chat/isApplyfriend/{}", a.uuid), Some(&b.token), json!({})).await, 400, "request_not_found");
    assert_eq!(pair_event_count(&server, "FriendRequestAccepted", a.id, b.id).await, 1);

    // Refusing: no friendship, no accepted notice; the applicant may not ask again at
    // once (IM_FRIEND_RETRY_SECS, a day by default).
    let mut c_ws = server.ws(&c.token).await;
    assert_eq!(c_ws.next_non_ping().await["type"], "system");
    let from_c = ok_data(apply(&server, &c, b.id, json!({})).await)["id"].as_i64().unwrap();
    let refused = ok_data(handle(&server, &b, from_c, json!({"status": "refuse"})).await);
    assert_eq!(refused["status"], "refuse");
    assert_eq!(request_status(&server, &b, from_c).await, "refuse");
    assert_eq!(friend_count(&server, &c).await, 0);
    assert_eq!(friend_ids(&server, &b).await, vec![a.id]);
    assert_fail(&handle(&server, &b, from_c, json!({"status": "agree"})).await, 400, "already_handled");
    assert!(c_ws.quiet_for(300).await, "a refusal sends no friend_accepted notice");
    assert_eq!(event_count(&server, "FriendRequestRefused").await, 1);
    let requested = event_count(&server, "FriendRequested").await;
    assert_fail(&apply(&server, &c, b.id, json!({})).await, 429, "recently_refused");
    assert_eq!(event_count(&server, "FriendRequested").await, requested, "the repeat appended nothing");
}

// ---------------------------------------------------------------------------------
// concurrency

async fn crossing_requests_accepted_concurrently_make_one_friendship(backend: Backend) {
    let server = TestServer::start(backend).await;
    for round in 0..3 {
        let a = server.register(&format!("crossa{round}"), "123456").await;
        let b = server.register(&format!("crossb{round}"), "123456").await;
        // Requests both ways are allowed while neither is answered.
        let a_to_b = ok_data(apply(&server, &a, b.id, json!({"nickname": "from a"})).await)["id"].as_i64().unwrap();
        let b_to_a = ok_data(apply(&server, &b, a.id, json!({"nickname": "from b"})).await)["id"].as_i64().unwrap();

        let (by_b, by_a) =
            tokio::join!(handle(&server, &b, a_to_b, json!({"status": "agree"})), handle(&server, &a, b_to_a, json!({"status": "agree"})),);
        let results = [&by_b, &by_a];
        let successes = results.iter().filter(|r| r.0 == 200).count();
        assert!(successes >= 1, "one acceptance wins: {by_b:?} {by_a:?}");
        for r in results {
            if r.0 != 200 {
                assert_fail(r, 400, "already_handled");
            } else {
                assert_eq!(r.1["data"]["status"], "agree");
            }
        }

        assert_eq!(friend_ids(&server, &a).await, vec![b.id], "round {round}");
        assert_eq!(friend_ids(&server, &b).await, vec![a.id], "round {round}");
        assert_eq!(friend_count(&server, &a).await, 1);
        assert_eq!(friend_count(&server, &b).await, 1);
        assert_eq!(request_status(&server, &b, a_to_b).await, "agree");
        assert_eq!(request_status(&server, &a, b_to_a).await, "agree");
        assert_eq!(pair_event_count(&server, "FriendRequestAccepted", a.id, b.id).await, 1, "round {round}");
        // Neither pending request survives.
        assert_fail(
            &server.post(&format!("/api/chat/isApplyfriend/{}", a.uuid), Some(&b.token), json!({})).await,
            400,
            "request_not_found",
        );
        assert_fail(
            &server.post(&format!("/api/chat/isApplyfriend/{}", b.uuid), Some(&a.token), json!({})).await,
            400,
            "request_not_found",
        );
        // Each side kept the remark of the request that won.
        let a_remark = ok_data(info(&server, &a, b.id).await)["nickname"].clone();
        let b_remark = ok_data(info(&server, &b, a.id).await)["nickname"].clone();
        assert!(a_remark == "from a" || b_remark == "from b", "the winning applicant's remark is kept: {a_remark} {b_remark}");
    }
}

async fn one_request_accepted_concurrently_is_accepted_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("twicea01", "123456").await;
    let b = server.register("twiceb01", "123456").await;

    // Five identical requests at once: one is recorded, the rest are pending duplicates.
    let applies = futures_util::future::join_all((0..5).map(|_| apply(&server, &a, b.id, json!({})))).await;
    assert_eq!(applies.iter().filter(|r| r.0 == 200).count(), 1, "{applies:?}");
    for r in applies.iter().filter(|r| r.0 != 200) {
        assert_fail(r, 400, "request_pending");
    }
    assert_eq!(requests_to(&server, &b).await["count"], 1);
    let id = applies.iter().find(|r| r.0 == 200).unwrap().1["data"]["id"].as_i64().unwrap();

    // Five acceptances at once: exactly one wins.
    let answers = futures_util::future::join_all((0..5).map(|_| handle(&server, &b, id, json!({"status": "agree"})))).await;
    assert_eq!(answers.iter().filter(|r| r.0 == 200).count(), 1, "{answers:?}");
    for r in answers.iter().filter(|r| r.0 != 200) {
        assert_fail(r, 400, "already_handled");
    }
    assert_eq!(friend_ids(&server, &a).await, vec![b.id]);
    assert_eq!(friend_ids(&server, &b).await, vec![a.id]);
    assert_eq!(request_status(&server, &b, id).await, "agree");
    assert_eq!(event_count(&server, "FriendRequestAccepted").await, 1);
    assert_eq!(pair_event_count(&server, "FriendRequestAccepted", a.id, b.id).await, 1);
}

// ---------------------------------------------------------------------------------
// autoAddFriendAndAgree

async fn auto_add_respects_invite_confirm(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("autoadda", "123456").await;
    let open = server.register("autoopen", "123456").await;
    let closed = server.register("autoclos", "123456").await;
    confirm_nobody(&server, &open).await;

    // The default (1) asks for confirmation.
    let refused = server.post("/api/chat/autoAddFriendAndAgree", Some(&a.token), json!({"friend_id": closed.id})).await;
    assert_fail(&refused, 400, "confirmation_required");
    assert_eq!(friend_count(&server, &a).await, 0);
    assert_eq!(friend_count(&server, &closed).await, 0);

    // invite_confirm 0: friends at once, on both sides.
    let added = ok_data(
        server
            .post("/api/chat/autoAddFriendAndAgree", Some(&a.token), json!({"friend_id": open.id.to_string(), "nickname": "Opener"}))
            .await,
    );
    assert_eq!(added["friend_id"], open.id, "{added}");
    assert_eq!(added["nickname"], "Opener", "{added}");
    assert_eq!(friend_ids(&server, &a).await, vec![open.id]);
    assert_eq!(friend_ids(&server, &open).await, vec![a.id]);
    assert_eq!(ok_data(info(&server, &a, open.id).await)["nickname"], "Opener");
    assert_eq!(ok_data(info(&server, &open, a.id).await)["nickname"], "", "the target's side has no remark");

    assert_fail(&server.post("/api/chat/autoAddFriendAndAgree", Some(&a.token), json!({"friend_id": a.id})).await, 400, "self_request");
    assert_fail(
        &server.post("/api/chat/autoAddFriendAndAgree", Some(&a.token), json!({"friend_id": open.id})).await,
        400,
        "already_friends",
    );
    assert_fail(
        &server.post("/api/chat/autoAddFriendAndAgree", Some(&open.token), json!({"friend_id": a.id})).await,
        400,
        "already_friends",
    );
    assert_fail(
        &server.post("/api/chat/autoAddFriendAndAgree", Some(&a.token), json!({"friend_id": 999_999})).await,
        400,
        "target_unavailable",
    );
    assert_fail(&server.post("/api/chat/autoAddFriendAndAgree", Some(&a.token), json!({})).await, 400, "missing_friend_id");
    assert_fail(&server.post("/api/chat/autoAddFriendAndAgree", Some(&a.token), json!({"friend_id": "x"})).await, 400, "invalid_friend_id");
    assert_eq!(event_count(&server, "FriendAdded").await, 1);

    // A pending request is settled by a direct add.
    let c = server.register("autoaddc", "123456").await;
    let pending = ok_data(apply(&server, &c, open.id, json!({})).await)["id"].as_i64().unwrap();
    ok_data(server.post_form("/api/chat/autoAddFriendAndAgree", Some(&c.token), &[("friend_id", &open.id.to_string())]).await);
    assert_eq!(request_status(&server, &open, pending).await, "agree");
    assert_eq!(friend_ids(&server, &c).await, vec![open.id]);
    assert_fail(&handle(&server, &open, pending, json!({"status": "agree"})).await, 400, "already_handled");

    // Visitors may add directly.
    let visitor = server.visitor("device-auto-01").await;
    ok_data(server.post("/api/chat/autoAddFriendAndAgree", Some(&visitor.token), json!({"friend_id": open.id})).await);
    assert_eq!(friend_count(&server, &open).await, 3);
    ok_data(server.post(&format!("/api/chat/ismygoodfriend/{}", open.id), Some(&visitor.token), json!({})).await);
    assert_fail(
        &server.post("/api/chat/autoAddFriendAndAgree", Some(&visitor.token), json!({"friend_id": closed.id})).await,
        400,
        "confirmation_required",
    );
}

// ---------------------------------------------------------------------------------
// goodfriendlist

fn titles(list: &Value) -> Vec<String> {
    list["rows"].as_array().unwrap().iter().map(|g| g["title"].as_str().unwrap().to_owned()).collect()
}

fn names(group: &Value) -> Vec<String> {
    group["list"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
}

async fn friend_list_is_grouped_by_initial(backend: Backend) {
    let server = TestServer::start(backend).await;
    let owner = server.register("listowner", "123456").await;
    confirm_nobody(&server, &owner).await;
    let mut friends = Vec::new();
    for (username, nickname) in
        [("zhangsan", "张三"), ("zhaoliu", "赵六"), ("lisi0001", "李四"), ("alice001", "alice"), ("nine0001", "9号"), ("bobby001", "")]
    {
        let u = server.register(username, "123456").await;
        if !nickname.is_empty() {
            set_nickname(&server, &u, nickname).await;
        }
        ok_data(server.post("/api/chat/autoAddFriendAndAgree", Some(&u.token), json!({"friend_id": owner.id})).await);
        friends.push(u);
    }
    let [zhang, _zhao, li, alice, _nine, bobby] = &friends[..] else { unreachable!() };

    let list = friend_list(&server, &owner).await;
    assert_eq!(list["count"], 6, "{list}");
    assert_eq!(titles(&list), ["A", "B", "L", "Z", "#"], "{list}");
    let rows = list["rows"].as_array().unwrap();
    assert_eq!(names(&rows[0]), ["alice"]);
    assert_eq!(names(&rows[1]), ["bobby001"], "no nickname: the username");
    assert_eq!(names(&rows[2]), ["李四"]);
    assert_eq!(names(&rows[3]), ["张三", "赵六"], "pinyin order within a group");
    assert_eq!(names(&rows[4]), ["9号"]);

    // The shape of an entry.
    let entry = &rows[3]["list"][0];
    let mut keys: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["avatar", "beizhu", "friend_id", "friend_nickname", "id", "name", "username", "uuid"], "{entry}");
    assert_eq!(entry["id"], zhang.id);
    assert_eq!(entry["friend_id"], zhang.id);
    assert_eq!(entry["uuid"], zhang.uuid.as_str());
    assert_eq!(entry["username"], "zhangsan");
    assert_eq!(entry["friend_nickname"], "张三");
    assert_eq!(entry["beizhu"], "");
    assert_eq!(entry["name"], "张三");
    assert_eq!(rows[1]["list"][0]["id"], bobby.id);
    assert_eq!(rows[0]["list"][0]["id"], alice.id);

    // A remark wins over the nickname and moves the friend to another group.
    ok_data(server.post(&format!("/api/chat/setremarktag/{}", li.id), Some(&owner.token), json!({"nickname": "Wang"})).await);
    let list = friend_list(&server, &owner).await;
    assert_eq!(list["count"], 6);
    assert_eq!(titles(&list), ["A", "B", "W", "Z", "#"], "{list}");
    let w = &list["rows"][2]["list"][0];
    assert_eq!(w["id"], li.id);
    assert_eq!(w["beizhu"], "Wang");
    assert_eq!(w["friend_nickname"], "李四");
    assert_eq!(w["name"], "Wang");
    // A Chinese remark groups by its pinyin initial.
    ok_data(server.post(&format!("/api/chat/setremarktag/{}", bobby.id), Some(&owner.token), json!({"nickname": "阿宝"})).await);
    let list = friend_list(&server, &owner).await;
    assert_eq!(titles(&list), ["A", "W", "Z", "#"], "{list}");
    assert_eq!(names(&list["rows"][0]), ["阿宝", "alice"], "{list}");

    // The friends' own lists are untouched by my remarks.
    let li_list = friend_list(&server, li).await;
    assert_eq!(li_list["count"], 1);
    assert_eq!(li_list["rows"][0]["list"][0]["beizhu"], "");
    assert_eq!(li_list["rows"][0]["list"][0]["name"], "listowner");
    assert_eq!(li_list["rows"][0]["title"], "L");

    // Paging runs over the display order, then groups the page.
    let page = |n: i64| {
        let server = &server;
        let token = owner.token.clone();
        async move { ok_data(server.get(&format!("/api/chat/goodfriendlist/{n}?limit=2"), Some(&token)).await) }
    };
    let p1 = page(1).await;
    assert_eq!(p1["count"], 6);
    assert_eq!(titles(&p1), ["A"]);
    assert_eq!(names(&p1["rows"][0]), ["阿宝", "alice"]);
    let p2 = page(2).await;
    assert_eq!(p2["count"], 6);
    assert_eq!(titles(&p2), ["W", "Z"]);
    let p3 = page(3).await;
    assert_eq!(titles(&p3), ["Z", "#"]);
    assert_eq!(names(&p3["rows"][0]), ["赵六"]);
    let p4 = page(4).await;
    assert_eq!(p4["count"], 6);
    assert_eq!(p4["rows"], json!([]));
    // The default limit is 2000 (well above ten), and 2000 is allowed.
    let all = ok_data(server.get("/api/chat/goodfriendlist/1?limit=2000", Some(&owner.token)).await);
    assert_eq!(all, friend_list(&server, &owner).await);

    assert_fail(&server.get("/api/chat/goodfriendlist/0", Some(&owner.token)).await, 400, "invalid_page");
    assert_fail(&server.get("/api/chat/goodfriendlist/1?limit=2001", Some(&owner.token)).await, 400, "invalid_limit");
    assert_fail(&server.get("/api/chat/goodfriendlist/1?limit=0", Some(&owner.token)).await, 400, "invalid_limit");

    // The default limit is 2000, not the usual 10: eleven friends come back on page 1.
    for i in 0..5 {
        let v = server.visitor(&format!("device-list-{i}")).await;
        ok_data(server.post("/api/chat/autoAddFriendAndAgree", Some(&v.token), json!({"friend_id": owner.id})).await);
    }
    let list = friend_list(&server, &owner).await;
    assert_eq!(list["count"], 11);
    assert_eq!(friend_ids(&server, &owner).await.len(), 11);
    assert_eq!(titles(&list), ["A", "W", "Y", "Z", "#"], "visitors are named 游客N: {list}");

    // Nobody: an empty list.
    let lonely = server.register("lonely01", "123456").await;
    assert_eq!(friend_list(&server, &lonely).await, json!({"count": 0, "rows": []}));
}

// ---------------------------------------------------------------------------------
// getgoodfriendinfo, setstargoodfriend, setmeOrfriendCanSee, setremarktag

async fn friend_info_and_my_side_of_the_flags(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("infoa001", "123456").await;
    let b = server.register("infob001", "123456").await;
    let c = server.register("infoc001", "123456").await;
    ok_data(
        server
            .post("/api/chat/updateUserinfo", Some(&b.token), json!({"nickname": "Bnick", "sign": "hello", "area": "Mars", "sex": "女"}))
            .await,
    );
    server.befriend(&a, &b).await;

    let view = ok_data(info(&server, &a, b.id).await);
    assert_eq!(view["id"], b.id);
    assert_eq!(view["friend_id"], b.id);
    assert_eq!(view["uuid"], b.uuid.as_str());
    assert_eq!(view["username"], "infob001");
    assert_eq!(view["friend_nickname"], "Bnick");
    assert_eq!(view["sign"], "hello");
    assert_eq!(view["area"], "Mars");
    assert_eq!(view["sex"], "女");
    assert!(view.get("avatar").is_some(), "{view}");
    assert_eq!(view["nickname"], "");
    assert_eq!(view["tags"], "");
    assert_eq!(view["star"], 0);
    assert_eq!(view["isblack"], 0);
    assert_eq!(view["lookme"], 1);
    assert_eq!(view["lookhim"], 1);
    assert!(view.get("password").is_none());
    let b_view_before = ok_data(info(&server, &b, a.id).await);

    assert_fail(&info(&server, &a, c.id).await, 400, "not_friends");
    assert_fail(&info(&server, &a, 999_999).await, 400, "not_friends");
    assert_fail(&info(&server, &a, a.id).await, 400, "not_friends");
    assert_fail(&server.get("/api/chat/getgoodfriendinfo/abc", Some(&a.token)).await, 400, "invalid_id");

    // star
    let star = |id: i64, body: Value| {
        let server = &server;
        let token = a.token.clone();
        async move { server.post(&format!("/api/chat/setstargoodfriend/{id}"), Some(&token), body).await }
    };
    assert_eq!(ok_data(star(b.id, json!({"star": "1"})).await)["star"], 1);
    assert_eq!(ok_data(info(&server, &a, b.id).await)["star"], 1);
    assert_eq!(ok_data(star(b.id, json!({"star": 0})).await)["star"], 0);
    assert_eq!(ok_data(star(b.id, json!({"star": 1})).await)["star"], 1);
    assert_fail(&star(b.id, json!({})).await, 400, "missing_star");
    assert_fail(&star(b.id, json!({"star": "2"})).await, 400, "invalid_star");
    assert_fail(&star(c.id, json!({"star": 1})).await, 400, "not_friends");
    assert_eq!(ok_data(info(&server, &a, b.id).await)["star"], 1, "failed changes change nothing");

    // visibility
    let see = |id: i64, body: Value| {
        let server = &server;
        let token = a.token.clone();
        async move { server.post(&format!("/api/chat/setmeOrfriendCanSee/{id}"), Some(&token), body).await }
    };
    let seen = ok_data(
        server.post_form(&format!("/api/chat/setmeOrfriendCanSee/{}", b.id), Some(&a.token), &[("lookme", "0"), ("lookhim", "0")]).await,
    );
    assert_eq!((seen["lookme"].clone(), seen["lookhim"].clone()), (json!(0), json!(0)));
    let seen = ok_data(see(b.id, json!({"lookme": 1, "lookhim": 0})).await);
    assert_eq!((seen["lookme"].clone(), seen["lookhim"].clone()), (json!(1), json!(0)));
    assert_fail(&see(b.id, json!({"lookme": 1})).await, 400, "missing_lookhim");
    assert_fail(&see(b.id, json!({"lookhim": 1})).await, 400, "missing_lookme");
    assert_fail(&see(b.id, json!({"lookme": 3, "lookhim": 1})).await, 400, "invalid_lookme");
    assert_fail(&see(c.id, json!({"lookme": 1, "lookhim": 1})).await, 400, "not_friends");

    // remark and tags
    let remark = |id: i64, body: Value| {
        let server = &server;
        let token = a.token.clone();
        async move { server.post(&format!("/api/chat/setremarktag/{id}"), Some(&token), body).await }
    };
    let r = ok_data(remark(b.id, json!({"nickname": "Bestie", "tags": "a，b, c"})).await);
    assert_eq!(r["nickname"], "Bestie");
    assert_eq!(r["tags"], "a,b,c");
    let r = ok_data(remark(b.id, json!({"tags": "x"})).await);
    assert_eq!(r["nickname"], "Bestie", "only the tags changed");
    assert_eq!(r["tags"], "x");
    let r = ok_data(server.post_form(&format!("/api/chat/setremarktag/{}", b.id), Some(&a.token), &[("nickname", "BFF")]).await);
    assert_eq!(r["nickname"], "BFF");
    assert_eq!(r["tags"], "x", "only the remark changed");
    assert_fail(&remark(b.id, json!({})).await, 400, "nothing_to_change");
    let eleven = (1..=11).map(|i| format!("t{i}")).collect::<Vec<_>>().join(",");
    assert_fail(&remark(b.id, json!({"tags": eleven})).await, 400, "invalid_tags");
    let ten = (1..=10).map(|i| format!("t{i}")).collect::<Vec<_>>().join(",");
    assert_eq!(ok_data(remark(b.id, json!({"tags": ten})).await)["tags"], ten);
    assert_fail(&remark(c.id, json!({"nickname": "who"})).await, 400, "not_friends");

    let mine = ok_data(info(&server, &a, b.id).await);
    assert_eq!(mine["nickname"], "BFF");
    assert_eq!(mine["tags"], ten);
    assert_eq!(mine["star"], 1);
    assert_eq!(mine["lookme"], 1);
    assert_eq!(mine["lookhim"], 0);
    assert_eq!(mine["name"], "BFF");

    // Only my side changed: b's view of me is as it was.
    assert_eq!(ok_data(info(&server, &b, a.id).await), b_view_before);
    let b_list = friend_list(&server, &b).await;
    assert_eq!(b_list["rows"][0]["list"][0]["beizhu"], "");
}

// ---------------------------------------------------------------------------------
// setblackgoodfriend + ismygoodfriend

async fn blacklist_and_ismygoodfriend(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("blacka01", "123456").await;
    let b = server.register("blackb01", "123456").await;
    let c = server.register("blackc01", "123456").await;
    server.befriend(&a, &b).await;
    let friends = server.state.friends();
    let is_friend = |me: &TestUser, other: i64| {
        let server = &server;
        let token = me.token.clone();
        async move { server.post(&format!("/api/chat/ismygoodfriend/{other}"), Some(&token), json!({})).await }
    };

    let row = ok_data(is_friend(&a, b.id).await);
    assert_eq!(row["user_id"], a.id, "{row}");
    assert_eq!(row["friend_id"], b.id, "{row}");
    assert_eq!(row["isblack"], 0);
    for key in ["nickname", "tags", "star", "lookme", "lookhim"] {
        assert!(row.get(key).is_some(), "{key} in {row}");
    }
    let not = is_friend(&a, c.id).await;
    assert_fail(&not, 400, "not_friends");
    assert_eq!(not.1["data"], "不是好友");
    assert_fail(&is_friend(&a, 999_999).await, 400, "not_friends");
    assert!(!friends.is_blocked_by(a.id, b.id).await.unwrap());

    // a blacklists b.
    let black = ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", b.id), Some(&a.token), json!({})).await);
    assert_eq!(black["isblack"], 1, "{black}");
    assert!(friends.is_blocked_by(a.id, b.id).await.unwrap(), "a blocks b");
    assert!(!friends.is_blocked_by(b.id, a.id).await.unwrap(), "b does not block a");
    let blocked = is_friend(&a, b.id).await;
    assert_fail(&blocked, 400, "not_friends");
    assert_eq!(blocked.1["data"], "不是好友");
    assert_eq!(ok_data(is_friend(&b, a.id).await)["isblack"], 0, "b's side is unchanged");
    assert_eq!(ok_data(info(&server, &a, b.id).await)["isblack"], 1);
    assert_eq!(ok_data(info(&server, &b, a.id).await)["isblack"], 0);
    // Still friends on both sides (the list shows a blacklisted friend).
    assert_eq!(friend_ids(&server, &a).await, vec![b.id]);
    assert_eq!(friend_ids(&server, &b).await, vec![a.id]);

    // Toggle back.
    let white = ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", b.id), Some(&a.token), json!({})).await);
    assert_eq!(white["isblack"], 0, "{white}");
    assert!(!friends.is_blocked_by(a.id, b.id).await.unwrap());
    assert_eq!(ok_data(is_friend(&a, b.id).await)["isblack"], 0);

    // b blacklists a: the other direction.
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", a.id), Some(&b.token), json!({})).await);
    assert!(friends.is_blocked_by(b.id, a.id).await.unwrap());
    assert!(!friends.is_blocked_by(a.id, b.id).await.unwrap());
    assert_fail(&is_friend(&b, a.id).await, 400, "not_friends");
    ok_data(is_friend(&a, b.id).await);

    // Anyone may be blocked, friend or not; the answer says so.
    let stranger = ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", c.id), Some(&a.token), json!({})).await);
    assert_eq!(stranger, json!({"friend_id": c.id, "isblack": 1}));
    assert!(friends.is_blocked_by(a.id, c.id).await.unwrap());
    let lifted = ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", c.id), Some(&a.token), json!({})).await);
    assert_eq!(lifted, json!({"friend_id": c.id, "isblack": 0}));
    assert!(!friends.is_blocked_by(a.id, c.id).await.unwrap());
    assert_fail(&server.post("/api/chat/setblackgoodfriend/abc", Some(&a.token), json!({})).await, 400, "invalid_id");
    assert_fail(&server.post("/api/chat/setblackgoodfriend/999999", Some(&a.token), json!({})).await, 404, "user_not_found");
    assert_fail(&server.post(&format!("/api/chat/setblackgoodfriend/{}", a.id), Some(&a.token), json!({})).await, 400, "self_request");

    // A visitor asks about its own friendships.
    let visitor = server.visitor("device-black-01").await;
    assert_fail(&is_friend(&visitor, a.id).await, 400, "not_friends");
    let id = ok_data(apply(&server, &visitor, a.id, json!({})).await)["id"].as_i64().unwrap();
    ok_data(handle(&server, &a, id, json!({"status": "agree"})).await);
    let row = ok_data(is_friend(&visitor, a.id).await);
    assert_eq!(row["user_id"], visitor.id);
    assert_eq!(row["friend_id"], a.id);
}

// ---------------------------------------------------------------------------------
// deletegoodfriend

async fn deleting_ends_the_friendship_on_both_sides(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("dela0001", "123456").await;
    let b = server.register("delb0001", "123456").await;
    let c = server.register("delc0001", "123456").await;
    server.befriend(&a, &b).await;
    server.befriend(&a, &c).await;
    ok_data(server.post(&format!("/api/chat/setremarktag/{}", b.id), Some(&a.token), json!({"nickname": "old remark"})).await);
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", b.id), Some(&a.token), json!({})).await);
    assert!(server.state.friends().is_blocked_by(a.id, b.id).await.unwrap());

    assert_eq!(ok_data(server.post(&format!("/api/chat/deletegoodfriend/{}", b.id), Some(&a.token), json!({})).await), json!(true));
    assert_eq!(friend_ids(&server, &a).await, vec![c.id], "only b is gone");
    assert_eq!(friend_count(&server, &b).await, 0);
    assert!(server.state.friends().is_blocked_by(a.id, b.id).await.unwrap(), "the block is a's: it outlives the friendship");
    assert_fail(&info(&server, &a, b.id).await, 400, "not_friends");
    assert_fail(&info(&server, &b, a.id).await, 400, "not_friends");
    assert_fail(&server.post(&format!("/api/chat/ismygoodfriend/{}", a.id), Some(&b.token), json!({})).await, 400, "not_friends");

    // Deleting again, from either side, or a stranger.
    assert_fail(&server.post(&format!("/api/chat/deletegoodfriend/{}", b.id), Some(&a.token), json!({})).await, 400, "not_friends");
    assert_fail(&server.post(&format!("/api/chat/deletegoodfriend/{}", a.id), Some(&b.token), json!({})).await, 400, "not_friends");
    assert_fail(&server.post(&format!("/api/chat/deletegoodfriend/{}", c.id), Some(&b.token), json!({})).await, 400, "not_friends");
    assert_fail(&server.post("/api/chat/deletegoodfriend/abc", Some(&b.token), json!({})).await, 400, "invalid_id");
    assert_eq!(event_count(&server, "FriendshipEnded").await, 1);

    // b may not ask a while a blocks b; once a lifts the block, a new request can be
    // sent and accepted, and the old side settings are gone.
    assert_fail(&apply(&server, &b, a.id, json!({})).await, 400, "blocked");
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", b.id), Some(&a.token), json!({})).await);
    let again = ok_data(apply(&server, &b, a.id, json!({})).await);
    assert_eq!(again["status"], "pending");
    ok_data(handle(&server, &a, again["id"].as_i64().unwrap(), json!({"status": "agree"})).await);
    let view = ok_data(info(&server, &a, b.id).await);
    assert_eq!(view["isblack"], 0);
    assert_eq!(view["nickname"], "");
    assert_eq!(friend_count(&server, &a).await, 2);
    assert_eq!(friend_count(&server, &b).await, 1);

    // The other side may end it too (a form body, string id).
    ok_data(server.post_form(&format!("/api/chat/deletegoodfriend/{}", c.id), Some(&a.token), &[]).await);
    assert_eq!(friend_ids(&server, &c).await, Vec::<i64>::new());
    assert_eq!(friend_ids(&server, &a).await, vec![b.id]);

    // A visitor may end its friendships.
    let visitor = server.visitor("device-del-01").await;
    let id = ok_data(apply(&server, &visitor, b.id, json!({})).await)["id"].as_i64().unwrap();
    ok_data(handle(&server, &b, id, json!({"status": "agree"})).await);
    assert_eq!(friend_count(&server, &b).await, 2);
    ok_data(server.post(&format!("/api/chat/deletegoodfriend/{}", b.id), Some(&visitor.token), json!({})).await);
    assert_eq!(friend_ids(&server, &b).await, vec![a.id]);
    assert_eq!(event_count(&server, "FriendshipEnded").await, 3);
}

// ---------------------------------------------------------------------------------
// report

async fn reports_are_stored(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("reporta1", "123456").await;
    let b = server.register("reportb1", "123456").await;
    let visitor = server.visitor("device-report-01").await;
    let report = |who: &TestUser, body: Value| {
        let server = &server;
        let token = who.token.clone();
        async move { server.post("/api/chat/report", Some(&token), body).await }
    };

    let first = ok_data(report(&a, json!({"reported_id": b.id, "reported_type": "user", "category": "spam", "content": "ads"})).await);
    let first_id = first["id"].as_i64().unwrap();
    assert!(first_id >= 1, "{first}");
    let second = ok_data(
        server
            .post_form(
                "/api/chat/report",
                Some(&a.token),
                &[("reported_id", "7"), ("reported_type", "group"), ("category", "违法"), ("content", "群内违规")],
            )
            .await,
    );
    let second_id = second["id"].as_i64().unwrap();
    let third = ok_data(
        report(&visitor, json!({"reported_id": b.id.to_string(), "reported_type": "user", "category": "abuse", "content": "rude"})).await,
    );
    let third_id = third["id"].as_i64().unwrap();
    assert!(first_id != second_id && second_id != third_id && first_id != third_id);

    let full = json!({"reported_id": b.id, "reported_type": "user", "category": "spam", "content": "ads"});
    let without = |key: &str| {
        let mut body = full.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let with = |key: &str, value: Value| {
        let mut body = full.clone();
        body[key] = value;
        body
    };
    assert_fail(&report(&a, with("reported_type", json!("channel"))).await, 400, "invalid_reported_type");
    assert_fail(&report(&a, with("reported_id", json!(999_999))).await, 400, "reported_not_found");
    assert_fail(&report(&a, with("reported_id", json!("x"))).await, 400, "invalid_reported_id");
    assert_fail(&report(&a, with("reported_id", json!(0))).await, 400, "invalid_reported_id");
    assert_fail(&report(&a, without("reported_id")).await, 400, "missing_reported_id");
    assert_fail(&report(&a, without("reported_type")).await, 400, "missing_reported_type");
    assert_fail(&report(&a, without("category")).await, 400, "missing_category");
    assert_fail(&report(&a, without("content")).await, 400, "missing_content");
    assert_fail(&report(&a, with("content", json!("   "))).await, 400, "missing_content");
    assert_fail(&server.post("/api/chat/report", None, full.clone()).await, 401, "missing_token");

    let (count, rows) = server.state.friends().reports(false, 1, 10).await.unwrap();
    assert_eq!(count, 3, "{rows:?}");
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![third_id, second_id, first_id], "newest first");
    let by_id = |id: i64| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let r = by_id(first_id);
    assert_eq!(r["user_id"], a.id);
    assert_eq!(r["reported_id"], b.id);
    assert_eq!(r["reported_type"], "user");
    assert_eq!(r["category"], "spam");
    assert_eq!(r["content"], "ads");
    assert!(r["create_time"].as_i64().unwrap() > 1_600_000_000_000);
    let r = by_id(second_id);
    assert_eq!(r["reported_id"], 7);
    assert_eq!(r["reported_type"], "group");
    assert_eq!(r["category"], "违法");
    assert_eq!(r["content"], "群内违规");
    assert_eq!(by_id(third_id)["user_id"], visitor.id);
}

// ---------------------------------------------------------------------------------
// roles

async fn route_roles(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.register("rolesusr", "123456").await;
    let open = server.register("rolesopn", "123456").await;
    confirm_nobody(&server, &open).await;
    let visitor = server.visitor("device-roles-01").await;
    let id = ok_data(apply(&server, &user, open.id, json!({})).await)["id"].as_i64().unwrap();

    // User-only routes refuse a visitor's token.
    let user_only_get = [
        "/api/chat/listapplyfriend/1".to_owned(),
        "/api/chat/goodfriendlist/1".to_owned(),
        format!("/api/chat/getgoodfriendinfo/{}", user.id),
    ];
    for path in &user_only_get {
        assert_fail(&server.get(path, Some(&visitor.token)).await, 403, "visitor_forbidden");
    }
    let user_only_post = [
        (format!("/api/chat/handleapply/{id}"), json!({"status": "agree"})),
        (format!("/api/chat/setblackgoodfriend/{}", user.id), json!({})),
        (format!("/api/chat/setstargoodfriend/{}", user.id), json!({"star": 1})),
        (format!("/api/chat/setmeOrfriendCanSee/{}", user.id), json!({"lookme": 1, "lookhim": 1})),
        (format!("/api/chat/setremarktag/{}", user.id), json!({"nickname": "x"})),
        (format!("/api/chat/isApplyfriend/{}", user.uuid), json!({})),
    ];
    for (path, body) in &user_only_post {
        assert_fail(&server.post(path, Some(&visitor.token), body.clone()).await, 403, "visitor_forbidden");
    }
    assert_eq!(request_status(&server, &open, id).await, "pending");

    // Routes open to visitors.
    ok_data(apply(&server, &visitor, user.id, json!({})).await);
    ok_data(server.post("/api/chat/autoAddFriendAndAgree", Some(&visitor.token), json!({"friend_id": open.id})).await);
    ok_data(server.post(&format!("/api/chat/ismygoodfriend/{}", open.id), Some(&visitor.token), json!({})).await);
    ok_data(server.post(&format!("/api/chat/deletegoodfriend/{}", open.id), Some(&visitor.token), json!({})).await);
    ok_data(
        server
            .post(
                "/api/chat/report",
                Some(&visitor.token),
                json!({"reported_id": user.id, "reported_type": "user", "category": "c", "content": "x"}),
            )
            .await,
    );

    // Every route wants a token, and a valid one.
    let all_gets = [
        "/api/chat/listapplyfriend/1".to_owned(),
        "/api/chat/goodfriendlist/1".to_owned(),
        format!("/api/chat/getgoodfriendinfo/{}", user.id),
    ];
    let all_posts = [
        "/api/chat/applyfriend".to_owned(),
        format!("/api/chat/handleapply/{id}"),
        "/api/chat/autoAddFriendAndAgree".to_owned(),
        format!("/api/chat/setblackgoodfriend/{}", user.id),
        format!("/api/chat/setstargoodfriend/{}", user.id),
        format!("/api/chat/setmeOrfriendCanSee/{}", user.id),
        format!("/api/chat/setremarktag/{}", user.id),
        format!("/api/chat/ismygoodfriend/{}", user.id),
        format!("/api/chat/deletegoodfriend/{}", user.id),
        format!("/api/chat/isApplyfriend/{}", user.uuid),
        "/api/chat/report".to_owned(),
    ];
    for path in &all_gets {
        assert_fail(&server.get(path, None).await, 401, "missing_token");
        assert_fail(&server.get(path, Some("not-a-token")).await, 401, "invalid_token");
    }
    for path in &all_posts {
        assert_fail(&server.post(path, None, json!({"friend_id": open.id, "status": "agree"})).await, 401, "missing_token");
        assert_fail(&server.post(path, Some("not-a-token"), json!({"friend_id": open.id})).await, 401, "invalid_token");
    }

    // The token may also come as a query parameter or a bearer header.
    ok_data(server.get(&format!("/api/chat/goodfriendlist/1?token={}", user.token), None).await);
    let bearer =
        server.request(reqwest::Method::GET, "/api/chat/listapplyfriend/1").header("Authorization", format!("Bearer {}", open.token));
    assert_eq!(ok_data(server.send(bearer).await)["count"], 1);

    // An agree after all that still works for the addressee.
    ok_data(handle(&server, &open, id, json!({"status": "agree"})).await);
    assert_eq!(friend_ids(&server, &open).await, vec![user.id]);
}
