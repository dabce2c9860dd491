use super::keys::mask_url_password;
use super::*;
use crate::settings::Settings;
use std::collections::HashMap;
use std::path::PathBuf;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

/// A config file in a directory of its own, removed when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn path(&self) -> PathBuf {
        self.0.join("im.toml")
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_with(text: &str) -> ConfigFile {
    let dir = std::env::temp_dir().join(format!("im-config-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("im.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    ConfigFile(dir)
}

fn resolved(given: &Given, env: &[(&str, &str)]) -> Resolved {
    given.resolve_with(&env_of(env)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let file = file_with("listen = \"127.0.0.1:9001\"\nrate_send = 7\nrate_login = 8\nws_queue = 99\n");
    let mut given = Given { file: Some(file.path()), ..Given::default() };
    given.flags.insert("listen", "127.0.0.1:9003".into());
    let r = resolved(&given, &[("IM_LISTEN", "127.0.0.1:9002"), ("IM_RATE_SEND", "70")]);
    assert_eq!(r.settings.listen.port(), 9003);
    assert_eq!(r.settings.limits.send, 70, "the environment beats the file");
    assert_eq!(r.settings.limits.login, 8, "the file beats the default");
    assert_eq!(r.settings.sockets.queue, 99);
    assert_eq!(r.settings.limits.write, Settings::with_data_dir("./data").limits.write, "untouched: the default");
    assert_eq!(r.origins["listen"], Origin::Flag);
    assert_eq!(r.origins["rate_send"], Origin::Environment);
    assert_eq!(r.origins["rate_login"], Origin::File);
    assert_eq!(r.origins["rate_write"], Origin::Default);
}

#[test]
fn the_data_dir_moves_the_upload_dirs_unless_they_are_set() {
    let r = resolved(&Given::default(), &[("IM_DATA_DIR", "/srv/im")]);
    assert_eq!(r.settings.files.upload_dir, PathBuf::from("/srv/im/uploads"));
    assert_eq!(r.settings.files.incoming_dir, PathBuf::from("/srv/im/incoming"));
    let r = resolved(&Given::default(), &[("IM_DATA_DIR", "/srv/im"), ("IM_UPLOAD_DIR", "/var/uploads")]);
    assert_eq!(r.settings.files.upload_dir, PathBuf::from("/var/uploads"));
}

#[test]
fn bad_values_and_unknown_keys_are_refused_by_name() {
    let err = |given: &Given, env: &[(&str, &str)]| given.resolve_with(&env_of(env)).err().map(|e| e.0).unwrap_or_default();
    assert!(err(&Given::default(), &[("IM_WS_QUEUE", "2")]).starts_with("IM_WS_QUEUE: must be at least 4"));
    assert!(err(&Given::default(), &[("IM_LISTEN", "nowhere")]).starts_with("IM_LISTEN:"));
    assert!(err(&Given::default(), &[("IM_ROLE", "boss")]).contains("one of all, gateway, projector, relay"));
    assert!(err(&Given::default(), &[("IM_REBUILD_RANGE", "0")]).starts_with("IM_REBUILD_RANGE: must be at least 1"));
    assert!(err(&Given::default(), &[("IM_REBUILD_RANGE", "1000001")]).starts_with("IM_REBUILD_RANGE: must be at most 1000000"));
    assert_eq!(resolved(&Given::default(), &[("IM_REBUILD_RANGE", "1000000")]).settings.rebuild_range, 1_000_000);
    let mut flagged = Given::default();
    flagged.flags.insert("rate_send", "-1".into());
    assert!(err(&flagged, &[]).starts_with("--rate-send:"));
    let typo_file = file_with("rate_sned = 5\n");
    let typo = Given { file: Some(typo_file.path()), ..Given::default() };
    assert!(err(&typo, &[]).contains("unknown setting \"rate_sned\""));
    let nested_file = file_with("[limits]\nsend = 5\n");
    let nested = Given { file: Some(nested_file.path()), ..Given::default() };
    assert!(err(&nested, &[]).contains("unknown setting"));
    let missing = Given { file: Some(PathBuf::from("/nonexistent/im.toml")), ..Given::default() };
    assert!(err(&missing, &[]).starts_with("config file /nonexistent/im.toml"));
    assert!(err(&Given::default(), &[("IM_CONFIG", "/nonexistent/other.toml")]).starts_with("config file /nonexistent/other.toml"));
}

#[test]
fn s3_is_on_only_with_an_endpoint() {
    let r = resolved(&Given::default(), &[("IM_S3_BUCKET", "pics")]);
    assert_eq!(r.settings.files.s3, None);
    let r = resolved(&Given::default(), &[("IM_S3_ENDPOINT", "http://127.0.0.1:9000"), ("IM_S3_SECRET_KEY", "k")]);
    let s3 = r.settings.files.s3.unwrap_or_else(Settings::s3_unset);
    assert_eq!((s3.endpoint.as_str(), s3.bucket.as_str(), s3.secret_key.as_str()), ("http://127.0.0.1:9000", "im-uploads", "k"));
}

#[test]
fn printing_masks_secrets_and_reads_back() {
    let r = resolved(
        &Given::default(),
        &[
            ("DATABASE_URL", "postgres://im:hunter2@db:5432/im"),
            ("REDIS_URL", "redis://:sesame@cache:6379/"),
            ("JWT_SECRET", "topsecret"),
            ("IM_S3_ENDPOINT", "http://s3"),
            ("IM_S3_SECRET_KEY", "s3secret"),
            ("IM_RATE_SEND", "42"),
        ],
    );
    let printed = r.print();
    for secret in ["hunter2", "sesame", "topsecret", "s3secret"] {
        assert!(!printed.contains(secret), "{secret} leaked:\n{printed}");
    }
    assert!(printed.contains("database_url = \"postgres://im:********@db:5432/im\""), "{printed}");
    assert!(printed.contains("rate_send = \"42\"  # IM_RATE_SEND, environment"), "{printed}");
    assert!(printed.contains("# kafka_brokers is unset"), "{printed}");
    // What is printed (without the masked secrets) is a config file that gives the same settings.
    let kept: String = printed.lines().filter(|l| !l.contains("********")).map(|l| format!("{l}\n")).collect();
    let kept_file = file_with(&kept);
    let again = resolved(&Given { file: Some(kept_file.path()), ..Given::default() }, &[]);
    assert_eq!(again.settings.limits, r.settings.limits);
    assert_eq!(again.settings.files.s3.map(|s| s.endpoint), Some("http://s3".to_owned()));
}

#[test]
fn urls_without_a_password_are_shown_whole() {
    assert_eq!(mask_url_password("postgres://im@db/im"), "postgres://im@db/im");
    assert_eq!(mask_url_password("redis://cache:6379/"), "redis://cache:6379/");
    assert_eq!(mask_url_password("postgres://u:p@h/d?x=@"), "postgres://u:********@h/d?x=@");
}

#[test]
fn every_setting_has_a_line_in_the_readme() {
    let readme = include_str!("../../../README.md");
    let missing: Vec<&str> = KEYS.iter().map(|k| k.env).filter(|env| !readme.contains(&format!("`{env}`"))).collect();
    assert!(missing.is_empty(), "README's configuration table lacks {missing:?}");
    let names: std::collections::HashSet<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(names.len(), KEYS.len(), "a key is listed twice");
}
