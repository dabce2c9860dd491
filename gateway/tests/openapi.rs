//! The OpenAPI description against the source: every route the server registers is in
//! it, and every field a handler reads, and whether it takes a token, is what its route's
//! description says (and nothing more).

use std::collections::{BTreeMap, BTreeSet};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, RefOr, Schema};

/// The description the server's router yields.
fn description() -> OpenApi {
    let (_, description) = im_gateway::routes::api(0).split_for_parts();
    im_gateway::openapi::finish(description)
}

/// Every `.rs` file under `src/`, by path relative to it.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.insert(path.strip_prefix(root).unwrap_or(&path).display().to_string(), text);
            }
        }
    }
    let root = std::path::PathBuf::from(format!("{}/src", env!("CARGO_MANIFEST_DIR")));
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// The first string literal after each occurrence of `marker`.
fn literals_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = text[at + marker.len()..].trim_start().strip_prefix('"')?;
            Some(&rest[..rest.find('"')?])
        })
        .collect()
}

/// Pages for people, not the API: the admin console and the built-in web client.
fn is_html_page(path: &str) -> bool {
    path == "/" || path == "/app.js" || path == "/app.css" || path == "/admin" || path.starts_with("/admin/")
}

#[test]
fn every_route_is_described() {
    let doc = description();
    let described: BTreeSet<&str> = doc.paths.paths.keys().map(String::as_str).collect();
    let mut registered = BTreeSet::new();
    for (file, text) in sources() {
        // Routes registered around `routes!` (which describes them by construction).
        for path in literals_after(&text, ".route(").into_iter().filter(|p| p.starts_with('/')) {
            registered.insert((file.clone(), path.to_owned()));
        }
        for prefix in literals_after(&text, ".nest_service(").into_iter().filter(|p| p.starts_with('/')) {
            registered.insert((file.clone(), format!("{prefix}/{{path}}")));
        }
    }
    assert!(registered.iter().any(|(_, p)| p == "/healthz"), "the scan finds the routes of the health-only router");
    assert!(registered.iter().any(|(_, p)| p == "/public/{path}"), "the scan finds the upload directory's service");
    let missing: Vec<_> = registered.iter().filter(|(_, p)| !is_html_page(p) && !described.contains(p.as_str())).collect();
    assert!(missing.is_empty(), "routes missing from the OpenAPI description: {missing:?}");
    // And the routers in `routes::api` did register the contract's routes.
    for path in [
        "/api/regChat",
        "/api/chat/socket/sendmessage",
        "/api/chat/sync",
        "/api/chat/groupMembers/{page}",
        "/ws",
        "/api/openapi.json",
        "/docs",
    ] {
        assert!(described.contains(path), "{path} is described");
    }
    assert!(described.len() >= 65, "{} paths described", described.len());
}

#[test]
fn the_description_is_openapi_3_1_with_envelopes_and_token_schemes() {
    let json: serde_json::Value = serde_json::from_str(&description().to_json().unwrap_or_default()).unwrap_or_default();
    assert!(json["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", json["openapi"]);
    let schemes = &json["components"]["securitySchemes"];
    assert_eq!(schemes["token"]["in"], "header");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let send = &json["paths"]["/api/chat/socket/sendmessage"]["post"];
    assert!(send["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object(), "a JSON body may be a form too");
    assert_eq!(send["responses"]["400"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Failure");
    let invitations = json["paths"]["/api/chat/groupInvitations"].as_object().map(|o| o.contains_key("get") && o.contains_key("post"));
    assert_eq!(invitations, Some(true));
    // Operation ids are unique (code generators name functions after them).
    let mut ids = BTreeSet::new();
    for item in json["paths"].as_object().into_iter().flat_map(|p| p.values()) {
        for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
            let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(!id.is_empty() && ids.insert(id.clone()), "operation id {id:?} is missing or repeated");
        }
    }
    assert!(ids.contains("askanswer_create") && ids.contains("group_create"), "{ids:?}");
}

/// A function of the route sources, by name: its file and its text.
struct Function {
    file: String,
    body: String,
}

type Functions = BTreeMap<String, Vec<Function>>;

/// `name` as `file` sees it: its own, else the only one of that name.
fn lookup<'a>(functions: &'a Functions, file: &str, name: &str) -> Option<&'a Function> {
    let all = functions.get(name)?;
    all.iter().find(|f| f.file == file).or(if all.len() == 1 { all.first() } else { None })
}

/// Functions by name (`Type::name` inside an `impl Type`).
fn functions(files: &[(String, String)]) -> Functions {
    let mut out = Functions::new();
    for (file, text) in files {
        let mut owner: Option<String> = None;
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some(rest) = line.strip_prefix("impl ") {
                owner = rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().map(str::to_owned);
            }
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let Some(at) = trimmed.find("fn ") else { continue };
            if !["", "pub ", "pub(crate) ", "pub(super) ", "async ", "pub async ", "pub(crate) async "].contains(&&trimmed[..at]) {
                continue;
            }
            let name: String = trimmed[at + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let end = format!("{}}}", " ".repeat(indent));
            let body: Vec<&str> = lines[i..].iter().take_while(|l| **l != end).copied().collect();
            let name = match (indent, &owner) {
                (0, _) | (_, None) => name,
                (_, Some(owner)) => format!("{owner}::{name}"),
            };
            out.entry(name).or_default().push(Function { file: file.clone(), body: body.join("\n") });
        }
    }
    out
}

/// The fields a function of `file` reads from `params`, directly or through the helpers
/// it hands `params` to (with the field names it passes them).
fn fields_read(file: &str, body: &str, functions: &Functions, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for method in ["required", "text", "int", "optional_bounded", "value", "ids"] {
        out.extend(literals_after(body, &format!("params.{method}(")).into_iter().map(str::to_owned));
    }
    for (at, _) in body.match_indices("params") {
        let before = &body[..at];
        let starts_word = before.chars().last().is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != '.');
        let ends_word = body[at + 6..].chars().next().is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != '.');
        if !starts_word || !ends_word {
            continue;
        }
        // The call `params` is an argument of: the unmatched `(` before it.
        let mut open = 0i32;
        let Some(paren) = before.char_indices().rev().find_map(|(i, c)| {
            match c {
                ')' => open += 1,
                '(' if open == 0 => return Some(i),
                '(' => open -= 1,
                _ => {}
            }
            None
        }) else {
            continue;
        };
        let callee: String = before[..paren].chars().rev().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let callee: String = callee.chars().rev().collect();
        let Some(function) = lookup(functions, file, &callee) else { continue };
        // The field names handed over with it: `positive(&params, "id")`.
        let args_end = body[paren..].find(')').map_or(body.len(), |e| paren + e);
        out.extend(literals_after(&body[paren..args_end], ",").into_iter().map(str::to_owned));
        if depth < 4 {
            out.extend(fields_read(&function.file, &function.body, functions, depth + 1));
        }
    }
    out.remove("token");
    out
}

/// What the description says an operation reads: its query parameters and the fields of
/// its JSON body.
fn fields_described(doc: &OpenApi, operation: &Operation) -> BTreeSet<String> {
    let mut out: BTreeSet<String> =
        operation.parameters.iter().flatten().filter(|p| p.parameter_in == ParameterIn::Query).map(|p| p.name.clone()).collect();
    out.remove("token");
    if let Some(body) = &operation.request_body
        && let Some(content) = body.content.get("application/json")
        && let Some(schema) = &content.schema
    {
        let object = match schema {
            RefOr::Ref(r) => doc.components.as_ref().and_then(|c| c.schemas.get(r.ref_location.rsplit('/').next().unwrap_or_default())),
            other => Some(other),
        };
        if let Some(RefOr::T(Schema::Object(object))) = object {
            out.extend(object.properties.keys().cloned());
        }
    }
    out
}

#[test]
fn every_field_a_handler_reads_is_described() {
    let files: Vec<(String, String)> =
        sources().into_iter().filter(|(f, _)| f.starts_with("routes/") || f == "send.rs" || f == "reads.rs").collect();
    let functions = functions(&files);
    assert!(functions.contains_key("Page::parse") && functions.contains_key("SendMessage::parse"), "methods are found by type");
    assert_eq!(functions.get("create").map(Vec::len), Some(2), "handlers of the same name in two files are told apart");
    let doc = description();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (file, text) in &files {
        for (at, _) in text.match_indices("#[utoipa::path(") {
            let attribute = &text[at..at + text[at..].find(")]\n").unwrap_or(0)];
            let path = literals_after(attribute, "path =").first().copied().unwrap_or_default().to_owned();
            let after = &text[at + attribute.len()..];
            let name_at = after.find("fn ").unwrap_or(0) + 3;
            let name: String = after[name_at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let Some(function) = lookup(&functions, file, &name) else { panic!("{file}: handler {name} not found") };
            let read = fields_read(file, &function.body, &functions, 0);
            let item = doc.paths.paths.get(&path).unwrap_or_else(|| panic!("{path} ({file}::{name}) is not in the description"));
            let authenticated = function.body.contains("authenticate") || function.body.contains("uploader(");
            for operation in [&item.get, &item.post].into_iter().flatten() {
                let multipart = operation.request_body.as_ref().is_some_and(|b| b.content.contains_key("multipart/form-data"));
                let described = fields_described(&doc, operation);
                if !multipart && read != described {
                    wrong.push(format!("{path} ({name}): reads {read:?}, described {described:?}"));
                }
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                if secured != authenticated {
                    wrong.push(format!("{path} ({name}): authenticates: {authenticated}, described with a token: {secured}"));
                }
                checked += 1;
            }
        }
    }
    assert!(wrong.is_empty(), "handlers and their descriptions differ:\n{}", wrong.join("\n"));
    assert!(checked >= 65, "{checked} operations checked");
}

#[test]
fn the_field_scan_sees_helpers_and_literals() {
    let files = vec![(
        "x.rs".to_owned(),
        "fn choice(params: &Params) -> X {\n    flag(params, \"lookme\", true)\n}\n\
         fn positive(params: &Params, key: &str) -> X {\n    params.int(key)\n}\n\
         impl Page {\n    pub fn parse(raw: &str, params: &Params) -> X {\n        params.int(\"limit\")\n    }\n}\n"
            .to_owned(),
    )];
    let functions = functions(&files);
    let body = "let a = params.required(\"a\")?; let c = choice(&params); Page::parse(&p, &params); positive(&params, \"id\"); other(&params, \"no\")";
    let read = fields_read("x.rs", body, &functions, 0);
    // `flag` and `other` are not functions of these sources: what they are handed is not taken.
    assert_eq!(read, ["a", "id", "limit"].into_iter().map(String::from).collect::<BTreeSet<_>>());
}
