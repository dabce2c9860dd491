//! End-to-end: auto-reply question/answer pairs (CRUD, search) and the auto-reply an
//! offline recipient sends back.

use im_e2e::{Backend, TestServer, assert_fail, both_backends, ok_data};
use serde_json::json;

both_backends!(askanswer_crud_and_search, offline_recipient_auto_replies);

async fn askanswer_crud_and_search(backend: Backend) {
    let server = TestServer::start(backend).await;
    let owner = server.register("qaowner1", "123456").await;
    let other = server.register("qaother1", "123456").await;
    let t = Some(owner.token.as_str());

    let price = ok_data(server.post("/api/chat/askanswer/create", t, json!({"ask": "价格多少", "answer": "请看商品详情页"})).await);
    let ship = ok_data(server.post_form("/api/chat/askanswer/create", t, &[("ask", "什么时候发货"), ("answer", "48小时内发货")]).await);
    assert_eq!(price["user_id"], owner.id);
    assert_fail(&server.post("/api/chat/askanswer/create", t, json!({"ask": "", "answer": "x"})).await, 400, "missing_ask");
    assert_fail(&server.post("/api/chat/askanswer/create", t, json!({"ask": "x".repeat(201), "answer": "x"})).await, 400, "invalid_ask");
    assert_fail(&server.post("/api/chat/askanswer/create", t, json!({"ask": "x"})).await, 400, "missing_answer");

    let list = ok_data(server.post("/api/chat/askanswer/list", t, json!({"page": 1, "limit": 10})).await);
    assert_eq!(list["count"], 2);
    assert_eq!(list["rows"][0]["id"], ship["id"], "newest first");
    assert_fail(&server.post("/api/chat/askanswer/list", t, json!({"limit": 0})).await, 400, "invalid_limit");

    let detail = ok_data(server.post("/api/chat/askanswer/detail", t, json!({"id": price["id"]})).await);
    assert_eq!(detail["answer"], "请看商品详情页");
    // Someone else's pair is not mine to read, edit or delete.
    let o = Some(other.token.as_str());
    assert_fail(&server.post("/api/chat/askanswer/detail", o, json!({"id": price["id"]})).await, 404, "askanswer_not_found");
    assert_fail(
        &server.post("/api/chat/askanswer/update", o, json!({"id": price["id"], "ask": "a", "answer": "b"})).await,
        404,
        "askanswer_not_found",
    );
    assert_fail(&server.post("/api/chat/askanswer/delete", o, json!({"id": price["id"]})).await, 404, "askanswer_not_found");

    let updated =
        ok_data(server.post("/api/chat/askanswer/update", t, json!({"id": price["id"], "ask": "价格多少钱", "answer": "99元"})).await);
    assert_eq!(updated["answer"], "99元");

    let found = ok_data(server.post("/api/chat/askanswer/search", o, json!({"create_userId": owner.id, "ask": "请问多少钱"})).await);
    assert_eq!(found["id"], price["id"]);
    let found = ok_data(server.post("/api/chat/askanswer/search", o, json!({"create_userId": owner.id, "ask": "哪天发货?"})).await);
    assert_eq!(found["id"], ship["id"]);
    let none = server.post("/api/chat/askanswer/search", o, json!({"create_userId": owner.id, "ask": "zzz"})).await;
    assert_fail(&none.clone(), 400, "askanswer_not_found");
    assert_eq!(none.1["data"], "未找到相关问答");

    assert_eq!(ok_data(server.post("/api/chat/askanswer/delete", t, json!({"id": ship["id"]})).await), json!(true));
    assert_fail(&server.post("/api/chat/askanswer/delete", t, json!({"id": ship["id"]})).await, 404, "askanswer_not_found");
    assert_eq!(ok_data(server.post("/api/chat/askanswer/list", t, json!({})).await)["count"], 1);

    // Visitors may search but keep no pairs.
    let visitor = server.visitor("qa-device").await;
    let v = Some(visitor.token.as_str());
    assert_fail(&server.post("/api/chat/askanswer/create", v, json!({"ask": "a", "answer": "b"})).await, 403, "visitor_forbidden");
    ok_data(server.post("/api/chat/askanswer/search", v, json!({"create_userId": owner.id, "ask": "多少钱"})).await);
}

async fn offline_recipient_auto_replies(backend: Backend) {
    let server = TestServer::start(backend).await;
    let shop = server.register("qashop01", "123456").await;
    let buyer = server.register("qabuyer1", "123456").await;
    ok_data(server.post("/api/chat/askanswer/create", Some(&shop.token), json!({"ask": "价格多少", "answer": "99元包邮"})).await);

    let mut buyer_ws = server.ws(&buyer.token).await;
    buyer_ws.next_json().await; // welcome
    let send = |data: &str| json!({"sendto_id": shop.id, "chatType": "single", "type": "text", "data": data});
    // The shop is offline: the buyer gets the best answer back, from the shop.
    let (status, body) = server.post("/api/chat/socket/sendmessage", Some(&buyer.token), send("请问价格多少?")).await;
    assert_eq!(status, 200, "{body}");
    let reply = buyer_ws.next_non_ping().await;
    assert_eq!(reply["type"], "singleChat");
    assert_eq!(reply["data"]["from_id"], shop.id);
    assert_eq!(reply["data"]["to_id"], buyer.id);
    assert_eq!(reply["data"]["data"], "99元包邮");
    assert_eq!(reply["data"]["options"]["autoReply"], true);

    // Nothing matches: no reply. (Default sendCount 1 would refuse a second message
    // from a stranger, so the shop allows strangers first.)
    ok_data(server.post("/api/chat/userset", Some(&shop.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&buyer.token), send("你好")).await);
    assert!(buyer_ws.quiet_for(300).await);

    // The shop online: no auto-reply, the shop reads the message itself.
    let mut shop_ws = server.ws(&shop.token).await;
    shop_ws.next_json().await;
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&buyer.token), send("价格多少")).await);
    assert_eq!(shop_ws.next_non_ping().await["data"]["data"], "价格多少");
    assert!(buyer_ws.quiet_for(300).await);

    // Offline again, with a new answer: the pairs the server keeps in memory follow the
    // change (the old answer is not sent); once deleted, none is.
    drop(shop_ws);
    for _ in 0..500 {
        if !server.state.hub().is_online(im_domain::UserId(shop.id)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let t = Some(shop.token.as_str());
    let list = ok_data(server.post("/api/chat/askanswer/list", t, json!({})).await);
    let id = list["rows"][0]["id"].clone();
    ok_data(server.post("/api/chat/askanswer/update", t, json!({"id": id, "ask": "价格多少", "answer": "88元"})).await);
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&buyer.token), send("价格多少")).await);
    assert_eq!(buyer_ws.next_non_ping().await["data"]["data"], "88元");
    ok_data(server.post("/api/chat/askanswer/delete", t, json!({"id": id})).await);
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&buyer.token), send("价格多少")).await);
    assert!(buyer_ws.quiet_for(300).await, "a deleted pair still answers");
}
