//! `demo`: the whole main job on a fresh machine with no AWS account. Starts the embedded S3 and
//! the local engine, writes synthetic Amazon Connect recordings (Connect's key layout, 8 kHz
//! stereo 16-bit, two talkers) with a handful of broken and odd objects among them, then runs the
//! job and prints the report. The bucket is versioned and the recordings are converted in place,
//! as in production: each original stays as the previous version, and the summary shows one
//! recording's two versions and how to get the original back.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;

use crate::local::{self, LocalOptions};
use crate::run::{self, RunOutcome, RunRequest};
use crate::select::Selection;

/// The demo bucket.
pub const BUCKET: &str = "connect-recordings-demo";
/// Where Connect would put the recordings of instance `demo-contact-center`.
pub const PREFIX: &str = "connect/demo-contact-center/CallRecordings/";

/// What the demo writes and how it runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Good recordings to write (the odd and broken ones come on top).
    pub recordings: usize,
    /// Shortest call, minutes.
    pub min_minutes: f64,
    /// Longest call, minutes.
    pub max_minutes: f64,
    /// Keep the embedded S3 and the job store here (default: a temporary folder, removed after).
    pub dir: Option<PathBuf>,
    /// Invocations in flight (default: cores × 4).
    pub task_concurrency: Option<usize>,
    /// Job arguments for the handler (codec, downmix, ...).
    pub user_args: Vec<(String, String)>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            recordings: 300,
            min_minutes: 1.0,
            max_minutes: 4.0,
            dir: None,
            task_concurrency: None,
            user_args: Vec::new(),
        }
    }
}

/// One object the demo writes.
struct Object {
    key: String,
    body: Body,
    tags: Option<&'static str>,
}

enum Body {
    Call { seconds: f64, seed: u32 },
    Bytes(Vec<u8>),
}

fn contact_id(i: usize) -> String {
    let h = batch_contract::md5::md5_hex(format!("contact-{i}").as_bytes());
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn connect_key(i: usize, name_suffix: &str) -> String {
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(8 + (i % 21) as u64);
    let minute = (i * 7) % (24 * 60);
    format!(
        "{PREFIX}{}/{}{}_{}T{:02}:{:02}_UTC.wav",
        day.format("%Y/%m/%d"),
        contact_id(i),
        name_suffix,
        day.format("%Y%m%d"),
        minute / 60,
        minute % 60
    )
}

fn wav_16khz(seconds: f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut cursor, spec).expect("memory");
    for (l, r) in crate::synth::call_frames(seconds * 2.0, 99) {
        w.write_sample(l).expect("memory");
        w.write_sample(r).expect("memory");
    }
    w.finalize().expect("memory");
    cursor.into_inner()
}

fn already_converted() -> Vec<u8> {
    let wav = crate::synth::call_wav(120.0, 77);
    let mut t = batch_handler::transcode::Transcoder::new(
        batch_handler::Options::default(),
        wav.len() as u64,
    );
    let mut out = Vec::new();
    t.feed(&wav, &mut out)
        .expect("transcoding a synthetic call");
    t.finish().expect("transcoding a synthetic call");
    out
}

fn objects(args: &DemoOptions) -> Vec<Object> {
    let span = (args.max_minutes - args.min_minutes).max(0.0);
    let mut v: Vec<Object> = (0..args.recordings)
        .map(|i| {
            let frac = ((i as u64 * 2_654_435_761) % 1000) as f64 / 1000.0;
            let suffix = match i {
                1 => " (transferred)",
                2 => "+callback",
                3 => "_100%_quality",
                4 => "_appel-été_通話",
                _ => "",
            };
            Object {
                key: connect_key(i, suffix),
                body: Body::Call {
                    seconds: 60.0 * (args.min_minutes + span * frac),
                    seed: i as u32,
                },
                tags: None,
            }
        })
        .collect();
    let n = args.recordings;
    let mut truncated = crate::synth::call_wav(30.0, 5);
    truncated.truncate(600 * 1024);
    let mut truncated_header = truncated.clone();
    // Claim twice the data that is there: the file ends early.
    let claimed = (60.0 * 32_000.0) as u32;
    truncated_header[40..44].copy_from_slice(&claimed.to_le_bytes());
    v.push(Object {
        key: connect_key(n, "_truncated"),
        body: Body::Bytes(truncated_header),
        tags: None,
    });
    v.push(Object {
        key: connect_key(n + 1, "_not-a-wav"),
        body: Body::Bytes(
            (0..700 * 1024u32)
                .map(|i| (i.wrapping_mul(2_246_822_519) >> 13) as u8)
                .collect(),
        ),
        tags: None,
    });
    v.push(Object {
        key: connect_key(n + 2, "_16kHz"),
        body: Body::Bytes(wav_16khz(30.0)),
        tags: None,
    });
    v.push(Object {
        key: connect_key(n + 3, "_converted-earlier"),
        body: Body::Bytes(already_converted()),
        tags: Some("converted=true"),
    });
    v.push(Object {
        key: connect_key(n + 4, "_too-short-to-pay"),
        body: Body::Call {
            seconds: 5.0,
            seed: 3,
        },
        tags: None,
    });
    v
}

/// Writes the demo recordings into the embedded S3; returns (objects, bytes).
async fn populate(s3: &aws_sdk_s3::Client, args: &DemoOptions) -> anyhow::Result<(usize, u64)> {
    match s3.create_bucket().bucket(BUCKET).send().await {
        Ok(_) => {}
        Err(e) => {
            let e = aws_sdk_s3::Error::from(e);
            if !matches!(
                e,
                aws_sdk_s3::Error::BucketAlreadyOwnedByYou(_)
                    | aws_sdk_s3::Error::BucketAlreadyExists(_)
            ) {
                return Err(anyhow::Error::from(e)).context("creating the demo bucket");
            }
        }
    }
    crate::local::enable_versioning(s3, BUCKET).await?;
    let all = objects(args);
    let count = all.len();
    let pb = crate::progress::objects(count as u64, "writing recordings");
    let bytes_so_far = std::sync::atomic::AtomicU64::new(0);
    let written: Vec<anyhow::Result<u64>> = futures::stream::iter(all)
        .map(|o| {
            let (s3, pb, bytes_so_far) = (s3.clone(), &pb, &bytes_so_far);
            async move {
                let body = match o.body {
                    Body::Bytes(b) => b,
                    Body::Call { seconds, seed } => {
                        tokio::task::spawn_blocking(move || crate::synth::call_wav(seconds, seed))
                            .await?
                    }
                };
                let len = body.len() as u64;
                s3.put_object()
                    .bucket(BUCKET)
                    .key(&o.key)
                    .set_tagging(o.tags.map(str::to_string))
                    .content_type("audio/wav")
                    .body(body.into())
                    .send()
                    .await
                    .map_err(aws_sdk_s3::Error::from)
                    .with_context(|| format!("writing s3://{BUCKET}/{}", o.key))?;
                let total = len + bytes_so_far.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                pb.set_message(format!("writing recordings: {:.1} MB", total as f64 / 1e6));
                pb.inc(1);
                Ok(len)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    pb.finish_and_clear();
    let mut bytes = 0;
    for w in written {
        bytes += w?;
    }
    Ok((count, bytes))
}

/// The job's report as an HTML page at `at` (`report JOB --html`).
async fn report_page(
    job: &str,
    target: &crate::run::Target,
    at: &std::path::Path,
) -> anyhow::Result<()> {
    let (loc, rows, files) = crate::report::read_with_files(job, &target.jobs, &target.aws).await?;
    let summary = crate::report::summarise(&loc, &rows);
    let page = crate::pictures::report_html(
        &format!("Completion report: demo job {job}"),
        &summary,
        &rows,
        &files,
        &crate::estimate::Prices::default(),
    );
    std::fs::write(at, page)?;
    Ok(())
}

/// Runs the demo; returns the job's outcome.
pub async fn demo(args: &DemoOptions) -> anyhow::Result<RunOutcome> {
    let started = Instant::now();
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("shrinker-demo-{}", std::process::id())),
            true,
        ),
    };
    let local = LocalOptions {
        local: true,
        embedded_s3: Some(dir.join("s3")),
        engine_dir: dir.join("engine"),
        task_concurrency: args.task_concurrency,
        ..Default::default()
    };
    let pieces = local::start(&local, &Default::default(), &Default::default()).await?;
    eprintln!(
        "embedded S3 at {}, local Batch Operations engine at {}",
        pieces.s3.as_ref().map_or("?", |s| s.url.as_str()),
        pieces.api.as_ref().map_or("?", |a| a.url.as_str())
    );
    let s3 = pieces.target.aws.s3().await;
    let (objects, bytes) = populate(&s3, args).await?;
    let written = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {objects} objects ({:.1} MB) under s3://{BUCKET}/{PREFIX} in {written:.1} s",
        bytes as f64 / 1e6
    );
    let run = RunRequest {
        selection: Selection {
            bucket: Some(BUCKET.into()),
            prefix: PREFIX.into(),
            ..Selection::default()
        },
        local: true,
        user_args: args.user_args.clone(),
        ..RunRequest::default()
    };
    let job_started = Instant::now();
    let outcome = run::run(&run, &pieces.target, job_started).await;
    if let Ok(o) = &outcome {
        match two_versions(&s3).await {
            Ok(Some(example)) => eprintln!("{}", example.describe(o.job_id.as_deref())),
            Ok(None) => eprintln!("no recording has two versions: nothing was converted"),
            Err(e) => eprintln!("could not show a recording's versions: {e:#}"),
        }
        if let Some(job) = &o.job_id {
            let at = if temporary {
                std::env::temp_dir().join(format!("shrinker-demo-report-{job}.html"))
            } else {
                dir.join(format!("report-{job}.html"))
            };
            match report_page(job, &pieces.target, &at).await {
                Ok(()) => eprintln!("report page: {}", at.display()),
                Err(e) => eprintln!("could not write the report page: {e:#}"),
            }
        }
    }
    drop(pieces);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut outcome = outcome?;
    eprintln!(
        "demo: {:.1} s in all ({written:.1} s writing the recordings, {:.1} s for the job)",
        started.elapsed().as_secs_f64(),
        outcome.seconds
    );
    outcome.seconds = job_started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// One recording's original and conversion, as the versioned bucket keeps them.
pub struct TwoVersions {
    /// The recording's key.
    pub key: String,
    /// (version id, bytes, format) of the conversion, the current version.
    pub current: (String, i64, String),
    /// (version id, bytes, format) of the original, now the previous version.
    pub original: (String, i64, String),
}

impl TwoVersions {
    /// The lines the demo prints.
    pub fn describe(&self, job: Option<&str>) -> String {
        let row = |label: &str, v: &(String, i64, String)| {
            format!("  {label:<9} {}  {:>10} bytes  {}", v.0, v.1, v.2)
        };
        let mut s = format!(
            "one recording, two versions (s3://{BUCKET}/{}):\n{}\n{}\n",
            self.key,
            row("current", &self.current),
            row("original", &self.original)
        );
        s.push_str(&format!(
            "the original back: aws s3api get-object --bucket {BUCKET} --key '{}' --version-id {} original.wav",
            self.key, self.original.0
        ));
        if let Some(job) = job {
            s.push_str(&format!(
                "\ncheck or undo the whole job: manifest-builder verify {job} / manifest-builder rollback {job} (with --local on the same store: serve --embedded-s3 DIR)"
            ));
        }
        s
    }
}

/// The first recording that has a conversion on top of its original.
async fn two_versions(s3: &aws_sdk_s3::Client) -> anyhow::Result<Option<TwoVersions>> {
    let page = s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix(PREFIX)
        .max_keys(200)
        .send()
        .await
        .map_err(aws_sdk_s3::Error::from)
        .context("listing the demo bucket's versions")?;
    let versions = page.versions();
    let Some(latest) = versions.iter().find(|v| {
        v.is_latest() == Some(true) && versions.iter().filter(|o| o.key() == v.key()).count() >= 2
    }) else {
        return Ok(None);
    };
    let key = latest.key().unwrap_or_default().to_string();
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(&key)
        .set_version_id(latest.version_id().map(str::to_string))
        .send()
        .await
        .map_err(aws_sdk_s3::Error::from)
        .with_context(|| format!("reading s3://{BUCKET}/{key}"))?;
    let meta = head.metadata().cloned().unwrap_or_default();
    let Some(original_id) = meta.get("original-version-id").cloned() else {
        return Ok(None);
    };
    let original = versions
        .iter()
        .find(|v| v.key() == Some(key.as_str()) && v.version_id() == Some(original_id.as_str()));
    let written = meta
        .get(batch_handler::task::MARK_METADATA)
        .map(|m| m.split(' ').skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    Ok(Some(TwoVersions {
        current: (
            latest.version_id().unwrap_or_default().to_string(),
            latest.size().unwrap_or_default(),
            format!("{written}, written by the job"),
        ),
        original: (
            original_id,
            original.and_then(|v| v.size()).unwrap_or_default(),
            meta.get("original-format").cloned().unwrap_or_default(),
        ),
        key,
    }))
}
