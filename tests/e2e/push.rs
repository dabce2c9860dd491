//! End-to-end: pushes to offline devices (issue 15, item 8) against a local HTTP
//! receiver standing in for uni-push, FCM, APNs and a webhook: the payload each gets, a
//! burst collapsed into one push, retries while the endpoint fails, and nothing pushed
//! to an online user, for a muted chat, or to an unregistered device.

use im_e2e::receiver::Receiver;
use im_e2e::{Backend, TestServer, TestUser, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    offline_messages_are_pushed_collapsed_and_retried,
    push_registration_outside_the_rules_is_refused,
    a_provider_that_hangs_does_not_hold_back_the_other_devices
);

async fn say(server: &TestServer, by: &TestUser, to: i64, chat: &str, text: &str) -> Value {
    let body = json!({"sendto_id": to, "chatType": chat, "type": "text", "data": text});
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&by.token), body).await)
}

async fn start(backend: Backend, receiver: &Receiver) -> TestServer {
    let base = receiver.base.clone();
    TestServer::start_with(backend, move |s| {
        s.push.unipush_url = Some(format!("{base}/unipush"));
        s.push.fcm_url = Some(format!("{base}/fcm/send"));
        s.push.apns_url = Some(format!("{base}/apns"));
        s.push.webhook_url = Some(format!("{base}/hook"));
        s.push.auth = Some("push-secret".into());
        s.push.collapse = Duration::from_millis(300);
        s.push.backoff = Duration::from_millis(20);
    })
    .await
}

async fn offline_messages_are_pushed_collapsed_and_retried(backend: Backend) {
    let receiver = Receiver::start().await;
    let server = start(backend, &receiver).await;
    let alice = server.register("pushalic", "123456").await;
    let bob = server.register("pushbob1", "123456").await;
    let carol = server.register("pushcarl", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    for (provider, token) in [("unipush", "cid-1"), ("fcm", "fcm-1"), ("apns", "apns1"), ("webhook", "hook-1")] {
        ok_data(server.post("/api/chat/push/register", Some(&bob.token), json!({"provider": provider, "device_token": token})).await);
    }
    let devices =
        ok_data(server.post("/api/chat/push/register", Some(&bob.token), json!({"provider": "fcm", "device_token": "fcm-1"})).await);
    assert_eq!(devices.as_array().unwrap().len(), 4, "registering again adds nothing: {devices}");

    // Three messages in a burst to Bob, who is offline: one push per device, with the
    // newest message and the count; the first two requests fail and are retried.
    receiver.fail_next(2);
    say(&server, &alice, bob.id, "single", "在吗").await;
    say(&server, &alice, bob.id, "single", "明天").await;
    let last = say(&server, &alice, bob.id, "single", "一起吃饭").await;
    let got = receiver.wait_for(4, 10).await;
    let sent: Vec<_> = got.iter().filter(|r| !r.failed).collect();
    assert_eq!((sent.len(), got.len()), (4, 6), "4 devices, 2 retried: {got:?}");
    let by_path = |path: &str| sent.iter().find(|r| r.path.starts_with(path)).unwrap_or_else(|| panic!("nothing at {path}: {got:?}"));
    let fcm = &by_path("/fcm/send").body["message"];
    assert_eq!(fcm["token"], "fcm-1");
    assert_eq!(fcm["notification"], json!({"title": "pushalic", "body": "[3条] 一起吃饭"}));
    assert_eq!(fcm["data"]["message_id"], last["id"]);
    let apns = by_path("/apns/3/device/apns1");
    assert_eq!(apns.headers["apns-collapse-id"], format!("single-{}", alice.id).as_str());
    assert_eq!(apns.body["aps"]["alert"]["body"], "[3条] 一起吃饭");
    assert_eq!(by_path("/unipush").body["audience"]["cid"], json!(["cid-1"]));
    let hook = &by_path("/hook").body;
    assert_eq!(
        (hook["user_id"].clone(), hook["count"].clone(), hook["chatType"].clone(), hook["id"].clone()),
        (json!(bob.id), json!(3), json!("single"), json!(alice.id))
    );
    assert!(sent.iter().all(|r| r.headers["authorization"] == "Bearer push-secret"));

    // A group message: titled with the group, the sender in the preview.
    let group =
        ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id, carol.id], "name": "饭局"})).await);
    receiver.clear();
    say(&server, &carol, group["id"].as_i64().unwrap(), "group", "我也去").await;
    let got = receiver.wait_for(4, 10).await;
    let hook = got.iter().find(|r| r.path == "/hook").map(|r| r.body.clone()).unwrap();
    assert_eq!(
        (hook["title"].clone(), hook["body"].clone(), hook["chatType"].clone()),
        (json!("饭局"), json!("pushcarl: 我也去"), json!("group"))
    );

    // Online: nothing is pushed.
    receiver.clear();
    let mut ws = server.ws(&bob.token).await;
    ws.next_json().await;
    say(&server, &alice, bob.id, "single", "你在线").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(receiver.got().is_empty(), "an online user gets no push: {:?}", receiver.got());
    drop(ws);

    // A muted chat: nothing; another chat still is.
    ok_data(server.post("/api/chat/conversation/mute", Some(&bob.token), json!({"chatType": "single", "id": alice.id, "muted": 1})).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    say(&server, &alice, bob.id, "single", "静音了吗").await;
    say(&server, &carol, group["id"].as_i64().unwrap(), "group", "几点").await;
    let got = receiver.wait_for(4, 10).await;
    assert!(got.iter().all(|r| r.body.to_string().contains("几点")), "only the group's push: {got:?}");

    // Unregistered devices get nothing; the rest still do.
    for (provider, token) in [("unipush", "cid-1"), ("fcm", "fcm-1"), ("apns", "apns1")] {
        ok_data(server.post("/api/chat/push/unregister", Some(&bob.token), json!({"provider": provider, "device_token": token})).await);
    }
    receiver.clear();
    say(&server, &carol, group["id"].as_i64().unwrap(), "group", "七点").await;
    receiver.wait_for(1, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<String> = receiver.got().iter().map(|r| r.path.clone()).collect();
    assert_eq!(got, vec!["/hook".to_owned()], "{got:?}");
    let metrics = reqwest::get(format!("{}/metrics", server.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("im_pushes_total{outcome=\"sent\"}"), "{metrics}");
}

async fn push_registration_outside_the_rules_is_refused(backend: Backend) {
    let receiver = Receiver::start().await;
    let server = start(backend, &receiver).await;
    let bob = server.register("pushbob2", "123456").await;
    let head = server.head().await;
    let register = |body: Value| {
        let (server, token) = (&server, bob.token.clone());
        async move { server.post("/api/chat/push/register", Some(&token), body).await }
    };
    assert_fail(&register(json!({"device_token": "x"})).await, 400, "missing_provider");
    assert_fail(&register(json!({"provider": "sms", "device_token": "x"})).await, 400, "invalid_provider");
    assert_fail(&register(json!({"provider": "fcm"})).await, 400, "missing_device_token");
    assert_fail(&register(json!({"provider": "fcm", "device_token": "a b"})).await, 400, "invalid_device_token");
    assert_fail(&register(json!({"provider": "fcm", "device_token": "x".repeat(513)})).await, 400, "invalid_device_token");
    assert_fail(&server.post("/api/chat/push/register", None, json!({"provider": "fcm", "device_token": "x"})).await, 401, "missing_token");
    assert_eq!(server.head().await, head, "refusals append nothing");
    // Unregistering a device that is not registered appends nothing either.
    let none = ok_data(server.post("/api/chat/push/unregister", Some(&bob.token), json!({"provider": "fcm", "device_token": "x"})).await);
    assert_eq!((none, server.head().await), (json!([]), head));
    // A sixth device replaces the oldest.
    for n in 0..6 {
        ok_data(register(json!({"provider": "webhook", "device_token": format!("d{n}")})).await);
    }
    let devices =
        ok_data(server.post("/api/chat/push/unregister", Some(&bob.token), json!({"provider": "fcm", "device_token": "x"})).await);
    let tokens: Vec<&str> = devices.as_array().unwrap().iter().map(|d| d["device_token"].as_str().unwrap()).collect();
    assert_eq!(tokens, vec!["d1", "d2", "d3", "d4", "d5"]);
}

/// A user's devices are pushed at once: a provider that accepts the connection and never
/// answers (each attempt waits out the 10 s request timeout, then retries) does not
/// delay the push to the user's other device.
async fn a_provider_that_hangs_does_not_hold_back_the_other_devices(backend: Backend) {
    let receiver = Receiver::start().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let base = receiver.base.clone();
    let server = TestServer::start_with(backend, move |s| {
        s.push.apns_url = Some(silent_url);
        s.push.webhook_url = Some(format!("{base}/hook"));
        s.push.collapse = Duration::from_millis(100);
    })
    .await;
    let alice = server.register("hangalic", "123456").await;
    let bob = server.register("hangbob1", "123456").await;
    server.befriend(&alice, &bob).await;
    // The hanging provider first: devices used to be pushed one after another in this order.
    ok_data(server.post("/api/chat/push/register", Some(&bob.token), json!({"provider": "apns", "device_token": "apns1"})).await);
    tokio::time::sleep(Duration::from_millis(20)).await;
    ok_data(server.post("/api/chat/push/register", Some(&bob.token), json!({"provider": "webhook", "device_token": "hook-1"})).await);
    let sent = std::time::Instant::now();
    say(&server, &alice, bob.id, "single", "在吗").await;
    let got = receiver.wait_for(1, 8).await;
    assert!(got.iter().any(|r| r.path == "/hook" && !r.failed), "the webhook device got nothing while APNs hung: {got:?}");
    assert!(sent.elapsed() < Duration::from_secs(8), "the webhook push waited for the hanging provider: {:?}", sent.elapsed());
    holding.abort();
}
