//! `verify JOB`: checks a finished job against the originals. For every converted task of the
//! completion report it reads the original version the conversion names, converts it again with
//! the recorded codec and downmix, and compares the result with the stored conversion byte for
//! byte (by MD5: the conversion's ETag when it is one, else its bytes), then checks what the
//! conversion must carry over (duration, tags, user metadata, encryption) and whether the key
//! still holds the conversion, holds the original again (rolled back) or was changed since.
//!
//! Requests per object: HEAD of the key, GET of the original, plus GetObjectTagging of both
//! when the original has tags, HEAD of the conversion's version when the key holds another, and
//! a GET of the conversion when its ETag is not an MD5 (multipart, SSE-KMS).

use std::collections::BTreeMap;

use anyhow::Context;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use batch_contract::report::ReportRow;
use batch_contract::result::{Action, Summary};
use batch_handler::encode::Spooled;
use batch_handler::task::{DURATION_METADATA, MARK_METADATA};
use batch_handler::transcode::{Options, Transcoder};
use futures::StreamExt;
use serde::Serialize;

use crate::aws::AwsOptions;
use crate::job::JobOptions;

/// One converted task of a report: what was written and from which original.
#[derive(Debug, Clone, Serialize)]
pub struct Conversion {
    /// Bucket of the original (and, in place, of the conversion).
    pub bucket: String,
    /// The original's key.
    pub key: String,
    /// The original's version, from the manifest or the conversion's metadata.
    pub original_version: Option<String>,
    /// Where the conversion was written.
    pub output_key: String,
    /// The conversion's version id, when the bucket versions.
    pub output_version: Option<String>,
    /// What was asked of the transcoder.
    #[serde(skip)]
    pub options: Options,
    /// Written through the spool as FLAC or Opus (`options.downmix` applies; the law does not).
    #[serde(skip)]
    pub spooled: Option<Spooled>,
    /// Duration the task reported.
    pub duration_seconds: f64,
}

impl Conversion {
    /// Whether the conversion replaced the original under its own key.
    pub fn in_place(&self) -> bool {
        self.output_key == self.key
    }
}

/// The converted tasks of a report (skipped and failed ones wrote nothing to check).
pub fn conversions(rows: &[ReportRow]) -> Vec<Conversion> {
    rows.iter()
        .filter(|r| !r.failed())
        .filter_map(|r| {
            let s = Summary::from_result_string(&r.message)?;
            if s.action != Action::Converted {
                return None;
            }
            let key = r.key();
            let output_key = if s.output_key.is_empty() || s.output_key.ends_with('…') {
                key.clone()
            } else {
                s.output_key.clone()
            };
            let mut options = Options::default();
            let spooled = s.codec.as_deref().and_then(|c| spooled_of(c, None));
            if let Some(c) = s.codec.as_deref().and_then(|c| c.parse().ok()) {
                options.codec = c;
            }
            if let Some(d) = s.downmix.as_deref().and_then(|d| d.parse().ok()) {
                options.downmix = d;
            }
            Some(Conversion {
                bucket: r.bucket.clone(),
                key,
                original_version: (!r.version_id.is_empty()).then(|| r.version_id.clone()),
                output_key,
                output_version: s.output_version_id.clone(),
                options,
                spooled,
                duration_seconds: s.duration_seconds,
            })
        })
        .collect()
}

/// The spooled codec a report or mark names (`flac`, `opus` with its bit rate per channel as
/// `16000bps`); `None` for G.711.
fn spooled_of(codec: &str, bitrate: Option<&str>) -> Option<Spooled> {
    match codec {
        "flac" => Some(Spooled::Flac),
        "opus" => Some(Spooled::Opus {
            bitrate: bitrate
                .and_then(|b| b.strip_suffix("bps"))
                .and_then(|b| b.parse().ok())
                .unwrap_or(batch_handler::encode::DEFAULT_OPUS_BITRATE),
        }),
        _ => None,
    }
}

/// What verification found for one conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The conversion is exactly this tool's output for the original, with what it must carry.
    Verified,
    /// Verified, and the key holds the original again (`rollback`).
    RolledBack,
    /// The original version no longer exists (expired by lifecycle or deleted): nothing to
    /// compare against, reported rather than failed.
    OriginalExpired,
    /// The conversion is not what it should be.
    Mismatch,
    /// A request failed.
    Error,
}

/// One verification row.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// Bucket.
    pub bucket: String,
    /// The original's key.
    pub key: String,
    /// The conversion's version.
    pub conversion_version: Option<String>,
    /// The original's version.
    pub original_version: Option<String>,
    /// The finding.
    pub verdict: Verdict,
    /// Why, for anything but a plain `verified`.
    pub reason: String,
    /// The conversion's storage class (STANDARD when S3 names none).
    pub storage_class: Option<String>,
    /// S3 requests this check made.
    pub requests: u32,
}

/// What `verify` was asked.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    /// Job id, or a report location (as `report` takes).
    pub what: String,
    /// Check only this many conversions, chosen at random.
    pub sample: Option<usize>,
    /// Seed of the sample (default: the clock), printed so a sample can be repeated.
    pub seed: Option<u64>,
    /// Objects checked at once.
    pub concurrency: usize,
    /// The storage class every conversion must have (the job's `storageClass`; default: any,
    /// reported per object).
    pub storage_class: Option<String>,
}

/// The outcome: counts, the rows that were not verified, where the full report went.
#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    /// The completion report read.
    pub report: String,
    /// Where the verification report was written.
    pub verification_report: String,
    /// Converted tasks in the report.
    pub conversions: usize,
    /// Of which checked.
    pub checked: usize,
    /// The sample's seed, when sampled.
    pub seed: Option<u64>,
    /// Counts by verdict.
    pub verdicts: BTreeMap<String, usize>,
    /// S3 requests made.
    pub requests: u64,
    /// Everything not plainly verified.
    pub problems: Vec<Checked>,
    /// 0: all verified (or rolled back, or originals expired); 2: mismatches or errors.
    #[serde(skip)]
    pub exit: u8,
}

fn sample(mut all: Vec<Conversion>, n: Option<usize>, seed: u64) -> Vec<Conversion> {
    let Some(n) = n else { return all };
    all.sort_by_cached_key(|c| {
        batch_contract::md5::md5_hex(format!("{seed}\0{}\0{}", c.bucket, c.key).as_bytes())
    });
    all.truncate(n);
    all
}

/// Verifies a job's conversions; writes `verification.csv` beside its completion report.
pub async fn verify(
    req: &VerifyRequest,
    jobs: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<VerifySummary> {
    let (loc, rows) = crate::report::read(&req.what, jobs, aws).await?;
    let all = conversions(&rows);
    let total = all.len();
    let seed = req.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let chosen = sample(all, req.sample, seed);
    let s3 = aws.s3().await;
    let pb = crate::progress::objects(chosen.len() as u64, "verifying");
    let checked: Vec<Checked> = futures::stream::iter(chosen)
        .map(|c| {
            let (s3, pb) = (s3.clone(), &pb);
            async move {
                let row = check(&s3, &c, req.storage_class.as_deref()).await;
                pb.inc(1);
                row
            }
        })
        .buffered(req.concurrency.max(1))
        .collect()
        .await;
    pb.finish_and_clear();
    let out = loc.sibling("verification.csv");
    out.write(&s3, rows_csv(&checked)?.into_bytes(), "text/csv")
        .await
        .with_context(|| format!("writing the verification report {out}"))?;
    let mut verdicts = BTreeMap::new();
    for c in &checked {
        *verdicts
            .entry(
                serde_json::to_value(&c.verdict)?
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
            .or_insert(0) += 1;
    }
    let bad = checked
        .iter()
        .any(|c| matches!(c.verdict, Verdict::Mismatch | Verdict::Error));
    Ok(VerifySummary {
        report: loc.to_string(),
        verification_report: out.to_string(),
        conversions: total,
        checked: checked.len(),
        seed: req.sample.map(|_| seed),
        verdicts,
        requests: checked.iter().map(|c| u64::from(c.requests)).sum(),
        problems: checked
            .into_iter()
            .filter(|c| c.verdict != Verdict::Verified)
            .collect(),
        exit: if bad { 2 } else { 0 },
    })
}

fn rows_csv(rows: &[Checked]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "bucket",
        "key",
        "conversion_version",
        "original_version",
        "verdict",
        "reason",
        "storage_class",
    ])?;
    for r in rows {
        let verdict = serde_json::to_value(&r.verdict)?;
        w.write_record([
            r.bucket.as_str(),
            r.key.as_str(),
            r.conversion_version.as_deref().unwrap_or(""),
            r.original_version.as_deref().unwrap_or(""),
            verdict.as_str().unwrap_or(""),
            r.reason.as_str(),
            r.storage_class.as_deref().unwrap_or(""),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Prints the summary for a person.
pub fn print(s: &VerifySummary) {
    println!("report {}", s.report);
    let sampled = s
        .seed
        .map(|seed| format!(" (a random sample, --seed {seed})"))
        .unwrap_or_default();
    println!(
        "checked {} of {} conversions{sampled}, {} S3 requests ({:.1} per object)",
        s.checked,
        s.conversions,
        s.requests,
        s.requests as f64 / s.checked.max(1) as f64
    );
    for (v, n) in &s.verdicts {
        println!("  {v:<17} {n}");
    }
    // Rolled-back objects are counted above; their rows are in the report and under --json.
    for p in s
        .problems
        .iter()
        .filter(|p| p.verdict != Verdict::RolledBack)
    {
        println!(
            "  {:?} s3://{}/{}: {}",
            p.verdict, p.bucket, p.key, p.reason
        );
    }
    println!("verification report {}", s.verification_report);
}

pub(crate) fn sdk_reason<E: ProvideErrorMetadata + std::error::Error + 'static>(
    what: &str,
    e: &aws_sdk_s3::error::SdkError<E>,
) -> String {
    match e.code() {
        Some(code) => format!("{what}: {code}: {}", e.message().unwrap_or("(no message)")),
        None => format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(e)),
    }
}

pub(crate) fn not_found<E: ProvideErrorMetadata>(e: &aws_sdk_s3::error::SdkError<E>) -> bool {
    matches!(
        e.code(),
        Some("NoSuchVersion" | "NoSuchKey" | "NotFound" | "404")
    ) || e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
}

/// What a HEAD or GET told about a version.
struct Seen {
    version: Option<String>,
    etag: String,
    size: i64,
    metadata: BTreeMap<String, String>,
    storage_class: Option<String>,
    sse: Option<String>,
    kms_key: Option<String>,
}

fn seen_head(h: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> Seen {
    Seen {
        version: h.version_id().map(str::to_string),
        etag: h.e_tag().unwrap_or_default().trim_matches('"').to_string(),
        size: h.content_length().unwrap_or_default(),
        metadata: h
            .metadata()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default(),
        storage_class: h.storage_class().map(|c| c.as_str().to_string()),
        sse: h.server_side_encryption().map(|s| s.as_str().to_string()),
        kms_key: h.ssekms_key_id().map(str::to_string),
    }
}

async fn head(
    s3: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Seen, aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::head_object::HeadObjectError>>
{
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .map(|h| seen_head(&h))
}

async fn tags(
    s3: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<BTreeMap<String, String>, String> {
    s3.get_object_tagging()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .map(|t| {
            t.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        })
        .map_err(|e| sdk_reason(&format!("reading the tags of {key} (GetObjectTagging)"), &e))
}

/// Streams a body through an MD5; returns (hex, bytes).
async fn md5_of(mut body: aws_sdk_s3::primitives::ByteStream) -> Result<(String, u64), String> {
    let mut h = <batch_contract::md5::Hasher as md5::Digest>::new();
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("reading the conversion (GetObject body): {e}"))?;
        md5::Digest::update(&mut h, &chunk);
        n += chunk.len() as u64;
    }
    Ok((batch_contract::md5::finish_md5_hex(h), n))
}

/// Converts the original again as it streams in; returns the output's MD5, its length and the
/// duration, without holding the recording in memory. G.711 from 8 kHz streams through the
/// transcoder; FLAC, Opus and G.711 from another rate go through a temporary file, as the
/// handler's spool.
async fn reconvert(
    mut body: aws_sdk_s3::primitives::ByteStream,
    options: Options,
    spooled: Option<Spooled>,
    size: u64,
) -> Result<(String, u64, f64), String> {
    if let Some(kind) = spooled {
        return reconvert_spooled(Vec::new(), body, options.downmix, kind, size).await;
    }
    let mut t = Transcoder::new(options, size);
    let mut h = <batch_contract::md5::Hasher as md5::Digest>::new();
    let mut out = Vec::with_capacity(1 << 16);
    let mut written = 0u64;
    // Held until the header is read, in case the recording needs resampling.
    let mut seen = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("reading the original (GetObject body): {e}"))?;
        if written == 0 {
            seen.push(chunk.clone());
        }
        match t.feed(&chunk, &mut out) {
            Ok(_) => {}
            Err(batch_handler::transcode::TranscodeError::NeedsResampling { .. }) => {
                let kind = Spooled::G711(options.codec);
                return reconvert_spooled(seen, body, options.downmix, kind, size).await;
            }
            Err(e) => return Err(format!("converting the original again: {e}")),
        }
        md5::Digest::update(&mut h, &out);
        written += out.len() as u64;
        out.clear();
    }
    let plan = t
        .finish()
        .map_err(|e| format!("converting the original again: {e}"))?;
    Ok((
        batch_contract::md5::finish_md5_hex(h),
        written,
        plan.seconds(),
    ))
}

/// [`reconvert`] through a temporary file (FLAC and G.711 rewrite their header at the end),
/// whose MD5 and length are compared; memory stays one block. `seen` is what of the body was
/// read already.
async fn reconvert_spooled(
    seen: Vec<bytes::Bytes>,
    mut body: aws_sdk_s3::primitives::ByteStream,
    downmix: batch_handler::Downmix,
    kind: Spooled,
    size: u64,
) -> Result<(String, u64, f64), String> {
    let (spool, file) = batch_handler::encode::Spool::create("verify")
        .map_err(|e| format!("creating a temporary file: {e}"))?;
    let mut conv =
        batch_handler::encode::WavToSpool::new(size, std::io::BufWriter::new(file), downmix, kind);
    let mut seen = seen.into_iter();
    while !conv.complete() {
        let chunk = match seen.next() {
            Some(c) => c,
            None => match body.next().await {
                Some(c) => c.map_err(|e| format!("reading the original (GetObject body): {e}"))?,
                None => break,
            },
        };
        conv.feed(&chunk)
            .map_err(|e| format!("converting the original again: {e}"))?;
    }
    let (done, writer) = conv
        .finish()
        .map_err(|e| format!("converting the original again: {e}"))?;
    drop(writer);
    let mut h = <batch_contract::md5::Hasher as md5::Digest>::new();
    spool
        .read_through(|piece| md5::Digest::update(&mut h, piece))
        .map_err(|e| format!("reading {}: {e}", spool.path.display()))?;
    Ok((
        batch_contract::md5::finish_md5_hex(h),
        done.len,
        done.seconds(),
    ))
}

fn is_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks one conversion. Never fails: a failed request is an `Error` row with the call named.
pub async fn check(s3: &Client, c: &Conversion, class: Option<&str>) -> Checked {
    let mut row = Checked {
        bucket: c.bucket.clone(),
        key: c.key.clone(),
        conversion_version: c.output_version.clone(),
        original_version: c.original_version.clone(),
        verdict: Verdict::Verified,
        reason: String::new(),
        storage_class: None,
        requests: 0,
    };
    match check_inner(s3, c, class, &mut row).await {
        Ok((verdict, reason)) => {
            row.verdict = verdict;
            row.reason = reason;
        }
        Err(reason) => {
            row.verdict = Verdict::Error;
            row.reason = reason;
        }
    }
    row
}

async fn check_inner(
    s3: &Client,
    c: &Conversion,
    class: Option<&str>,
    row: &mut Checked,
) -> Result<(Verdict, String), String> {
    let bucket = c.bucket.as_str();
    row.requests += 1;
    let current = head(s3, bucket, &c.output_key, None).await;
    let current = match current {
        Ok(s) => Some(s),
        Err(e) if not_found(&e) => None,
        Err(e) => {
            return Err(sdk_reason(
                &format!("reading {} (HeadObject)", c.output_key),
                &e,
            ));
        }
    };
    let holds_conversion = current.as_ref().is_some_and(|s| {
        c.output_version.is_none() || s.version.as_deref() == c.output_version.as_deref()
    });
    let conv = if holds_conversion {
        current.as_ref().map(|s| Seen {
            version: s.version.clone(),
            etag: s.etag.clone(),
            size: s.size,
            metadata: s.metadata.clone(),
            storage_class: s.storage_class.clone(),
            sse: s.sse.clone(),
            kms_key: s.kms_key.clone(),
        })
    } else {
        row.requests += 1;
        match head(s3, bucket, &c.output_key, c.output_version.as_deref()).await {
            Ok(s) => Some(s),
            Err(e) if not_found(&e) => None,
            Err(e) => {
                return Err(sdk_reason(
                    &format!("reading the conversion {} (HeadObject)", c.output_key),
                    &e,
                ));
            }
        }
    };
    let Some(conv) = conv else {
        return Ok((
            Verdict::Mismatch,
            format!(
                "the conversion (version {}) no longer exists",
                c.output_version.as_deref().unwrap_or("current")
            ),
        ));
    };
    let Some(mark) = conv.metadata.get(MARK_METADATA) else {
        return Ok((
            Verdict::Mismatch,
            format!("the object at the conversion's version carries no {MARK_METADATA} metadata"),
        ));
    };
    let conv_class = conv
        .storage_class
        .clone()
        .unwrap_or_else(|| "STANDARD".to_string());
    row.storage_class = Some(conv_class.clone());
    let original_version = conv
        .metadata
        .get("original-version-id")
        .cloned()
        .or_else(|| c.original_version.clone());
    row.original_version = original_version.clone();
    if c.in_place() && original_version.is_none() {
        return Ok((
            Verdict::Mismatch,
            "converted in place but no original version is recorded: nothing to compare".into(),
        ));
    }
    row.requests += 1;
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(&c.key)
        .set_version_id(original_version.clone())
        .send()
        .await;
    let original = match got {
        Ok(o) => o,
        Err(e) if not_found(&e) => {
            return Ok((
                Verdict::OriginalExpired,
                format!(
                    "the original version {} no longer exists (expired by a lifecycle rule, or deleted)",
                    original_version.as_deref().unwrap_or("(current)")
                ),
            ));
        }
        Err(e) => {
            return Err(sdk_reason(
                &format!("reading the original {} (GetObject)", c.key),
                &e,
            ));
        }
    };
    let orig_etag = original
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    let orig_size = original.content_length().unwrap_or_default();
    let orig_meta: BTreeMap<String, String> = original
        .metadata()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    let orig_tags = original.tag_count().unwrap_or(0);
    let orig_sse = original
        .server_side_encryption()
        .map(|s| s.as_str().to_string());
    let orig_kms = original.ssekms_key_id().map(str::to_string);
    let mut problems = Vec::new();
    let recorded = |name: &str| conv.metadata.get(name).map(String::as_str);
    if let Some(e) = recorded("original-etag")
        && e != orig_etag
    {
        problems.push(format!(
            "the conversion names the original's ETag {e}, the original version has {orig_etag}"
        ));
    }
    if let Some(n) = recorded("original-size")
        && n != orig_size.to_string()
    {
        problems.push(format!(
            "the conversion names an original of {n} bytes, the original version has {orig_size}"
        ));
    }
    for (k, v) in &orig_meta {
        if conv.metadata.get(k) != Some(v) {
            problems.push(format!("user metadata {k}={v:?} was not carried over"));
        }
    }
    if orig_sse
        .as_deref()
        .is_some_and(|s| s.starts_with("aws:kms"))
        && (conv.sse != orig_sse || conv.kms_key != orig_kms)
    {
        problems.push(format!(
            "the original is encrypted with {} (key {}), the conversion with {} (key {})",
            orig_sse.as_deref().unwrap_or("-"),
            orig_kms.as_deref().unwrap_or("-"),
            conv.sse.as_deref().unwrap_or("none"),
            conv.kms_key.as_deref().unwrap_or("-")
        ));
    }
    if let Some(want) = class
        && !want.eq_ignore_ascii_case(&conv_class)
    {
        problems.push(format!(
            "the conversion is in {conv_class}, the job asked for {want}"
        ));
    }
    let words: Vec<&str> = mark.split(' ').collect();
    let spooled = words
        .get(1)
        .map_or(c.spooled, |w| spooled_of(w, words.get(3).copied()));
    let options = words
        .get(1..3)
        .and_then(|w| {
            Some(Options {
                codec: if spooled.is_some() {
                    Options::default().codec
                } else {
                    w[0].parse().ok()?
                },
                downmix: w[1].parse().ok()?,
            })
        })
        .unwrap_or(c.options);
    let (want_md5, want_len, seconds) =
        reconvert(original.body, options, spooled, orig_size.max(0) as u64).await?;
    if want_len != conv.size.max(0) as u64 {
        problems.push(format!(
            "the conversion has {} bytes; converting the original again gives {want_len}",
            conv.size
        ));
    }
    let have_md5 = if is_md5(&conv.etag)
        && !conv
            .sse
            .as_deref()
            .is_some_and(|s| s.starts_with("aws:kms"))
    {
        conv.etag.clone()
    } else {
        row.requests += 1;
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&c.output_key)
            .set_version_id(conv.version.clone())
            .send()
            .await
            .map_err(|e| {
                sdk_reason(
                    &format!("reading the conversion {} (GetObject)", c.output_key),
                    &e,
                )
            })?
            .body;
        md5_of(body).await?.0
    };
    if problems.is_empty() && have_md5 != want_md5 {
        problems.push(format!(
            "the conversion's bytes differ from converting the original again (MD5 {have_md5}, expected {want_md5})"
        ));
    }
    if let Some(d) = recorded(DURATION_METADATA).and_then(|d| d.parse::<f64>().ok())
        && (d - seconds).abs() > 0.0015
    {
        problems.push(format!(
            "the conversion says {d:.3} s of audio, the original holds {seconds:.3} s"
        ));
    }
    if (c.duration_seconds - seconds).abs() > 0.0015 {
        problems.push(format!(
            "the report says {:.3} s of audio, the original holds {seconds:.3} s",
            c.duration_seconds
        ));
    }
    if orig_tags > 0 {
        row.requests += 2;
        let want = tags(s3, bucket, &c.key, original_version.as_deref()).await?;
        let have = tags(s3, bucket, &c.output_key, conv.version.as_deref()).await?;
        for (k, v) in &want {
            if have.get(k) != Some(v) {
                problems.push(format!("tag {k}={v:?} was not carried over"));
            }
        }
    }
    if !problems.is_empty() {
        return Ok((Verdict::Mismatch, problems.join("; ")));
    }
    if c.in_place() && !holds_conversion {
        return Ok(match &current {
            Some(now) if now.etag == orig_etag && !now.metadata.contains_key(MARK_METADATA) => (
                Verdict::RolledBack,
                format!(
                    "the key holds the original again (version {}); the conversion is kept as version {}",
                    now.version.as_deref().unwrap_or("-"),
                    conv.version.as_deref().unwrap_or("-")
                ),
            ),
            Some(now) => (
                Verdict::Verified,
                format!(
                    "the conversion is intact, but the key was written since (current version {})",
                    now.version.as_deref().unwrap_or("-")
                ),
            ),
            None => (
                Verdict::Verified,
                "the conversion is intact, but the key was deleted since".into(),
            ),
        });
    }
    Ok((Verdict::Verified, String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, version: &str, failed: bool, message: &str) -> ReportRow {
        ReportRow {
            bucket: "calls".into(),
            raw_key: batch_contract::key::encode_key(key),
            version_id: version.into(),
            status: if failed { "failed" } else { "succeeded" }.into(),
            http_status: Some(if failed { 500 } else { 200 }),
            error_code: if failed {
                "PermanentFailure".into()
            } else {
                String::new()
            },
            message: message.into(),
        }
    }

    #[test]
    fn only_converted_tasks_are_checked_with_what_they_recorded() {
        let mut s = Summary::skipped("already converted", 10);
        let skipped = s.to_result_string();
        s.action = Action::Converted;
        s.reason = None;
        s.output_key = "a b+c.wav".into();
        s.output_version_id = Some("v2".into());
        s.codec = Some("ulaw".into());
        s.downmix = Some("left".into());
        s.duration_seconds = 1.5;
        let converted = s.to_result_string();
        s.output_key = "converted/x.wav".into();
        let elsewhere = s.to_result_string();
        let rows = [
            row("a b+c.wav", "v1", false, &converted),
            row("skip.wav", "", false, &skipped),
            row("bad.wav", "", true, "PermanentFailure: not a WAV file"),
            row("x.wav", "", false, &elsewhere),
        ];
        let all = conversions(&rows);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].key, "a b+c.wav");
        assert!(all[0].in_place());
        assert_eq!(all[0].original_version.as_deref(), Some("v1"));
        assert_eq!(all[0].output_version.as_deref(), Some("v2"));
        assert_eq!(all[0].options.codec.name(), "mulaw");
        assert_eq!(all[0].options.downmix.name(), "left");
        assert!(!all[1].in_place());
        assert_eq!(all[1].original_version, None);
        let picked = sample(all.clone(), Some(1), 7);
        assert_eq!(picked.len(), 1);
        assert_eq!(
            sample(all.clone(), Some(1), 7)[0].key,
            picked[0].key,
            "a seed repeats"
        );
        assert_eq!(sample(all, None, 7).len(), 2);
    }
}
