//! `manifest-builder serve` as its own process, as an operator runs it: the engine (and the
//! embedded S3, when asked) behind the endpoints it prints, killed with SIGKILL when dropped.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

/// A running `serve`.
pub struct Served {
    child: Child,
    /// What it printed: `s3control_endpoint_url`, `s3_endpoint_url`, keys, region, account.
    pub endpoints: Value,
}

impl Served {
    /// Starts `cmd` (a `manifest-builder … serve …` command) and reads its endpoints line.
    pub fn start(mut cmd: Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the endpoints line");
        let endpoints: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("serve printed {line:?} ({e}), not its endpoints"));
        Served { child, endpoints }
    }

    /// The S3 Control endpoint of the engine.
    pub fn control_url(&self) -> &str {
        self.endpoints["s3control_endpoint_url"]
            .as_str()
            .expect("an engine endpoint")
    }

    /// A client of the embedded S3 with the keys it printed.
    pub fn embedded_s3(&self) -> Client {
        let e = &self.endpoints;
        let creds = Credentials::new(
            e["aws_access_key_id"].as_str().expect("embedded S3 keys"),
            e["aws_secret_access_key"]
                .as_str()
                .expect("embedded S3 keys"),
            None,
            None,
            "serve",
        );
        Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(creds)
                .endpoint_url(e["s3_endpoint_url"].as_str().expect("an embedded S3"))
                .force_path_style(true)
                .build(),
        )
    }

    /// The process's peak resident memory so far (`VmHWM` in /proc), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmHWM line")
    }

    /// SIGKILL, as a crash: no cleanup.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
