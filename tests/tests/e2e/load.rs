//! Load: a 10,000-task job on the local engine, run by `serve` as its own process with the
//! embedded S3 (moto would copy every version on each listing), against a 1,000-task job for its
//! memory: the task list, the results and the report stream through bounded buffers, so the
//! engine's peak RSS does not grow with the task count. Nothing lost, the report exact.

use std::collections::HashSet;
use std::time::Instant;

use aws_sdk_s3::Client;
use batch_contract::result::{Action, Summary};
use e2e_tests::served::Served;
use e2e_tests::*;
use futures::StreamExt;

use crate::engine::{Shape, counts, create_shaped, put, report_rows, store, terminal, until};

/// Largest growth of the engine's peak RSS from 1,000 to 10,000 tasks. Holding every task and
/// result in memory, as the engine did, cost about 2.5 KB a task (22 MB for the 9,000 more).
const GROWTH_LIMIT_KIB: u64 = 6 * 1024;

struct Load {
    peak_kib: u64,
    secs: f64,
}

async fn job_of(bin: &std::path::Path, n: usize, test: &str) -> Load {
    let dir = store(&format!("{test}-{n}"));
    // The embedded S3 in a process of its own: its index grows with the objects it stores, as
    // any store's does; what must not grow with the tasks is the engine, measured alone.
    let mut cmd = aws_command(bin);
    cmd.args(["serve", "--embedded-s3"])
        .arg(dir.join("s3"))
        .arg("--engine-dir")
        .arg(dir.join("unused-engine"));
    let store_proc = Served::start(cmd);
    let s3 = store_proc.embedded_s3();
    let ep = &store_proc.endpoints;
    let mut cmd = aws_command(bin);
    cmd.args(["serve", "--concurrency", "16", "--endpoint-url"])
        .arg(ep["s3_endpoint_url"].as_str().unwrap())
        .arg("--engine-dir")
        .arg(dir.join("engine"))
        .env(
            "AWS_ACCESS_KEY_ID",
            ep["aws_access_key_id"].as_str().unwrap(),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            ep["aws_secret_access_key"].as_str().unwrap(),
        );
    let served = Served::start(cmd);
    let control = manifest_builder::job::control::client(
        &crate::engine::shared(),
        Some(served.control_url()),
    );
    s3.create_bucket().bucket("load").send().await.unwrap();
    let wav = connect_wav(0.25);
    let keys: Vec<String> = (0..n)
        .map(|i| format!("rec/2024/01/{:02}/c{i:05} +%_通話.wav", 1 + i % 28))
        .collect();
    futures::stream::iter(keys.iter())
        .map(|k| put(&s3, "load", k, wav.clone()))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let manifest: String = keys
        .iter()
        .map(|k| format!("load,{}\n", batch_contract::key::encode_key(k)))
        .collect();
    let etag = put(&s3, "load", "manifests/m.csv", manifest.into_bytes()).await;
    let t = Instant::now();
    let id = create_shaped(
        &control,
        "load",
        &etag,
        &format!("load-{n}"),
        false,
        &Shape {
            versions: false,
            args: &[("destPrefix", "converted/")],
        },
    )
    .await
    .unwrap();
    let job = until(&control, &id, terminal).await;
    let secs = t.elapsed().as_secs_f64();
    let peak_kib = served.peak_rss_kib();
    assert_eq!(
        job.status(),
        Some(&aws_sdk_s3control::types::JobStatus::Complete)
    );
    assert_eq!(counts(&job), (n as i64, n as i64, 0));
    audit(&s3, &keys, &id).await;
    drop(served);
    drop(store_proc);
    let _ = std::fs::remove_dir_all(&dir);
    Load { peak_kib, secs }
}

/// Every key has one report row, converted, and its conversion exists; no other rows.
async fn audit(s3: &Client, keys: &[String], id: &str) {
    let rows = report_rows(s3, "load", id).await;
    assert_eq!(rows.len(), keys.len(), "one row per task");
    let reported: HashSet<String> = rows.iter().map(|r| r.key()).collect();
    assert_eq!(reported.len(), keys.len(), "no task reported twice");
    for r in &rows {
        assert!(!r.failed(), "{}: {}", r.key(), r.message);
        let s = Summary::from_result_string(&r.message).expect("a result summary");
        assert_eq!(s.action, Action::Converted, "{}", r.message);
    }
    let mut converted = HashSet::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket("load")
        .prefix("converted/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            converted.insert(
                o.key()
                    .unwrap()
                    .trim_start_matches("converted/")
                    .to_string(),
            );
        }
    }
    let wanted: HashSet<String> = keys.iter().cloned().collect();
    assert_eq!(
        reported, wanted,
        "the report names exactly the manifest's objects"
    );
    assert_eq!(
        converted, wanted,
        "every object converted, nothing else written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_tasks_run_in_the_memory_of_a_thousand() {
    let test = "load_10k";
    let Some(bin) = require_binary("manifest-builder", test) else {
        return;
    };
    let small = job_of(&bin, 1_000, test).await;
    let large = job_of(&bin, 10_000, test).await;
    eprintln!(
        "engine (serve, the embedded S3 in another process): 1,000 tasks in {:.1} s, peak RSS {} KiB; 10,000 tasks in {:.1} s \
         ({:.0} tasks/s), peak RSS {} KiB",
        small.secs,
        small.peak_kib,
        large.secs,
        10_000.0 / large.secs,
        large.peak_kib
    );
    assert!(
        large.peak_kib < small.peak_kib + GROWTH_LIMIT_KIB,
        "peak RSS grew from {} KiB at 1,000 tasks to {} KiB at 10,000",
        small.peak_kib,
        large.peak_kib
    );
}
