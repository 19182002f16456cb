//! The `batch-handler` command line as an operator uses it.

use std::process::Command;

use batch_handler::Options;
use batch_handler::transcode::Transcoder;
use e2e_tests::*;
use serde_json::Value;

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("e2e-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn dry_run_needs_no_credentials_region_or_network() {
    let Some(bin) = require_binary("batch-handler", "dry_run_needs_no_credentials") else {
        return;
    };
    let d = dir("dry");
    let event = event_v2(
        "amazon-connect-0123",
        &[("a%20b%2Bc%3A.wav", Some("v1")), ("bad%zz", None)],
        serde_json::json!({"downmix": "left"}),
    );
    std::fs::write(d.join("ev.json"), event.to_string()).unwrap();
    let out = Command::new(bin)
        .env_clear()
        .args(["invoke", "--dry-run", "--event"])
        .arg(d.join("ev.json"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no config chain, no warnings"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tasks"][0]["key"], "a b+c:.wav");
    assert_eq!(v["tasks"][0]["versionId"], "v1");
    assert_eq!(v["tasks"][0]["bucket"], "amazon-connect-0123");
    assert!(
        v["tasks"][1]["error"]
            .as_str()
            .unwrap()
            .contains("not URL-encoded")
    );
    assert_eq!(v["settings"]["downmix"], "left");
    assert_eq!(v["settings"]["storageClass"], "GLACIER_IR");
}

#[test]
fn transcode_writes_what_the_library_writes_and_refuses_clearly() {
    let Some(bin) = require_binary("batch-handler", "transcode_cli") else {
        return;
    };
    let d = dir("transcode");
    let input = connect_wav(3.0);
    std::fs::write(d.join("in.wav"), &input).unwrap();
    let out = Command::new(&bin)
        .arg("transcode")
        .arg(d.join("in.wav"))
        .arg(d.join("out.wav"))
        .args(["--downmix", "sum"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = Vec::new();
    let options = Options {
        downmix: batch_handler::Downmix::Sum,
        ..Options::default()
    };
    let mut t = Transcoder::new(options, input.len() as u64);
    t.feed(&input, &mut expected).unwrap();
    t.finish().unwrap();
    assert_eq!(std::fs::read(d.join("out.wav")).unwrap(), expected);

    // A pipe cannot be mapped: the same bytes come out of the streamed path.
    let mut piped = Command::new(&bin)
        .arg("transcode")
        .arg("/dev/stdin")
        .arg(d.join("piped.wav"))
        .args(["--downmix", "sum", "--sync"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = piped.stdin.take().unwrap();
        stdin.write_all(&input).unwrap();
    }
    let piped = piped.wait_with_output().unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(std::fs::read(d.join("piped.wav")).unwrap(), expected);

    // Already A-law: exit 3, nothing written.
    let again = Command::new(&bin)
        .arg("transcode")
        .arg(d.join("out.wav"))
        .arg(d.join("again.wav"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already alaw"));
    assert!(!d.join("again.wav").exists());

    // Not a WAV: the error names the file and the reason; no partial output is left behind.
    std::fs::write(d.join("notes.txt"), b"hello, this is not audio").unwrap();
    let bad = Command::new(&bin)
        .arg("transcode")
        .arg(d.join("notes.txt"))
        .arg(d.join("bad.wav"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("not a WAV file"),
        "{err}"
    );
    assert!(!d.join("bad.wav").exists() && !d.join("bad.partial").exists());
}

#[test]
fn estimate_from_a_manifest_summary_as_table_json_and_csv() {
    let Some(bin) = require_binary("manifest-builder", "estimate_cli") else {
        return;
    };
    let d = dir("estimate");
    std::fs::write(
        d.join("m.summary.json"),
        r#"{"objects": 1000, "bytes": 1000000000000}"#,
    )
    .unwrap();
    let run = |args: &[&str]| Command::new(&bin).env_clear().args(args).output().unwrap();
    let out = run(&[
        "--json",
        "estimate",
        "--years",
        "1",
        "--from-summary",
        d.join("m.summary.json").to_str().unwrap(),
        "--noncurrent-days",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    // 1000 GB backlog: $23 a month before; a quarter of it in GLACIER_IR at $0.004 after.
    assert!((e["months"][0]["before"].as_f64().unwrap() - 23.0).abs() < 1e-9);
    assert!((e["months"][5]["after_glacier_ir"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(e["years"].as_array().unwrap().len(), 1);
    let csv = run(&[
        "estimate",
        "--minutes-per-month",
        "1000",
        "--years",
        "2",
        "--csv",
    ]);
    let text = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(text.lines().count(), 25, "header and 24 months");
    let table = run(&[
        "estimate",
        "--minutes-per-month",
        "3000000",
        "--mb-per-minute",
        "2",
        "--processing-cost-per-1000-minutes",
        "0.11",
        "--noncurrent-days",
        "0",
    ]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("$362,664"), "{text}");
    let nothing = run(&["estimate"]);
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to estimate"));
}
