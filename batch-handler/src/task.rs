//! One object against S3: read → decide → transcode → conditional write, as few requests as it takes.
//!
//! Requests per converted object: GetObject, GetObjectTagging only when the object has tags
//! (their count comes with the GET), and one streaming PutObject. The GET response carries what
//! a HEAD would (size, ETag, version, metadata, encryption, tag count), so there is no HEAD; a
//! skipped object costs its GET (the body is dropped unread) and nothing else. The bucket's
//! versioning status is asked once per bucket and cached.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ServerSideEncryption, Tag};
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::outcome::{Outcome, Summary, classify};
use crate::settings::{Settings, Target};
use crate::transcode::{Plan, TranscodeError, Transcoder};
use crate::upload::{BodySender, ChannelBody};
use batch_contract::event::Task;

/// Metadata key that marks objects this tool wrote, so a rerun skips them even without the tag.
pub const MARK_METADATA: &str = "transcoded-by";

/// Output is sent to the upload in pieces of about this size.
const SEND_CHUNK: usize = 256 * 1024;
/// Pieces buffered between the converter and the upload: bounds memory per task.
const CHANNEL_DEPTH: usize = 4;
/// How long a bucket's versioning status is trusted.
const VERSIONING_TTL: Duration = Duration::from_secs(300);
/// S3's limit on tags per object.
const MAX_TAGS: usize = 10;

/// Async callback run just before the write; tests use it to change the object under the task.
pub type BeforeWrite = Arc<dyn Fn(Task) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Fault-injection points; empty in production.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Runs after the object was read and its header parsed, before the PUT starts.
    pub before_write: Option<BeforeWrite>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("before_write", &self.before_write.is_some())
            .finish()
    }
}

/// Per-bucket versioning status, shared by the tasks of a warm Lambda instance.
#[derive(Debug, Default)]
pub struct VersioningCache {
    seen: Mutex<HashMap<String, (bool, Instant)>>,
    /// Held while a status is fetched, so the tasks of one invocation that start together make
    /// one GetBucketVersioning between them instead of one each.
    fetching: tokio::sync::Mutex<()>,
}

impl VersioningCache {
    fn cached(&self, bucket: &str) -> Option<bool> {
        match self.seen.lock().expect("cache lock").get(bucket) {
            Some((on, at)) if at.elapsed() < VERSIONING_TTL => Some(*on),
            _ => None,
        }
    }

    /// Whether versioning is Enabled on `bucket` (Suspended and never-enabled are not).
    pub async fn is_enabled(&self, s3: &Client, bucket: &str) -> Result<bool, Outcome> {
        if let Some(on) = self.cached(bucket) {
            return Ok(on);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(on) = self.cached(bucket) {
            return Ok(on);
        }
        let on = crate::client::bucket_versioning(s3, bucket)
            .await
            .map_err(|e| classify(&format!("checking versioning of bucket {bucket}"), &e))?
            == crate::client::Versioning::Enabled;
        self.seen
            .lock()
            .expect("cache lock")
            .insert(bucket.to_string(), (on, Instant::now()));
        Ok(on)
    }
}

/// What every task of a process shares.
#[derive(Debug)]
pub struct Context {
    /// S3 client (its own connection pool).
    pub s3: Client,
    /// Versioning status per bucket.
    pub versioning: VersioningCache,
    /// Fault injection.
    pub hooks: Hooks,
}

impl Context {
    /// A context for `s3` without hooks.
    pub fn new(s3: Client) -> Self {
        Context {
            s3,
            versioning: VersioningCache::default(),
            hooks: Hooks::default(),
        }
    }
}

const TAG_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn tagging_header(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, TAG_ENCODE_SET),
                utf8_percent_encode(v, TAG_ENCODE_SET)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn s3_url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// Converts one object; every error ends as an [`Outcome`], nothing propagates.
pub async fn run(ctx: &Context, settings: &Settings, task: &Task) -> Outcome {
    let started = Instant::now();
    match convert(ctx, settings, task).await {
        Ok(mut summary) => {
            summary.elapsed_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
            Outcome::Done(summary)
        }
        Err(outcome) => outcome,
    }
}

async fn convert(ctx: &Context, settings: &Settings, task: &Task) -> Result<Summary, Outcome> {
    let (out_bucket, out_key) = match &settings.target {
        Target::InPlace => (task.bucket.clone(), task.key.clone()),
        Target::Destination { bucket, prefix } => (
            bucket.clone().unwrap_or_else(|| task.bucket.clone()),
            format!("{prefix}{}", task.key),
        ),
    };
    let in_place = out_bucket == task.bucket && out_key == task.key;
    if out_key.len() > 1024 {
        return Err(Outcome::Permanent(format!(
            "output key would be {} bytes; S3 keys are at most 1024",
            out_key.len()
        )));
    }
    if in_place
        && !settings.allow_unversioned_overwrite
        && !ctx.versioning.is_enabled(&ctx.s3, &task.bucket).await?
    {
        return Err(Outcome::Permanent(format!(
            "bucket {} is not versioned: replacing in place would destroy the original; enable versioning, \
             set DEST_BUCKET/DEST_PREFIX, or set ALLOW_UNVERSIONED_OVERWRITE=true",
            task.bucket
        )));
    }

    // 1. Read (pinned to the task's version when it has one). The response headers are our HEAD.
    let mut get = ctx.s3.get_object().bucket(&task.bucket).key(&task.key);
    if let Some(v) = &task.version_id {
        get = get.version_id(v);
    }
    let obj = get
        .send()
        .await
        .map_err(|e| classify("reading the object", &e))?;
    let size = obj.content_length().unwrap_or(0).max(0) as u64;
    let etag = obj.e_tag().map(str::to_string);
    let version_read = obj.version_id().map(str::to_string);
    if let Some(by) = obj.metadata().and_then(|m| m.get(MARK_METADATA)) {
        return Ok(Summary::skipped(
            format!("already converted (metadata {MARK_METADATA}={by})"),
            size,
        ));
    }

    // 2. Tags: only fetched when there are some; ours means "already converted".
    let mut tags: Vec<(String, String)> = Vec::new();
    if obj.tag_count().unwrap_or(0) > 0 {
        let mut req = ctx
            .s3
            .get_object_tagging()
            .bucket(&task.bucket)
            .key(&task.key);
        if let Some(v) = version_read.as_ref().or(task.version_id.as_ref()) {
            req = req.version_id(v);
        }
        let out = req
            .send()
            .await
            .map_err(|e| classify("reading the object's tags", &e))?;
        tags = out
            .tag_set()
            .iter()
            .map(|t: &Tag| (t.key().to_string(), t.value().to_string()))
            .collect();
    }
    if tags
        .iter()
        .any(|(k, v)| *k == settings.tag_key && *v == settings.tag_value)
    {
        return Ok(Summary::skipped(
            format!(
                "already converted (tag {}={})",
                settings.tag_key, settings.tag_value
            ),
            size,
        ));
    }
    tags.retain(|(k, _)| *k != settings.tag_key);
    if tags.len() >= MAX_TAGS {
        return Err(Outcome::Permanent(format!(
            "object has {MAX_TAGS} tags: no room for the tag {}={}",
            settings.tag_key, settings.tag_value
        )));
    }
    tags.push((settings.tag_key.clone(), settings.tag_value.clone()));

    // 3. Read up to the first audio byte: then the output length is known.
    let mut body = obj.body;
    let mut transcoder = Transcoder::new(settings.options, size);
    let mut out = Vec::with_capacity(SEND_CHUNK * 2);
    let plan = loop {
        match body.next().await {
            Some(Ok(bytes)) => match transcoder.feed(&bytes, &mut out) {
                Ok(Some(plan)) => break plan,
                Ok(None) => {}
                Err(TranscodeError::AlreadyEncoded { codec, format }) => {
                    return Ok(Summary {
                        codec: Some(codec.name().into()),
                        input_format: Some(format.clone()),
                        ..Summary::skipped(format!("already {} ({format})", codec.name()), size)
                    });
                }
                Err(e) => return Err(Outcome::from_transcode(&e)),
            },
            Some(Err(e)) => return Err(Outcome::Temporary(format!("reading the object: {e}"))),
            None => {
                let err = transcoder
                    .finish()
                    .expect_err("no plan, so the header is incomplete");
                return Err(Outcome::from_transcode(&err));
            }
        }
    };

    if let Some(hook) = &ctx.hooks.before_write {
        hook(task.clone()).await;
    }

    // 4. One streaming PUT of exactly plan.output_len bytes, conditional on what was read.
    let mut metadata = obj.metadata.clone().unwrap_or_default();
    metadata.insert("original-format".into(), plan.input.format.describe());
    metadata.insert("original-size".into(), size.to_string());
    if let Some(e) = &etag {
        metadata.insert("original-etag".into(), e.trim_matches('"').to_string());
    }
    if let Some(v) = &version_read {
        metadata.insert("original-version-id".into(), v.clone());
    }
    metadata.insert(
        MARK_METADATA.into(),
        format!(
            "{}/{} {} {}",
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            plan.options.codec.name(),
            plan.options.downmix.name()
        ),
    );
    let (tx, channel_body) = ChannelBody::new(plan.output_len, CHANNEL_DEPTH);
    let mut put = ctx
        .s3
        .put_object()
        .bucket(&out_bucket)
        .key(&out_key)
        .body(ByteStream::from_body_1_x(channel_body))
        .content_length(plan.output_len as i64)
        .content_type("audio/wav")
        .storage_class(settings.storage_class.clone())
        .set_metadata(Some(metadata))
        .tagging(tagging_header(&tags))
        .set_cache_control(obj.cache_control.clone())
        .set_content_disposition(obj.content_disposition.clone())
        .set_content_language(obj.content_language.clone());
    if let Some(sse @ (ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)) =
        &obj.server_side_encryption
    {
        put = put
            .server_side_encryption(sse.clone())
            .set_ssekms_key_id(obj.ssekms_key_id.clone())
            .set_bucket_key_enabled(obj.bucket_key_enabled);
    }
    put = if in_place {
        let Some(etag) = &etag else {
            return Err(Outcome::Permanent(
                "the object has no ETag: it cannot be replaced conditionally".into(),
            ));
        };
        put.if_match(etag)
    } else {
        put.if_none_match("*")
    };

    let (pumped, written) = tokio::join!(pump(body, transcoder, out, tx), put.send());
    let where_to = s3_url(&out_bucket, &out_key);
    let written = match (pumped, written) {
        (Err(PumpError::Failed(outcome)), _) => return Err(outcome),
        (_, Err(e)) => {
            let precondition_failed = e.raw_response().map(|r| r.status().as_u16()) == Some(412);
            if precondition_failed && !in_place {
                return Ok(Summary::skipped(
                    format!("already converted (destination {where_to} exists)"),
                    size,
                ));
            }
            if precondition_failed && let Some(pinned) = &task.version_id {
                // A task pinned to an older version would meet 412 on every redrive: say so once.
                if let Some(current) = current_version(ctx, task).await.filter(|c| c != pinned) {
                    return Err(Outcome::Permanent(format!(
                        "version {pinned} is no longer the current version ({current} is); \
                         not converted, nothing overwritten"
                    )));
                }
            }
            return Err(classify(&format!("writing {where_to}"), &e));
        }
        (Err(PumpError::UploadGone), Ok(_)) => {
            return Err(Outcome::Temporary(format!(
                "writing {where_to}: upload ended before the body was sent"
            )));
        }
        (Ok(crc), Ok(written)) => {
            // The server checked the CRC32 trailer the SDK sent; confirm it stored what we produced.
            if let Some(stored) = written.checksum_crc32() {
                let ours = aws_smithy_types::base64::encode(crc.to_be_bytes());
                if stored != ours {
                    return Err(Outcome::Permanent(format!(
                        "writing {where_to}: stored CRC32 {stored} differs from the converted audio's {ours}; \
                         the previous version is intact"
                    )));
                }
            }
            written
        }
    };

    Ok(Summary {
        action: crate::outcome::Action::Converted,
        reason: None,
        bytes_in: size,
        bytes_out: plan.output_len,
        duration_seconds: (plan.seconds() * 1000.0).round() / 1000.0,
        elapsed_seconds: 0.0,
        output_key: out_key,
        output_version_id: written.version_id().map(str::to_string),
        codec: Some(plan.options.codec.name().into()),
        downmix: Some(plan.options.downmix.name().into()),
        input_format: Some(plan.input.format.describe()),
        dropped_bytes: plan.input.partial_frame_bytes(),
        missing_bytes: plan.input.missing_bytes(),
    })
}

/// The current version id of the task's key (one HEAD, only after a conditional write failed).
async fn current_version(ctx: &Context, task: &Task) -> Option<String> {
    let head = ctx
        .s3
        .head_object()
        .bucket(&task.bucket)
        .key(&task.key)
        .send()
        .await
        .ok()?;
    head.version_id().map(str::to_string)
}

enum PumpError {
    /// The conversion or the read failed: this is the task's outcome.
    Failed(Outcome),
    /// The upload stopped taking data: its own error is the outcome.
    UploadGone,
}

async fn send(
    tx: &BodySender,
    out: &mut Vec<u8>,
    crc: &mut crc32fast::Hasher,
) -> Result<(), PumpError> {
    crc.update(out);
    let piece = Bytes::from(std::mem::replace(out, Vec::with_capacity(SEND_CHUNK * 2)));
    tx.send(Ok(piece)).await.map_err(|_| PumpError::UploadGone)
}

/// Moves the rest of the object through the transcoder into the upload; returns the output's CRC32.
async fn pump(
    mut body: ByteStream,
    mut transcoder: Transcoder,
    mut out: Vec<u8>,
    tx: BodySender,
) -> Result<u32, PumpError> {
    let mut crc = crc32fast::Hasher::new();
    let fail = |tx: &BodySender, outcome: Outcome| {
        // Make the upload fail too, so nothing is committed.
        let _ = tx.try_send(Err("conversion failed".into()));
        PumpError::Failed(outcome)
    };
    loop {
        if out.len() >= SEND_CHUNK {
            send(&tx, &mut out, &mut crc).await?;
        }
        match body.next().await {
            Some(Ok(bytes)) => {
                if let Err(e) = transcoder.feed(&bytes, &mut out) {
                    return Err(fail(&tx, Outcome::from_transcode(&e)));
                }
            }
            Some(Err(e)) => {
                return Err(fail(
                    &tx,
                    Outcome::Temporary(format!("reading the object: {e}")),
                ));
            }
            None => break,
        }
    }
    let _plan: Plan = transcoder
        .finish()
        .map_err(|e| fail(&tx, Outcome::from_transcode(&e)))?;
    if !out.is_empty() {
        send(&tx, &mut out, &mut crc).await?;
    }
    Ok(crc.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_header_is_url_encoded() {
        let tags = vec![
            ("converted".to_string(), "true".to_string()),
            ("team a".to_string(), "x&y=z/ü".to_string()),
        ];
        assert_eq!(
            tagging_header(&tags),
            "converted=true&team%20a=x%26y%3Dz%2F%C3%BC"
        );
    }
}
