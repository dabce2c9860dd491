//! End-to-end: the built-in web client at `/` (issue 16, item 1), in two headless
//! Chromium sessions chatting with each other — log in, friends and groups, live delivery
//! both ways, catch-up through `sync` after being away, a picture — and a third that
//! continues as a visitor; a screenshot of each step.

use im_e2e::browser::Chrome;
use im_e2e::{Backend, TestServer, ok_data};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_chat_through_the_built_in_client() {
    let server = TestServer::start(Backend::Sqlite).await;
    let alice = server.register("webalice", "123456").await;
    let bob = server.register("webbob01", "123456").await;
    server.befriend(&alice, &bob).await;
    let group = ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id], "name": "网页群"})).await);
    let gid = group["id"].as_i64().unwrap();

    // The page and its assets come from the binary, under a strict policy.
    let page = reqwest::get(format!("{}/", server.base)).await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    assert!(page.text().await.unwrap().contains("/app.js"));

    let chrome = Chrome::start().await;
    let (a, b) = (chrome.session().await, chrome.session().await);
    for (session, name) in [(&a, "webalice"), (&b, "webbob01")] {
        session.open(&format!("{}/", server.base)).await;
        if name == "webalice" {
            session.element("#login-form").await;
            session.screenshot("im-web-login").await;
        }
        session.type_into("#username", name).await;
        session.type_into("#password", "123456").await;
        session.click("#login").await;
        session.wait_for_text("#me-name", name).await;
        session.wait_for_text("#status", "已连接").await;
    }

    // One-to-one, live both ways.
    a.click(&format!("li[data-key='single:{}']", bob.id)).await;
    a.type_into("#text", "你好,鲍勃").await;
    a.click("#send").await;
    a.wait_for_text("#messages", "你好,鲍勃").await;
    b.wait_for_text(&format!("li[data-key='single:{}'] .unread", alice.id), "1").await;
    b.click(&format!("li[data-key='single:{}']", alice.id)).await;
    b.wait_for_text("#messages", "你好,鲍勃").await;
    // Opening the chat marked it read on the server (a `read` frame: Bob's read mark).
    let stream = format!("conversations-{}", bob.id);
    let mut marked = false;
    for _ in 0..100 {
        let events = server.state.store().read_stream(&stream, 0).await.unwrap();
        if events.iter().any(|e| e.event_type == "ConversationRead") {
            marked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(marked, "the web client marks an opened chat read");
    b.type_into("#text", "你好,爱丽丝").await;
    b.click("#send").await;
    a.wait_for_text("#messages", "你好,爱丽丝").await;
    a.screenshot("im-web-chat-alice").await;

    // A picture: uploaded, sent, shown on the other side.
    let picture = im_e2e::temp_dir().join("picture.png");
    std::fs::write(&picture, im_gateway::qr::png("一张图片").unwrap()).unwrap();
    a.type_into("#image", picture.to_str().unwrap()).await;
    b.element("#messages img.picture").await;
    b.screenshot("im-web-chat-bob").await;

    // A group.
    a.click(&format!("li[data-key='group:{gid}']")).await;
    a.type_into("#text", "大家好").await;
    a.click("#send").await;
    // (Unread there: the group's creation notice too.)
    b.element(&format!("li[data-key='group:{gid}'] .unread")).await;
    b.click(&format!("li[data-key='group:{gid}']")).await;
    b.wait_for_text("#messages", "大家好").await;
    b.type_into("#text", "收到").await;
    b.click("#send").await;
    a.wait_for_text("#messages", "收到").await;
    a.screenshot("im-web-group").await;

    // Bob goes away; what Alice says meanwhile reaches him through sync when he is back.
    b.open("about:blank").await;
    a.click(&format!("li[data-key='single:{}']", bob.id)).await;
    a.type_into("#text", "你不在的时候").await;
    a.click("#send").await;
    a.wait_for_text("#messages", "你不在的时候").await;
    b.open(&format!("{}/", server.base)).await;
    b.wait_for_text(&format!("li[data-key='single:{}'] .unread", alice.id), "1").await;
    b.click(&format!("li[data-key='single:{}']", alice.id)).await;
    b.wait_for_text("#messages", "你不在的时候").await;

    // A visitor gets in with one click.
    let v = chrome.session().await;
    v.open(&format!("{}/", server.base)).await;
    v.click("#visitor").await;
    v.wait_for_text("#status", "已连接").await;
    assert!(!v.text("#me-name").await.is_empty());
    v.screenshot("im-web-visitor").await;

    for s in [a, b, v] {
        s.close().await;
    }
    chrome.stop().await;
}

/// Issue 16, item 2: the OpenAPI description at `/api/openapi.json` names every route of
/// the reference's router, and `/docs` renders it in a browser (screenshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_is_served_and_rendered() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (status, doc) = server.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    // The seed's routes, with their path parameters where it had them.
    for route in crate::seed_compat::SEED_ROUTES {
        assert!(paths.keys().any(|p| p == route || p.starts_with(&format!("{route}/{{"))), "{route} is missing from /api/openapi.json");
    }
    let send = &paths["/api/chat/socket/sendmessage"]["post"];
    let body = send["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str().unwrap();
    let schema = &doc["components"]["schemas"][body.rsplit('/').next().unwrap()];
    for field in ["sendto_id", "chatType", "type", "data", "options", "client_msg_id", "mentions"] {
        assert!(schema["properties"][field].is_object(), "send describes {field}: {schema}");
    }
    assert_eq!(send["security"][0]["token"], json!([]));

    let page = reqwest::get(format!("{}/docs", server.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"), "no script runs there");
    let chrome = Chrome::start().await;
    let session = chrome.session().await;
    session.open(&format!("{}/docs", server.base)).await;
    session.wait_for_text("h1", "API reference").await;
    session.wait_for_text("#messages", "/api/chat/socket/sendmessage").await;
    session.wait_for_text("#messages", "client_msg_id").await;
    session.screenshot("im-api-reference").await;
}
