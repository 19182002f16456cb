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

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn malformed_flags_are_refused_before_any_request() {
    let Some(bin) = require_binary("manifest-builder", "malformed_flags_refused_early") else {
        return;
    };
    let port = closed_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let (f, r) = (
        "arn:aws:lambda:us-east-1:123456789012:function:h",
        "arn:aws:iam::123456789012:role/r",
    );
    let submit = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["submit", "--manifest", "s3://ops/m.csv"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let own = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // (arguments, what the one-line refusal must name)
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            submit(&["--function-arn", "nope", "--role-arn", r]),
            vec!["--function-arn", "\"nope\"", "arn:aws:lambda:<region>"],
        ),
        (
            submit(&["--function-arn", f, "--role-arn", "nope"]),
            vec!["--role-arn", "arn:aws:iam::<12-digit account>:role/<name>"],
        ),
        (
            submit(&[
                "--function-arn",
                f,
                "--role-arn",
                r,
                "--user-arg",
                "codec=mp3",
            ]),
            vec!["--user-arg", "codec"],
        ),
        (
            submit(&[
                "--function-arn",
                f,
                "--role-arn",
                r,
                "--user-arg",
                "colour=blue",
            ]),
            vec!["--user-arg", "unknown (accepted:"],
        ),
        (
            submit(&["--function-arn", f, "--role-arn", r, "--user-arg", "codec"]),
            vec!["--user-arg", "key=value"],
        ),
        (
            own(&[
                "submit",
                "--generate",
                "--source-bucket",
                "s3://calls",
                "--function-arn",
                f,
                "--role-arn",
                r,
            ]),
            vec!["--source-bucket", "without s3://"],
        ),
        (
            own(&[
                "submit",
                "--generate",
                "--source-bucket",
                "calls",
                "--created-after",
                "2024-02-30",
                "--function-arn",
                f,
                "--role-arn",
                r,
            ]),
            vec!["--created-after", "YYYY-MM-DD"],
        ),
        (
            own(&[
                "submit",
                "--generate",
                "--source-bucket",
                "calls",
                "--created-after",
                "2024-02-01",
                "--created-before",
                "2024-01-01",
                "--function-arn",
                f,
                "--role-arn",
                r,
            ]),
            vec!["--created-after", "--created-before", "empty"],
        ),
        (
            own(&[
                "submit",
                "--manifest",
                "./local.csv",
                "--function-arn",
                f,
                "--role-arn",
                r,
            ]),
            vec!["--manifest", "reads the manifest from S3"],
        ),
        (
            submit(&[
                "--function-arn",
                f,
                "--role-arn",
                r,
                "--report",
                "./reports",
            ]),
            vec!["--report", "goes to S3"],
        ),
        (
            own(&["manifest", "--bucket", "ab", "--dry-run"]),
            vec!["--bucket", "is not a bucket name", "3-63 characters"],
        ),
        (
            own(&["manifest", "--bucket", "Calls Bucket", "--dry-run"]),
            vec!["--bucket", "is not a bucket name"],
        ),
        (
            own(&[
                "manifest",
                "--bucket",
                "calls",
                "--prefix",
                "s3://calls/p/",
                "--dry-run",
            ]),
            vec!["--prefix", "not an s3:// URL"],
        ),
        (
            own(&[
                "manifest",
                "--bucket",
                "calls",
                "--older-than",
                "7x",
                "--dry-run",
            ]),
            vec!["--older-than", "7d, 2w, 3m or 1y"],
        ),
        (
            own(&[
                "manifest",
                "--bucket",
                "calls",
                "--from",
                "2024-13-01",
                "--dry-run",
            ]),
            vec!["--from", "YYYY-MM-DD"],
        ),
        (
            own(&[
                "manifest",
                "--bucket",
                "calls",
                "--from",
                "2024-02-01",
                "--to",
                "2024-01-01",
                "--dry-run",
            ]),
            vec!["--from", "--to", "empty"],
        ),
        (
            own(&[
                "manifest",
                "--inventory",
                "./no/such/manifest.json",
                "--dry-run",
            ]),
            vec!["--inventory", "no such file"],
        ),
        (
            own(&["run", "--bucket", "calls", "--function-arn", "f"]),
            vec!["--function-arn", "arn:aws:lambda:<region>"],
        ),
        (
            own(&[
                "run",
                "--bucket",
                "calls",
                "--local",
                "--user-arg",
                "downmix=loud",
            ]),
            vec!["--user-arg", "downmix"],
        ),
    ];
    for (args, names) in cases {
        let out = aws_command(&bin)
            .args([
                "--endpoint-url",
                &endpoint,
                "--s3control-endpoint-url",
                &endpoint,
            ])
            .args(["--account-id", "123456789012"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            !err.contains("could not reach") && !err.contains("dispatch failure"),
            "{args:?}: refused only after a request: {err}"
        );
        for name in names {
            assert!(err.contains(name), "{args:?}: {name:?} not in: {err}");
        }
    }
}

#[test]
fn an_unreachable_endpoint_is_one_line_that_says_where_and_what_to_check() {
    let Some(bin) = require_binary("manifest-builder", "unreachable_endpoint") else {
        return;
    };
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    for (args, op) in [
        (
            vec![
                "--endpoint-url",
                &endpoint,
                "manifest",
                "--bucket",
                "calls",
                "--dry-run",
            ],
            "GetBucketVersioning",
        ),
        (
            vec![
                "--s3control-endpoint-url",
                &endpoint,
                "--account-id",
                "123456789012",
                "status",
                "job-1",
            ],
            "DescribeJob",
        ),
    ] {
        let out = aws_command(&bin).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        let line = err.trim();
        assert_eq!(line.lines().count(), 1, "one line: {err}");
        for part in [
            format!("could not reach {endpoint}").as_str(),
            op,
            "onnection refused",
            "Check the endpoint URL",
            "credentials and region",
            "SDK: ",
            "dispatch failure",
        ] {
            assert!(line.contains(part), "{part:?} not in: {line}");
        }
        assert!(
            line.find("could not reach") < line.find("SDK: "),
            "the explanation first, the SDK's detail after it: {line}"
        );
    }
}

#[test]
fn long_steps_show_progress_on_a_terminal_and_nothing_under_json_or_a_pipe() {
    let Some(bin) = require_binary("manifest-builder", "progress_on_a_terminal") else {
        return;
    };
    let demo = |json: bool| {
        let d = dir(if json {
            "progress-json"
        } else {
            "progress-tty"
        });
        let mut c = aws_command(&bin);
        if json {
            c.arg("--json");
        }
        c.args([
            "demo",
            "--recordings",
            "30",
            "--min-minutes",
            "0.5",
            "--max-minutes",
            "1",
        ])
        .arg("--dir")
        .arg(d.join("demo"));
        c
    };
    let tty = e2e_tests::pty::run_on_pty(&mut demo(false));
    assert!(tty.status.success(), "{}", tty.terminal);
    for bar in ["writing recordings", "objects,", "tasks,"] {
        assert!(
            tty.terminal.contains(bar),
            "{bar:?} not drawn on the terminal:\n{}",
            tty.terminal
        );
    }
    let quiet = e2e_tests::pty::run_on_pty(&mut demo(true));
    assert!(quiet.status.success(), "{}", quiet.terminal);
    serde_json::from_str::<Value>(&quiet.stdout).expect("--json prints JSON on stdout");
    let piped = demo(false).output().unwrap();
    assert!(piped.status.success());
    for (what, text) in [
        ("--json on a terminal", quiet.terminal.as_str()),
        ("a pipe", &*String::from_utf8_lossy(&piped.stderr)),
    ] {
        for bar in ["writing recordings:", "objects,", "tasks,", "\u{1b}["] {
            assert!(!text.contains(bar), "{what}: {bar:?} drawn:\n{text}");
        }
    }
}
