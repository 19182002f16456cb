//! `verify` and `rollback` of a finished in-place job, on moto and on the embedded store, each
//! through `serve` and the CLI as an operator runs them: every conversion verified; then one key
//! written after the job, one original version expired, one conversion's tags tampered with and
//! one conversion version deleted, and what each command says and does about each.

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_s3::Client;
use e2e_tests::served::Served;
use e2e_tests::*;
use serde_json::Value;

use crate::engine::{Shape, create_shaped, put, store, terminal, until};

const KEYS: [&str; 5] = [
    "rec/a b+c%/通話 0.wav",
    "rec/plain.wav",
    "rec/changed.wav",
    "rec/expired.wav",
    "rec/removed.wav",
];

struct Cli<'a> {
    bin: &'a std::path::Path,
    served: &'a Served,
    s3_url: &'a str,
}

impl Cli<'_> {
    /// Runs `manifest-builder --json <args> JOB` against the served endpoints; (exit, JSON).
    fn run(&self, args: &[&str]) -> (i32, Value) {
        let e = &self.served.endpoints;
        let mut cmd: Command = aws_command(self.bin);
        if let Some(k) = e["aws_access_key_id"].as_str() {
            cmd.env("AWS_ACCESS_KEY_ID", k).env(
                "AWS_SECRET_ACCESS_KEY",
                e["aws_secret_access_key"].as_str().unwrap(),
            );
        }
        cmd.arg("--json")
            .args(args)
            .args(["--endpoint-url", self.s3_url])
            .args([
                "--s3control-endpoint-url",
                e["s3control_endpoint_url"].as_str().unwrap(),
            ])
            .args(["--account-id", crate::engine::ACCOUNT]);
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), json)
    }
}

fn by_key(v: &Value, field: &str, list: &str) -> BTreeMap<String, String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_string(),
                p[field].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn head_meta(s3: &Client, b: &str, k: &str, v: Option<&str>) -> BTreeMap<String, String> {
    s3.head_object()
        .bucket(b)
        .key(k)
        .set_version_id(v.map(str::to_string))
        .send()
        .await
        .unwrap()
        .metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

async fn version_count(s3: &Client, b: &str, k: &str) -> usize {
    s3.list_object_versions()
        .bucket(b)
        .prefix(k)
        .send()
        .await
        .unwrap()
        .versions()
        .iter()
        .filter(|v| v.key() == Some(k))
        .count()
}

async fn audit(label: &str, bin: &std::path::Path, served: Served, s3_url: &str) {
    let s3 = if served.endpoints["aws_access_key_id"].is_string() {
        served.embedded_s3()
    } else {
        s3_client(s3_url)
    };
    let control = manifest_builder::job::control::client(
        &crate::engine::shared(),
        Some(served.control_url()),
    );
    let b = new_bucket(&s3, "audit", true).await;
    let wav = connect_wav(0.5);
    let mut originals = BTreeMap::new();
    for (i, k) in KEYS.iter().enumerate() {
        let mut put = s3
            .put_object()
            .bucket(&b)
            .key(*k)
            .content_type("audio/wav")
            .body(wav.clone().into());
        if i == 0 {
            put = put.tagging("team=a%20b").metadata("who", "agent 7");
        }
        let v = put.send().await.unwrap();
        originals.insert(k.to_string(), v.version_id().unwrap().to_string());
    }
    let manifest: String = KEYS
        .iter()
        .map(|k| format!("{b},{}\n", batch_contract::key::encode_key(k)))
        .collect();
    let etag = put(&s3, &b, "manifests/m.csv", manifest.into_bytes()).await;
    let id = create_shaped(
        &control,
        &b,
        &etag,
        &format!("audit-{label}"),
        false,
        &Shape {
            versions: false,
            args: &[],
        },
    )
    .await
    .unwrap();
    until(&control, &id, terminal).await;
    let cli = Cli {
        bin,
        served: &served,
        s3_url,
    };

    let (code, v) = cli.run(&["verify", &id]);
    assert_eq!(code, 0, "{label}: {v}");
    assert_eq!(v["checked"], 5, "{label}: {v}");
    assert_eq!(v["verdicts"]["verified"], 5, "{label}: {v}");
    let requests = v["requests"].as_u64().unwrap();
    assert!(
        (10..=20).contains(&requests),
        "{label}: {requests} requests for 5"
    );
    let (code, v) = cli.run(&["verify", &id, "--sample", "2", "--seed", "7"]);
    assert_eq!((code, v["checked"].as_u64()), (0, Some(2)), "{label}: {v}");
    let (code, v) = cli.run(&["verify", &id, "--storage-class", "GLACIER_IR"]);
    assert_eq!(code, 0, "{label}: the handler's default class: {v}");
    let (code, v) = cli.run(&["verify", &id, "--storage-class", "STANDARD_IA"]);
    assert_eq!(code, 2, "{label}: {v}");
    assert!(
        v["problems"]
            .to_string()
            .contains("the job asked for STANDARD_IA"),
        "{label}: {v}"
    );

    // After the job: one key written again, one original expired, one conversion's tags
    // changed, one conversion version deleted (its key shows the original again).
    let current = |k: &str| {
        let (s3, b) = (s3.clone(), b.clone());
        let k = k.to_string();
        async move {
            s3.head_object()
                .bucket(&b)
                .key(&k)
                .send()
                .await
                .unwrap()
                .version_id()
                .unwrap()
                .to_string()
        }
    };
    put(&s3, &b, KEYS[2], b"written after the job".to_vec()).await;
    s3.delete_object()
        .bucket(&b)
        .key(KEYS[3])
        .version_id(&originals[KEYS[3]])
        .send()
        .await
        .unwrap();
    let tampered = current(KEYS[0]).await;
    s3.delete_object_tagging()
        .bucket(&b)
        .key(KEYS[0])
        .version_id(&tampered)
        .send()
        .await
        .unwrap();
    let removed = current(KEYS[4]).await;
    s3.delete_object()
        .bucket(&b)
        .key(KEYS[4])
        .version_id(&removed)
        .send()
        .await
        .unwrap();

    let (code, v) = cli.run(&["verify", &id]);
    assert_eq!(code, 2, "{label}: mismatches exit 2: {v}");
    let verdicts = by_key(&v, "verdict", "problems");
    assert_eq!(verdicts[KEYS[0]], "mismatch", "{label}: {v}");
    assert_eq!(verdicts[KEYS[3]], "original_expired", "{label}: {v}");
    assert_eq!(verdicts[KEYS[4]], "mismatch", "{label}: {v}");
    assert!(!verdicts.contains_key(KEYS[1]), "{label}: {v}");
    assert!(
        !verdicts.contains_key(KEYS[2]),
        "{label}: changed keys keep a verified conversion"
    );
    let reasons = by_key(&v, "reason", "problems");
    assert!(
        reasons[KEYS[0]].contains("tag team"),
        "{label}: {}",
        reasons[KEYS[0]]
    );
    assert!(
        reasons[KEYS[4]].contains("no longer exists"),
        "{label}: {}",
        reasons[KEYS[4]]
    );
    let written = v["verification_report"].as_str().unwrap();
    let (vb, vk) = written
        .strip_prefix("s3://")
        .unwrap()
        .split_once('/')
        .unwrap();
    let csv = String::from_utf8(get_bytes(&s3, vb, vk).await).unwrap();
    assert_eq!(csv.lines().count(), 6, "{label}: header + 5 rows: {csv}");

    let (code, v) = cli.run(&["rollback", &id, "--dry-run"]);
    assert_eq!(code, 2, "{label}: {v}");
    assert_eq!(v["actions"]["would_restore"], 2, "{label}: {v}");
    assert_eq!(
        version_count(&s3, &b, KEYS[1]).await,
        2,
        "a dry run changes nothing"
    );

    let (code, v) = cli.run(&["rollback", &id]);
    assert_eq!(code, 2, "{label}: skipped objects exit 2: {v}");
    assert_eq!(v["actions"]["restored"], 2, "{label}: {v}");
    let actions = by_key(&v, "action", "problems");
    assert_eq!(actions[KEYS[2]], "skipped_changed", "{label}: {v}");
    assert_eq!(actions[KEYS[3]], "refused_no_original", "{label}: {v}");
    assert_eq!(actions[KEYS[4]], "skipped_changed", "{label}: {v}");
    assert!(
        v["problems"]
            .to_string()
            .contains("no longer exists; the key holds version"),
        "{label}: {v}"
    );
    assert_eq!(get_bytes(&s3, &b, KEYS[1]).await, wav, "{label}");
    assert_eq!(get_bytes(&s3, &b, KEYS[0]).await, wav, "{label}");
    assert_eq!(
        get_bytes(&s3, &b, KEYS[2]).await,
        b"written after the job",
        "{label}: never overwritten"
    );
    let meta = head_meta(&s3, &b, KEYS[0], None).await;
    assert_eq!(
        meta.get("who").map(String::as_str),
        Some("agent 7"),
        "{label}"
    );
    assert!(!meta.contains_key("transcoded-by"), "{label}: {meta:?}");
    let tags = s3
        .get_object_tagging()
        .bucket(&b)
        .key(KEYS[0])
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tag_set().len(), 1, "{label}: the original's tags back");
    assert_eq!(tags.tag_set()[0].value(), "a b", "{label}");
    assert_eq!(
        version_count(&s3, &b, KEYS[1]).await,
        3,
        "{label}: the conversion is kept"
    );

    let (code, v) = cli.run(&["rollback", &id]);
    assert_eq!(code, 2, "{label}: {v}");
    assert_eq!(
        v["actions"]["already_restored"], 2,
        "{label}: idempotent: {v}"
    );
    assert_eq!(v["actions"].get("restored"), None, "{label}: {v}");
    assert_eq!(
        version_count(&s3, &b, KEYS[1]).await,
        3,
        "{label}: nothing new written"
    );

    let (_, v) = cli.run(&["verify", &id]);
    let verdicts = by_key(&v, "verdict", "problems");
    assert_eq!(verdicts[KEYS[1]], "rolled_back", "{label}: {v}");
    assert_eq!(v["verdicts"]["rolled_back"], 1, "{label}: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_and_rollback_on_the_embedded_store() {
    let test = "audit_embedded";
    let Some(bin) = require_binary("manifest-builder", test) else {
        return;
    };
    let dir = store(test);
    let mut cmd = aws_command(&bin);
    cmd.args(["serve", "--embedded-s3"])
        .arg(dir.join("s3"))
        .arg("--engine-dir")
        .arg(dir.join("engine"));
    let served = Served::start(cmd);
    let url = served.endpoints["s3_endpoint_url"]
        .as_str()
        .unwrap()
        .to_string();
    audit("embedded", &bin, served, &url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_and_rollback_on_moto() {
    let test = "audit_moto";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let Some(bin) = require_binary("manifest-builder", test) else {
        return;
    };
    let dir = store(test);
    let mut cmd = aws_command(&bin);
    cmd.args(["serve", "--endpoint-url", &endpoint, "--engine-dir"])
        .arg(dir.join("engine"));
    audit("moto", &bin, Served::start(cmd), &endpoint).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The demo converts in place on a versioned bucket and prints one recording's two versions;
/// `verify` of its job exits 0, `rollback` restores every original, and `verify` then says so.
#[test]
fn the_demo_converts_in_place_and_its_job_verifies_and_rolls_back() {
    demo_verifies_and_rolls_back("audit_demo", &[]);
}

/// The same with `codec=flac downmix=stereo`: `verify` encodes each original to FLAC again and
/// finds the same bytes.
#[test]
fn a_flac_demo_verifies_and_rolls_back() {
    demo_verifies_and_rolls_back(
        "audit_demo_flac",
        &["--user-arg", "codec=flac", "--user-arg", "downmix=stereo"],
    );
}

fn demo_verifies_and_rolls_back(test: &str, extra: &[&str]) {
    let Some(bin) = require_binary("manifest-builder", test) else {
        return;
    };
    let dir = store(test);
    let out = aws_command(&bin)
        .args([
            "demo",
            "--recordings",
            "12",
            "--min-minutes",
            "0.2",
            "--max-minutes",
            "0.5",
        ])
        .args(extra)
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("one recording, two versions"), "{said}");
    assert!(said.contains("--version-id"), "{said}");
    let job = said
        .split_whitespace()
        .skip_while(|w| *w != "verify")
        .nth(1)
        .expect("the demo names its job")
        .to_string();
    let local = |cmd: &str, extra: &[&str]| {
        let out = aws_command(&bin)
            .args(["--json", cmd, &job, "--local", "--embedded-s3"])
            .arg(dir.join("s3"))
            .arg("--engine-dir")
            .arg(dir.join("engine"))
            .args(extra)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{cmd}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), v)
    };
    let (code, v) = local("verify", &[]);
    assert_eq!(code, Some(0), "{v}");
    let converted = v["conversions"].as_u64().unwrap();
    assert!(converted >= 8, "{v}");
    assert_eq!(v["verdicts"]["verified"].as_u64(), Some(converted), "{v}");
    let (code, v) = local("rollback", &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["actions"]["restored"].as_u64(), Some(converted), "{v}");
    let (code, v) = local("verify", &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        v["verdicts"]["rolled_back"].as_u64(),
        Some(converted),
        "{v}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same with `codec=opus downmix=stereo`: `verify` encodes each original to Ogg Opus again
/// (libopus is deterministic for the same build, input and settings) and finds the same bytes.
#[test]
fn an_opus_demo_verifies_and_rolls_back() {
    demo_verifies_and_rolls_back(
        "audit_demo_opus",
        &["--user-arg", "codec=opus", "--user-arg", "downmix=stereo"],
    );
}
