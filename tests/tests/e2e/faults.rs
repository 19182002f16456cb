//! Truthful under faults: a `run --local` through a proxy that injects what real S3 and real
//! networks do, then an audit straight against the server: every original intact, every current
//! version the original or a bit-exact conversion of it, no key converted twice, and every
//! report row true. Then `kill -9` of a run mid-job and the same command again.

use std::collections::HashMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use batch_contract::report::{ReportManifest, ReportRow, parse_rows, verify};
use batch_contract::result::{Action, Summary};
use batch_handler::Options;
use batch_handler::transcode::Transcoder;
use e2e_tests::fault_proxy::{self, Plan};
use e2e_tests::*;
use serde_json::Value;

const GOOD: usize = 100;

fn expected(input: &[u8]) -> Vec<u8> {
    let mut t = Transcoder::new(Options::default(), input.len() as u64);
    let mut out = Vec::new();
    t.feed(input, &mut out).expect("feed");
    t.finish().expect("finish");
    out
}

/// What the bucket holds before the job: key → (original version, bytes, good).
struct Fixture {
    bucket: String,
    originals: HashMap<String, (String, Vec<u8>, bool)>,
}

async fn fixture(s3: &Client, label: &str) -> Fixture {
    let bucket = new_bucket(s3, label, true).await;
    let mut objects: Vec<(String, Vec<u8>, bool)> = (0..GOOD)
        .map(|i| {
            let key = match i % 4 {
                0 => format!("rec/2024/01/02/c{i:03} space+plus_20240102T03:07_UTC.wav"),
                1 => format!("rec/2024/01/02/c{i:03}-通話.wav"),
                _ => format!("rec/2024/01/02/c{i:03}_20240102T03:07_UTC.wav"),
            };
            (key, manifest_builder::synth::call_wav(0.25, i as u32), true)
        })
        .collect();
    let mut truncated = manifest_builder::synth::call_wav(0.25, 999);
    truncated.truncate(30);
    for (name, body) in [
        ("not-a-wav", b"ID3 this is an mp3".to_vec()),
        ("truncated", truncated),
        ("empty", Vec::new()),
    ] {
        objects.push((format!("rec/2024/01/02/bad-{name}.wav"), body, false));
    }
    let mut originals = HashMap::new();
    for (i, (key, body, good)) in objects.into_iter().enumerate() {
        let mut put = s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(body.clone()));
        if i % 3 == 0 {
            put = put.tagging("team=support&retention=7y");
        }
        if i % 5 == 0 {
            put = put.metadata("agent", format!("a{i}"));
        }
        let version = put.send().await.unwrap().version_id().unwrap().to_string();
        originals.insert(key, (version, body, good));
    }
    Fixture { bucket, originals }
}

fn run_local(endpoint: &str, bucket: &str, dir: &std::path::Path) -> (Option<i32>, Value, String) {
    let mut c = aws_command(&workspace_binary("manifest-builder").unwrap());
    c.args(["--endpoint-url", endpoint, "--json", "run", "--local"])
        .args(["--bucket", bucket, "--prefix", "rec/", "--min-size", "0"])
        .args(["--task-concurrency", "8"])
        .arg("--engine-dir")
        .arg(dir);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{stderr}"));
    (out.status.code(), v, stderr)
}

/// The report's rows, read and MD5-checked straight from the server.
async fn report(s3: &Client, bucket: &str, job: &str) -> Vec<ReportRow> {
    let base = format!("batch-operations/manifests/reports/job-{job}");
    let m = object_bytes(s3, bucket, &format!("{base}/manifest.json"), None).await;
    let m = ReportManifest::parse(&m, "manifest.json").unwrap();
    let mut rows = Vec::new();
    for f in &m.results {
        let bytes = object_bytes(s3, &f.bucket, &f.key, None).await;
        verify(f, &bytes).unwrap();
        rows.extend(parse_rows(&bytes, &f.key).unwrap());
    }
    rows
}

/// What the audit found; every count but `converted` and `temporary` must be zero.
#[derive(Debug, Default)]
struct Audit {
    converted: usize,
    temporary: usize,
    lost: usize,
    misreported: usize,
    converted_twice: usize,
    problems: Vec<String>,
}

/// Checks every object and every report row against the server, directly.
async fn audit(s3: &Client, fx: &Fixture, rows: &[ReportRow]) -> Audit {
    let mut a = Audit::default();
    let mut by_key: HashMap<String, &ReportRow> = HashMap::new();
    for r in rows {
        if by_key.insert(r.key(), r).is_some() {
            a.misreported += 1;
            a.problems.push(format!("{}: two report rows", r.key()));
        }
    }
    for (key, (version, body, good)) in &fx.originals {
        let versions = s3
            .list_object_versions()
            .bucket(&fx.bucket)
            .prefix(key)
            .send()
            .await
            .unwrap();
        let mine: Vec<_> = versions
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key.as_str()))
            .collect();
        if object_bytes(s3, &fx.bucket, key, Some(version)).await != *body {
            a.lost += 1;
            a.problems.push(format!("{key}: original changed or lost"));
        }
        let current = object_bytes(s3, &fx.bucket, key, None).await;
        let converted_in_s3 = *good && current == expected(body);
        if !converted_in_s3 && current != *body {
            a.lost += 1;
            a.problems.push(format!(
                "{key}: current version is neither original nor conversion"
            ));
        }
        if mine.len() > 2 {
            a.converted_twice += 1;
            a.problems.push(format!("{key}: {} versions", mine.len()));
        }
        if converted_in_s3 {
            let tags = s3
                .get_object_tagging()
                .bucket(&fx.bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            if !tags.tag_set().iter().any(|t| t.key() == "converted") {
                a.problems.push(format!("{key}: converted but not tagged"));
            }
        }
        let Some(row) = by_key.get(key) else {
            a.misreported += 1;
            a.problems.push(format!("{key}: no report row"));
            continue;
        };
        let summary = (!row.failed())
            .then(|| Summary::from_result_string(&row.message))
            .flatten();
        let reported_converted = summary
            .as_ref()
            .is_some_and(|s| s.action == Action::Converted);
        let truthful = match (reported_converted, converted_in_s3) {
            (true, true) => {
                let current_version = mine
                    .iter()
                    .find(|v| v.is_latest() == Some(true))
                    .and_then(|v| v.version_id());
                summary.as_ref().unwrap().output_version_id.as_deref() == current_version
            }
            (false, false) if row.failed() => {
                if row.error_code == "TemporaryFailure" {
                    a.temporary += 1;
                    *good
                } else {
                    !*good && row.message.contains("WAV") || row.message.contains("empty")
                }
            }
            _ => false,
        };
        if reported_converted {
            a.converted += 1;
        }
        if !truthful {
            a.misreported += 1;
            a.problems.push(format!(
                "{key}: reported {} {} {:?}, converted in S3: {converted_in_s3}",
                row.status, row.error_code, row.message
            ));
        }
    }
    a
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_run_under_faults_loses_nothing_and_every_report_row_is_true() {
    let Some(endpoint) = moto_and_binary("faults_run_local", "manifest-builder") else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let seeds: Vec<u64> = std::env::var("FAULT_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 3]);
    let rate: f64 = std::env::var("FAULT_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0.2);
    for seed in seeds {
        let fx = fixture(&s3, &format!("faults-{seed}")).await;
        let proxy = fault_proxy::start(&endpoint, Plan::all(seed, rate)).await;
        let dir = std::env::temp_dir().join(format!("faults-{seed}-{}", std::process::id()));
        let (code, out, stderr) = run_local(&proxy.url, &fx.bucket, &dir);
        assert_eq!(out["status"], "Complete", "seed {seed}: {out}\n{stderr}");
        assert_eq!(
            code,
            Some(2),
            "seed {seed}: failed tasks give exit 2: {out}"
        );
        let job = out["job_id"].as_str().unwrap().to_string();
        let rows = report(&s3, &fx.bucket, &job).await;
        let a = audit(&s3, &fx, &rows).await;
        eprintln!(
            "fault seed {seed}, rate {rate}: {} objects, {} requests, faults injected {:?}; converted {}, temporary {}, \
             lost {}, mis-reported {}, converted twice {}",
            fx.originals.len(),
            proxy.requests(),
            proxy.injected(),
            a.converted,
            a.temporary,
            a.lost,
            a.misreported,
            a.converted_twice
        );
        assert!(
            a.lost == 0 && a.misreported == 0 && a.converted_twice == 0 && a.problems.is_empty(),
            "seed {seed}: {:#?}",
            a.problems
        );
        assert!(
            proxy.injected().values().sum::<u64>() > 0,
            "no fault was injected"
        );
        // A clean rerun converts exactly what is left.
        drop(proxy);
        let left = GOOD - a.converted;
        let (_, again, stderr) = run_local(&endpoint, &fx.bucket, &dir);
        assert_eq!(again["status"], "Complete", "{again}\n{stderr}");
        assert_eq!(
            again["report"]["converted"].as_u64(),
            Some(left as u64),
            "seed {seed}: {again}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Lines in every `results.jsonl` of an engine store: tasks finished so far.
fn finished(dir: &std::path::Path) -> usize {
    let Ok(jobs) = std::fs::read_dir(dir.join("jobs")) else {
        return 0;
    };
    jobs.flatten()
        .filter_map(|j| std::fs::read_to_string(j.path().join("results.jsonl")).ok())
        .map(|t| t.lines().count())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_job_and_run_again_reports_every_task_once_and_truly() {
    let Some(endpoint) = moto_and_binary("faults_kill_and_resume", "manifest-builder") else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let fx = fixture(&s3, "kill-resume").await;
    // Every request a little late, so the job is still running when it is killed.
    let mut slow = Plan::all(7, 1.0);
    slow.kinds = vec![fault_proxy::Fault::Latency];
    let proxy = fault_proxy::start(&endpoint, slow).await;
    let dir = std::env::temp_dir().join(format!("kill-resume-{}", std::process::id()));
    let mut c = aws_command(&workspace_binary("manifest-builder").unwrap());
    c.args(["--endpoint-url", &proxy.url, "--json", "run", "--local"])
        .args([
            "--bucket",
            &fx.bucket,
            "--prefix",
            "rec/",
            "--min-size",
            "0",
        ])
        .args(["--task-concurrency", "2"])
        .arg("--engine-dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let started = std::time::Instant::now();
    while finished(&dir) < 20 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the job never got going"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL: no cleanup, as a crash
    child.wait().unwrap();
    let done_before = finished(&dir);
    assert!(
        done_before < fx.originals.len(),
        "killed before the end: {done_before} tasks"
    );
    // The same command again: it follows the job it started, which resumes.
    let (code, out, stderr) = run_local(&proxy.url, &fx.bucket, &dir);
    assert!(stderr.contains("following it"), "{stderr}");
    assert_eq!(out["status"], "Complete", "{out}\n{stderr}");
    assert_eq!(code, Some(2), "{out}");
    let job = out["job_id"].as_str().unwrap();
    let jobs = std::fs::read_dir(dir.join("jobs")).unwrap().count();
    assert_eq!(
        jobs, 1,
        "one job, not a second one over the same recordings"
    );
    let rows = report(&s3, &fx.bucket, job).await;
    assert_eq!(rows.len(), fx.originals.len(), "every task reported once");
    let a = audit(&s3, &fx, &rows).await;
    eprintln!(
        "kill -9 after {done_before} of {} tasks, then the same command: converted {}, lost {}, mis-reported {}, \
         converted twice {}",
        fx.originals.len(),
        a.converted,
        a.lost,
        a.misreported,
        a.converted_twice
    );
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
    assert_eq!(a.converted, GOOD);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve` against `endpoint` on a fixed port, its store in `dir`, two invocations at a time.
fn serve(endpoint: &str, port: u16, dir: &std::path::Path) -> e2e_tests::served::Served {
    let mut c = aws_command(&workspace_binary("manifest-builder").unwrap());
    c.args(["--endpoint-url", endpoint, "serve", "--concurrency", "2"])
        .args(["--port", &port.to_string()])
        .arg("--engine-dir")
        .arg(dir);
    e2e_tests::served::Served::start(c)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_killed_mid_job_and_restarted_reports_every_task_once_and_truly() {
    use crate::engine::{Shape, create_shaped, report_rows, terminal, until};
    let Some(endpoint) = moto_and_binary("faults_kill_serve", "manifest-builder") else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let fx = fixture(&s3, "kill-serve").await;
    let manifest: String = fx
        .originals
        .iter()
        .map(|(key, (version, _, _))| {
            format!(
                "{},{},{version}\n",
                fx.bucket,
                batch_contract::key::encode_key(key)
            )
        })
        .collect();
    let etag = crate::engine::put(&s3, &fx.bucket, "manifests/m.csv", manifest.into_bytes()).await;
    // Every request a little late, so the job is still running when the engine is killed.
    let mut slow = Plan::all(11, 1.0);
    slow.kinds = vec![fault_proxy::Fault::Latency];
    let proxy = fault_proxy::start(&endpoint, slow).await;
    let dir = std::env::temp_dir().join(format!("kill-serve-{}", std::process::id()));
    let port = crate::engine::free_port();
    let served = serve(&proxy.url, port, &dir);
    let control = manifest_builder::job::control::client(
        &crate::engine::shared(),
        Some(served.control_url()),
    );
    let shape = Shape {
        versions: true,
        args: &[],
    };
    let id = create_shaped(&control, &fx.bucket, &etag, "kill-serve", false, &shape)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while finished(&dir) < 20 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the job never got going"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    served.kill();
    let done_before = finished(&dir);
    assert!(done_before < fx.originals.len(), "killed before the end");
    // The same store, the same port: the engine takes its job up again.
    let served = serve(&proxy.url, port, &dir);
    let job = until(&control, &id, terminal).await;
    assert_eq!(
        job.status(),
        Some(&aws_sdk_s3control::types::JobStatus::Complete)
    );
    let again = create_shaped(&control, &fx.bucket, &etag, "kill-serve", false, &shape)
        .await
        .unwrap();
    assert_eq!(
        again, id,
        "the same token answers with the same job after a restart"
    );
    let rows = report_rows(&s3, &fx.bucket, &id).await;
    assert_eq!(rows.len(), fx.originals.len(), "every task reported once");
    let a = audit(&s3, &fx, &rows).await;
    eprintln!(
        "serve killed (-9) after {done_before} of {} tasks, then restarted: converted {}, lost {}, \
         mis-reported {}, converted twice {}",
        fx.originals.len(),
        a.converted,
        a.lost,
        a.misreported,
        a.converted_twice
    );
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
    assert_eq!(a.converted, GOOD);
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}
