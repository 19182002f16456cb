//! A 30-minute recording through the `batch-handler invoke` binary, with its peak RSS measured
//! against a 2-minute one: streaming means memory does not grow with the recording.

use std::process::{Command, Stdio};

use aws_sdk_s3::primitives::ByteStream;
use batch_handler::Options;
use batch_handler::transcode::Transcoder;
use e2e_tests::*;
use serde_json::Value;

/// Runs the binary and returns (stdout, its peak RSS in KiB as it reports it).
///
/// Not `wait4`'s `ru_maxrss`: Linux carries the parent's high-water mark into the child across
/// `posix_spawn` and exec, so from this (large) test process it would measure the test itself.
fn run_measured(cmd: &mut Command) -> (String, i64) {
    let out = cmd
        .env("REPORT_PEAK_RSS", "1")
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "exit {:?}: {stdout}{stderr}",
        out.status
    );
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak_rss_kib line in:\n{stderr}"));
    (stdout, peak)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_30_minute_recording_converts_in_the_memory_of_a_2_minute_one() {
    let test = "a_30_minute_recording_converts_in_the_memory_of_a_2_minute_one";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    let Some(binary) = require_binary("batch-handler", test) else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "long", true).await;
    let mut peaks = Vec::new();
    for minutes in [2u32, 30] {
        let key = format!("calls/{minutes}min.wav");
        let wav = long_connect_wav(minutes * 60);
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(wav.clone()))
            .send()
            .await
            .unwrap();
        let event_path =
            std::env::temp_dir().join(format!("e2e-event-{}-{minutes}.json", std::process::id()));
        std::fs::write(&event_path, event_v1(&bucket, &[(&key, None)]).to_string()).unwrap();
        let (stdout, peak_kib) = tokio::task::spawn_blocking({
            let (binary, endpoint, event_path) =
                (binary.clone(), endpoint.clone(), event_path.clone());
            move || {
                run_measured(
                    aws_command(&binary)
                        .args(["invoke", "--event"])
                        .arg(&event_path)
                        .args(["--endpoint-url", &endpoint]),
                )
            }
        })
        .await
        .unwrap();
        let response: Value = serde_json::from_str(&stdout).expect("response JSON");
        let result = &response["results"][0];
        assert_eq!(result["resultCode"], "Succeeded", "{result}");
        let summary: Value =
            serde_json::from_str(result["resultString"].as_str().unwrap()).unwrap();
        assert_eq!(summary["durationSeconds"], f64::from(minutes * 60));
        let converted = object_bytes(&s3, &bucket, &key, None).await;
        let mut expected = Vec::new();
        let mut t = Transcoder::new(Options::default(), wav.len() as u64);
        t.feed(&wav, &mut expected).unwrap();
        t.finish().unwrap();
        assert!(
            converted == expected,
            "{minutes} min: converted object differs from the transcoder's output"
        );
        eprintln!(
            "invoke on a {minutes}-minute recording ({} bytes): peak RSS {} KiB",
            wav.len(),
            peak_kib
        );
        peaks.push(peak_kib);
    }
    let (short, long) = (peaks[0], peaks[1]);
    // The 30-minute input is 57.6 MB; buffering it, or its 14.4 MB output, would show here.
    assert!(
        long - short < 12 * 1024,
        "peak RSS grew from {short} KiB to {long} KiB with a 15x longer recording"
    );
}
