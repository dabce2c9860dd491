//! Real `im` processes (and the mock Kafka broker) for the suites that kill or split the
//! server: started from the binaries built beside the tests, stopped by PID.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A binary of the workspace, built beside this test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join(name);
    assert!(bin.exists(), "{} is missing: build the workspace (cargo build) first", bin.display());
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0").local_addr().expect("local addr").port()
}

/// A running `im serve`.
pub struct ImProcess {
    child: Child,
    pub base: String,
    pub ws_base: String,
    pub port: u16,
    env: HashMap<String, String>,
}

impl ImProcess {
    /// Starts `im serve` with these environment variables on a free port and waits for
    /// `/healthz`. A port another test's process took between `free_port` and the bind
    /// (its `/healthz` names another node, or ours exits) is given up for another one.
    pub async fn start(env: &HashMap<String, String>) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            match Self::launch(&["serve".into(), "--listen".into(), format!("127.0.0.1:{port}")], env, port).await {
                Ok(process) => return process,
                Err(why) => last = why,
            }
        }
        panic!("{last}");
    }

    /// Starts `im` with these arguments and environment variables and waits for
    /// `/healthz` on `port` (where the arguments make it listen).
    pub async fn start_args(args: &[String], env: &HashMap<String, String>, port: u16) -> Self {
        Self::launch(args, env, port).await.unwrap_or_else(|why| panic!("{why}"))
    }

    async fn launch(args: &[String], env: &HashMap<String, String>, port: u16) -> Result<Self, String> {
        let mut cmd = Command::new(binary("im"));
        cmd.args(args).env_remove("DATABASE_URL").env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::env::temp_dir().join(format!("im-proc-{port}.log"));
        let (stdout, stderr) = match std::fs::File::create(&log) {
            Ok(file) => match file.try_clone() {
                Ok(copy) => (Stdio::from(file), Stdio::from(copy)),
                Err(_) => (Stdio::null(), Stdio::null()),
            },
            Err(_) => (Stdio::null(), Stdio::null()),
        };
        let mut child = cmd.stdout(stdout).stderr(stderr).spawn().expect("spawn im");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                let health: serde_json::Value = r.json().await.unwrap_or_default();
                let node = health["data"]["node"].as_str().or(health["node"].as_str()).unwrap_or_default().to_owned();
                let ours = env.get("IM_NODE_ID").is_none_or(|n| *n == node);
                if ours && matches!(child.try_wait(), Ok(None)) {
                    return Ok(Self { child, ws_base: format!("ws://127.0.0.1:{port}"), base, port, env: env.clone() });
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{base} is another process's (node {node:?}): this one did not get the port"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        Err(format!("im did not come up on {base}: {output}"))
    }

    /// Runs `im serve` with these environment variables expecting it to refuse to start:
    /// waits for it to exit (it must, and not successfully) and returns what it printed.
    pub async fn refused(env: &HashMap<String, String>) -> String {
        let port = free_port();
        let mut cmd = Command::new(binary("im"));
        cmd.arg("serve").env_remove("DATABASE_URL").env("IM_LISTEN", format!("127.0.0.1:{port}")).env("RUST_LOG", "warn");
        cmd.envs(env).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn im");
        let output = tokio::time::timeout(Duration::from_secs(60), tokio::task::spawn_blocking(move || child.wait_with_output()))
            .await
            .expect("im exits instead of serving")
            .expect("join")
            .expect("wait for im");
        let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(!output.status.success(), "im refused to start: {printed}");
        printed
    }

    /// The process's resident memory (VmRSS), in bytes.
    pub fn resident_bytes(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// The process's resident memory that is not a mapped file (RssAnon: heap and
    /// stacks), in bytes. SQLite maps its files, and pages read from them count in VmRSS.
    pub fn anonymous_bytes(&self) -> u64 {
        self.status_bytes("RssAnon:")
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb = status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
        kb.unwrap_or_else(|| panic!("{field} in /proc/<pid>/status")) * 1024
    }

    /// SIGTERM, as an operator stops it, and waits (up to 30 s) for it to exit; returns
    /// whether it exited successfully and what is needed to start it again.
    pub async fn stop(mut self) -> (bool, HashMap<String, String>) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.success(), std::mem::take(&mut self.env));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("im (pid {pid}) did not exit within 30 s of SIGTERM");
    }

    /// SIGKILL, no graceful anything; returns what is needed to start it again.
    pub fn kill(mut self) -> HashMap<String, String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut self.env)
    }
}

impl Drop for ImProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// librdkafka's mock cluster as a process, with the given `topic:partitions`.
pub struct MockKafka {
    child: Child,
    pub bootstrap: String,
}

impl MockKafka {
    pub fn start(topics: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(binary("im-kafka-mock"))
            .arg("1")
            .args(topics)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn im-kafka-mock");
        let stdout = child.stdout.take().expect("mock stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("mock prints its bootstrap");
        let bootstrap = line.trim().strip_prefix("BOOTSTRAP=").expect("BOOTSTRAP= line").to_owned();
        Self { child, bootstrap }
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
