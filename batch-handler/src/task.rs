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
use crate::settings::{Encoding, Settings, Target};
use crate::transcode::{Plan, TranscodeError, Transcoder};
use crate::upload::{BodySender, ChannelBody};
use batch_contract::event::Task;

/// Metadata key that marks objects this tool wrote, so a rerun skips them even without the tag.
pub const MARK_METADATA: &str = "transcoded-by";
/// Metadata naming the job and task that wrote a conversion (`<job id>/<task id>`).
pub const TASK_METADATA: &str = "converted-by-task";
/// Metadata with the audio's duration in seconds, so a recognised conversion reports it.
pub const DURATION_METADATA: &str = "audio-seconds";

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

/// Converts one object; every error ends as an [`Outcome`], nothing propagates. `job_id` and the
/// task's id are stamped on the conversion, so that a retry of this task (after a write whose
/// answer was lost, a deadline, a crash) recognises its own earlier work and says so.
pub async fn run(ctx: &Context, settings: &Settings, task: &Task, job_id: &str) -> Outcome {
    let started = Instant::now();
    let marker = format!("{job_id}/{}", task.task_id);
    match convert(ctx, settings, task, &marker).await {
        Ok(mut summary) | Err(Outcome::Done(mut summary)) => {
            summary.elapsed_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
            Outcome::Done(summary)
        }
        Err(outcome) => outcome,
    }
}

/// Where the conversion goes.
struct Output {
    bucket: String,
    key: String,
    /// Replacing the original (else a new object under a destination prefix or bucket).
    in_place: bool,
}

impl Output {
    fn url(&self) -> String {
        s3_url(&self.bucket, &self.key)
    }
}

/// What the GET of the original told us, beside its body.
struct Original {
    size: u64,
    etag: Option<String>,
    version: Option<String>,
    metadata: HashMap<String, String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    sse: Option<ServerSideEncryption>,
    kms_key: Option<String>,
    bucket_key: Option<bool>,
    tag_count: i32,
}

async fn convert(
    ctx: &Context,
    settings: &Settings,
    task: &Task,
    marker: &str,
) -> Result<Summary, Outcome> {
    let output = output_of(ctx, settings, task).await?;
    // 1. Read (pinned to the task's version when it has one). The response headers are our HEAD.
    let (original, body) = read_original(ctx, task).await?;
    if let Some(done) = already_marked(&original, &output, task, marker) {
        return Ok(done);
    }
    // 2. Tags: only fetched when there are some; ours means "already converted".
    let tags = match carried_tags(ctx, settings, task, &original).await? {
        Carried::Tags(tags) => tags,
        Carried::Converted(skip) => return Ok(skip),
    };
    // 3. G.711 from 8 kHz: read up to the first audio byte, then the output length is known and
    //    it streams. FLAC, Opus and G.711 from another rate go through the spool.
    let planned = if settings.encoding == Encoding::G711 {
        read_plan(body, settings, original.size).await?
    } else {
        Planned::Spool(Vec::new(), body)
    };
    let (plan, body, transcoder, first) = match planned {
        Planned::Plan(p) => *p,
        Planned::Skip(skip) => return Ok(skip),
        Planned::Spool(read, body) => {
            let spooled = settings.encoding.spooled(settings.options.codec);
            return convert_spooled(
                ctx,
                settings,
                task,
                marker,
                (output, original),
                (read, body),
                &tags,
                spooled,
            )
            .await;
        }
    };
    if let Some(hook) = &ctx.hooks.before_write {
        hook(task.clone()).await;
    }
    // 4. One streaming PUT of exactly plan.output_len bytes, conditional on what was read.
    if output.in_place && original.etag.is_none() {
        return Err(Outcome::Permanent(
            "the object has no ETag: it cannot be replaced conditionally".into(),
        ));
    }
    let (tx, channel_body) = ChannelBody::new(plan.output_len, CHANNEL_DEPTH);
    let shape = Shape {
        input_format: plan.input.format.describe(),
        codec: plan.options.codec.name(),
        downmix: plan.options.downmix.name(),
        seconds: plan.seconds(),
        len: plan.output_len,
        content_type: Encoding::G711.content_type(),
        bitrate: None,
    };
    let put = build_put(
        ctx,
        settings,
        &output,
        &original,
        &shape,
        &tags,
        marker,
        ByteStream::from_body_1_x(channel_body),
    );
    let (pumped, written) =
        tokio::join!(pump(body, transcoder, first, tx, original.size), put.send());
    // 5. What the write means.
    let written = interpret_write(ctx, task, &output, &original, marker, pumped, written).await?;
    Ok(Summary {
        action: crate::outcome::Action::Converted,
        reason: None,
        bytes_in: original.size,
        bytes_out: plan.output_len,
        duration_seconds: (plan.seconds() * 1000.0).round() / 1000.0,
        elapsed_seconds: 0.0,
        output_key: output.key,
        output_version_id: written.version_id().map(str::to_string),
        codec: Some(plan.options.codec.name().into()),
        downmix: Some(plan.options.downmix.name().into()),
        input_format: Some(plan.input.format.describe()),
        dropped_bytes: plan.input.partial_frame_bytes(),
        missing_bytes: plan.input.missing_bytes(),
    })
}

/// The output's place, refused when it would destroy the original or cannot exist.
async fn output_of(ctx: &Context, settings: &Settings, task: &Task) -> Result<Output, Outcome> {
    let (bucket, key) = match &settings.target {
        Target::InPlace => (task.bucket.clone(), task.key.clone()),
        Target::Destination { bucket, prefix } => (
            bucket.clone().unwrap_or_else(|| task.bucket.clone()),
            format!(
                "{prefix}{}",
                with_suffix(&task.key, settings.output_suffix.as_deref())
            ),
        ),
    };
    let in_place = bucket == task.bucket && key == task.key;
    if key.len() > 1024 {
        return Err(Outcome::Permanent(format!(
            "output key would be {} bytes; S3 keys are at most 1024",
            key.len()
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
    Ok(Output {
        bucket,
        key,
        in_place,
    })
}

/// `key` with its extension (after the last `.` of the last path segment) replaced by `suffix`,
/// or `suffix` appended when it has none.
fn with_suffix(key: &str, suffix: Option<&str>) -> String {
    let Some(suffix) = suffix else {
        return key.to_string();
    };
    let name_start = key.rfind('/').map_or(0, |i| i + 1);
    match key[name_start..].rfind('.') {
        Some(dot) if dot > 0 => format!("{}{suffix}", &key[..name_start + dot]),
        _ => format!("{key}{suffix}"),
    }
}

async fn read_original(ctx: &Context, task: &Task) -> Result<(Original, ByteStream), Outcome> {
    let mut get = ctx.s3.get_object().bucket(&task.bucket).key(&task.key);
    if let Some(v) = &task.version_id {
        get = get.version_id(v);
    }
    let obj = get
        .send()
        .await
        .map_err(|e| classify("reading the object (GetObject)", &e))?;
    let original = Original {
        size: obj.content_length().unwrap_or(0).max(0) as u64,
        etag: obj.e_tag().map(str::to_string),
        version: obj.version_id().map(str::to_string),
        metadata: obj.metadata.clone().unwrap_or_default(),
        cache_control: obj.cache_control.clone(),
        content_disposition: obj.content_disposition.clone(),
        content_language: obj.content_language.clone(),
        sse: obj.server_side_encryption.clone(),
        kms_key: obj.ssekms_key_id.clone(),
        bucket_key: obj.bucket_key_enabled,
        tag_count: obj.tag_count().unwrap_or(0),
    };
    Ok((original, obj.body))
}

/// An object that is already a conversion: this very task's (its answer was lost), or not.
fn already_marked(
    original: &Original,
    output: &Output,
    task: &Task,
    marker: &str,
) -> Option<Summary> {
    let by = original.metadata.get(MARK_METADATA)?;
    // Unpinned and in place, a retry reads its own conversion back: it is this task's if the
    // conversion names this task.
    if output.in_place
        && task.version_id.is_none()
        && original.metadata.get(TASK_METADATA).map(String::as_str) == Some(marker)
    {
        return Some(earlier_attempt(
            &original.metadata,
            original.size,
            output,
            original.version.clone(),
        ));
    }
    Some(Summary::skipped(
        format!("already converted (metadata {MARK_METADATA}={by})"),
        original.size,
    ))
}

enum Carried {
    /// The original's tags plus ours, for the conversion.
    Tags(Vec<(String, String)>),
    /// The original carries our tag: nothing to do.
    Converted(Summary),
}

async fn carried_tags(
    ctx: &Context,
    settings: &Settings,
    task: &Task,
    original: &Original,
) -> Result<Carried, Outcome> {
    let mut tags: Vec<(String, String)> = Vec::new();
    if original.tag_count > 0 {
        let mut req = ctx
            .s3
            .get_object_tagging()
            .bucket(&task.bucket)
            .key(&task.key);
        if let Some(v) = original.version.as_ref().or(task.version_id.as_ref()) {
            req = req.version_id(v);
        }
        let out = req
            .send()
            .await
            .map_err(|e| classify("reading the object's tags (GetObjectTagging)", &e))?;
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
        return Ok(Carried::Converted(Summary::skipped(
            format!(
                "already converted (tag {}={})",
                settings.tag_key, settings.tag_value
            ),
            original.size,
        )));
    }
    tags.retain(|(k, _)| *k != settings.tag_key);
    if tags.len() >= MAX_TAGS {
        return Err(Outcome::Permanent(format!(
            "object has {MAX_TAGS} tags: no room for the tag {}={}",
            settings.tag_key, settings.tag_value
        )));
    }
    tags.push((settings.tag_key.clone(), settings.tag_value.clone()));
    Ok(Carried::Tags(tags))
}

/// The plan, with the rest of the body, the transcoder and the first output bytes.
type PlanAndRest = (Plan, ByteStream, Transcoder, Vec<u8>);

enum Planned {
    Plan(Box<PlanAndRest>),
    /// Already G.711: nothing to do.
    Skip(Summary),
    /// Through the spool (not G.711, or not 8 kHz): what was read so far (the header and a
    /// little audio), and the rest.
    Spool(Vec<bytes::Bytes>, ByteStream),
}

async fn read_plan(
    mut body: ByteStream,
    settings: &Settings,
    size: u64,
) -> Result<Planned, Outcome> {
    let mut transcoder = Transcoder::new(settings.options, size);
    let mut out = Vec::with_capacity(SEND_CHUNK * 2);
    let mut received = 0u64;
    // Kept until the header is read (a WAV header is a few hundred bytes; the pieces held are
    // the header's and the one holding the first audio byte).
    let mut read = Vec::new();
    loop {
        match body.next().await {
            Some(Ok(bytes)) => {
                if received == 0
                    && let Some(skip) = already_compressed(&bytes, size)
                {
                    return Ok(Planned::Skip(skip));
                }
                received += bytes.len() as u64;
                read.push(bytes.clone());
                match transcoder.feed(&bytes, &mut out) {
                    Ok(Some(plan)) => {
                        return Ok(Planned::Plan(Box::new((plan, body, transcoder, out))));
                    }
                    Ok(None) => {}
                    Err(TranscodeError::AlreadyEncoded { codec, format }) => {
                        return Ok(Planned::Skip(already_g711(codec, &format, size)));
                    }
                    Err(TranscodeError::NeedsResampling { .. }) => {
                        return Ok(Planned::Spool(read, body));
                    }
                    Err(e) => return Err(Outcome::from_transcode(&e)),
                }
            }
            Some(Err(e)) => return Err(body_cut(&e, received, size)),
            None => {
                let err = transcoder
                    .finish()
                    .expect_err("no plan, so the header is incomplete");
                return Err(Outcome::from_transcode(&err));
            }
        }
    }
}

/// A body that stopped before its end: which call, how far it got, and the error's chain.
fn body_cut(e: &(dyn std::error::Error + 'static), received: u64, size: u64) -> Outcome {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    Outcome::Temporary(format!(
        "reading the object (GetObject body): cut after {received} of {size} bytes: {chain}"
    ))
}

/// What is written, for the PUT's headers and metadata.
struct Shape {
    input_format: String,
    codec: &'static str,
    downmix: &'static str,
    seconds: f64,
    len: u64,
    content_type: &'static str,
    /// Opus bit rate per channel (in the mark, so that `verify` encodes the same way).
    bitrate: Option<u32>,
}

#[allow(clippy::too_many_arguments)]
fn build_put(
    ctx: &Context,
    settings: &Settings,
    output: &Output,
    original: &Original,
    shape: &Shape,
    tags: &[(String, String)],
    marker: &str,
    body: ByteStream,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    let mut metadata = original.metadata.clone();
    metadata.insert("original-format".into(), shape.input_format.clone());
    metadata.insert("original-size".into(), original.size.to_string());
    if let Some(e) = &original.etag {
        metadata.insert("original-etag".into(), e.trim_matches('"').to_string());
    }
    if let Some(v) = &original.version {
        metadata.insert("original-version-id".into(), v.clone());
    }
    metadata.insert(
        MARK_METADATA.into(),
        format!(
            "{}/{} {} {}{}",
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            shape.codec,
            shape.downmix,
            shape.bitrate.map_or(String::new(), |b| format!(" {b}bps"))
        ),
    );
    metadata.insert(TASK_METADATA.into(), marker_header(marker));
    metadata.insert(DURATION_METADATA.into(), format!("{:.3}", shape.seconds));
    let mut put = ctx
        .s3
        .put_object()
        .bucket(&output.bucket)
        .key(&output.key)
        .body(body)
        .content_length(shape.len as i64)
        .content_type(shape.content_type)
        .storage_class(settings.storage_class.clone())
        .set_metadata(Some(metadata))
        .tagging(tagging_header(tags))
        .set_cache_control(original.cache_control.clone())
        .set_content_disposition(original.content_disposition.clone())
        .set_content_language(original.content_language.clone());
    if let Some(sse @ (ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)) =
        &original.sse
    {
        put = put
            .server_side_encryption(sse.clone())
            .set_ssekms_key_id(original.kms_key.clone())
            .set_bucket_key_enabled(original.bucket_key);
    }
    match (&original.etag, output.in_place) {
        (Some(etag), true) => put.if_match(etag),
        // Refused before the PUT is built (see `convert`).
        (None, true) => put,
        (_, false) => put.if_none_match("*"),
    }
}

/// A marker as it can travel in a metadata header (printable ASCII; task ids are base64 or hex).
fn marker_header(marker: &str) -> String {
    marker
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(256)
        .collect()
}

async fn interpret_write(
    ctx: &Context,
    task: &Task,
    output: &Output,
    original: &Original,
    marker: &str,
    pumped: Result<u32, PumpError>,
    written: Result<
        aws_sdk_s3::operation::put_object::PutObjectOutput,
        aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::put_object::PutObjectError,
            aws_sdk_s3::config::http::HttpResponse,
        >,
    >,
) -> Result<aws_sdk_s3::operation::put_object::PutObjectOutput, Outcome> {
    let where_to = output.url();
    match (pumped, written) {
        (Err(PumpError::Failed(outcome)), _) => Err(outcome),
        (_, Err(e)) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let precondition_failed = status == Some(412);
            // No answer, or a 5xx: the write may have landed all the same. One HEAD tells.
            let unknown = !matches!(status, Some(s) if (400..500).contains(&s));
            if unknown
                && let Some(found) = recognise(ctx, output, original, marker).await
                && found.action == crate::outcome::Action::Converted
            {
                return Err(Outcome::Done(Summary {
                    reason: Some(format!(
                        "converted; the write's answer was lost ({}), a HEAD found it had landed",
                        batch_contract::text::one_line(
                            &aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                            300
                        )
                    )),
                    ..found
                }));
            }
            if precondition_failed {
                // Ours already? (An earlier attempt whose answer was lost, or another job.)
                if let Some(found) = recognise(ctx, output, original, marker).await {
                    return Err(Outcome::Done(found));
                }
                if !output.in_place {
                    return Err(Outcome::Permanent(format!(
                        "writing {where_to}: the destination exists and is not this tool's conversion of \
                         this original; nothing overwritten"
                    )));
                }
                if let Some(pinned) = &task.version_id {
                    // A task pinned to an older version would meet 412 on every redrive: say so once.
                    if let Some(current) = current_version(ctx, task).await.filter(|c| c != pinned)
                    {
                        return Err(Outcome::Permanent(format!(
                            "version {pinned} is no longer the current version ({current} is); \
                             not converted, nothing overwritten"
                        )));
                    }
                }
            }
            Err(classify(&format!("writing {where_to} (PutObject)"), &e))
        }
        (Err(PumpError::UploadGone), Ok(_)) => Err(Outcome::Temporary(format!(
            "writing {where_to} (PutObject): upload ended before the body was sent"
        ))),
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
            Ok(written)
        }
    }
}

/// After a conditional write failed: is the object now at the output this tool's conversion of
/// exactly this original (same ETag, same version)? Then this task's earlier attempt wrote it
/// (it names this task: converted, said so), or another job did (skipped, said so).
async fn recognise(
    ctx: &Context,
    output: &Output,
    original: &Original,
    marker: &str,
) -> Option<Summary> {
    let head = ctx
        .s3
        .head_object()
        .bucket(&output.bucket)
        .key(&output.key)
        .send()
        .await
        .ok()?;
    let meta = head.metadata().cloned().unwrap_or_default();
    meta.get(MARK_METADATA)?;
    let etag = original.etag.as_deref()?.trim_matches('"');
    if meta.get("original-etag").map(String::as_str) != Some(etag) {
        return None;
    }
    if let Some(v) = &original.version
        && meta.get("original-version-id") != Some(v)
    {
        return None;
    }
    let version = head.version_id().map(str::to_string);
    if meta.get(TASK_METADATA).map(String::as_str) == Some(marker_header(marker).as_str()) {
        let mut s = earlier_attempt(&meta, original.size, output, version);
        s.bytes_out = head.content_length().unwrap_or(0).max(0) as u64;
        return Some(s);
    }
    let by = meta
        .get(TASK_METADATA)
        .map(|m| format!("task {m}"))
        .unwrap_or_else(|| "an earlier job".into());
    let place = if output.in_place {
        "the current version"
    } else {
        "the destination"
    };
    Some(Summary::skipped(
        format!(
            "already converted: {place} {} (version {}) is the conversion of this very original, by {by}",
            output.url(),
            version.as_deref().unwrap_or("none")
        ),
        original.size,
    ))
}

/// This task's conversion, written by an earlier attempt whose answer never arrived.
fn earlier_attempt(
    meta: &HashMap<String, String>,
    bytes_in: u64,
    output: &Output,
    version: Option<String>,
) -> Summary {
    let mut words = meta
        .get(MARK_METADATA)
        .map(|m| m.split(' ').map(str::to_string).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .skip(1);
    Summary {
        action: crate::outcome::Action::Converted,
        reason: Some(
            "converted by an earlier attempt of this task (its answer was lost); not written again"
                .into(),
        ),
        bytes_in: meta
            .get("original-size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(bytes_in),
        bytes_out: 0,
        duration_seconds: meta
            .get(DURATION_METADATA)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0),
        elapsed_seconds: 0.0,
        output_key: output.key.clone(),
        output_version_id: version,
        codec: words.next(),
        downmix: words.next(),
        input_format: meta.get("original-format").cloned(),
        dropped_bytes: 0,
        missing_bytes: 0,
    }
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
    size: u64,
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
                return Err(fail(&tx, body_cut(&e, transcoder.bytes_in(), size)));
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

/// An object that is already G.711 (ours or not): converting it again would only lose quality.
fn already_g711(codec: crate::Codec, format: &str, size: u64) -> Summary {
    Summary {
        codec: Some(codec.name().into()),
        input_format: Some(format.into()),
        ..Summary::skipped(format!("already {} ({format})", codec.name()), size)
    }
}

/// An object that is already one of our compressed outputs (FLAC, Ogg) is not converted again.
fn already_compressed(first: &[u8], size: u64) -> Option<Summary> {
    let (codec, what) = if crate::flac::is_flac(first) {
        ("flac", "FLAC")
    } else if first.starts_with(b"OggS") {
        ("ogg", "Ogg")
    } else {
        return None;
    };
    Some(Summary {
        codec: Some(codec.into()),
        input_format: Some(what.into()),
        ..Summary::skipped(
            format!("already {codec} (a {what} stream, not a WAV)"),
            size,
        )
    })
}

fn spool_error(codec: &str, e: impl std::fmt::Display) -> Outcome {
    Outcome::Temporary(format!(
        "encoding {codec} into the spool file ({}): {e}",
        std::env::temp_dir().display()
    ))
}

/// FLAC, Opus, and G.711 from a rate other than 8 kHz: the header read from the stream, the
/// audio encoded block by block into a spool file as it arrives (memory: one block), then one
/// conditional PUT of the file, its CRC32 compared with what S3 stored. A failure anywhere
/// before the PUT commits nothing. `read` is what of the body was read already.
#[allow(clippy::too_many_arguments)]
async fn convert_spooled(
    ctx: &Context,
    settings: &Settings,
    task: &Task,
    marker: &str,
    (output, original): (Output, Original),
    (read, mut body): (Vec<bytes::Bytes>, ByteStream),
    tags: &[(String, String)],
    kind: crate::encode::Spooled,
) -> Result<Summary, Outcome> {
    use crate::encode::{EncodeError, Spool, WavToSpool};
    let size = original.size;
    let downmix = settings.options.downmix;
    let codec = kind.name();
    let spool_error = |e: &dyn std::fmt::Display| spool_error(codec, e);
    let (spool, file) = Spool::create("batch-handler").map_err(|e| spool_error(&e))?;
    let mut conv = WavToSpool::new(
        size,
        std::io::BufWriter::with_capacity(SEND_CHUNK, file),
        downmix,
        kind,
    );
    // The task's own result type, as every step of it returns.
    #[allow(clippy::result_large_err)]
    let failed = |e: EncodeError| match e {
        EncodeError::Transcode(TranscodeError::AlreadyEncoded { codec, format }) => {
            Ok(already_g711(codec, &format, size))
        }
        EncodeError::Transcode(t) => Err(Outcome::from_transcode(&t)),
        EncodeError::Output(crate::encode::OutputError::Resample(r)) => {
            Err(Outcome::Permanent(r.to_string()))
        }
        EncodeError::Output(f) => Err(spool_error(&f)),
    };
    let mut received = 0u64;
    let mut hooked = false;
    let mut read = read.into_iter();
    while !conv.complete() {
        let next = match read.next() {
            Some(bytes) => Some(Ok(bytes)),
            None => body.next().await,
        };
        match next {
            Some(Ok(bytes)) => {
                if received == 0
                    && let Some(skip) = already_compressed(&bytes, size)
                {
                    return Ok(skip);
                }
                received += bytes.len() as u64;
                if let Err(e) = conv.feed(&bytes) {
                    return failed(e);
                }
            }
            Some(Err(e)) => return Err(body_cut(&e, received, size)),
            None => break,
        }
        if !hooked && conv.data().is_some() {
            hooked = true;
            if let Some(hook) = &ctx.hooks.before_write {
                hook(task.clone()).await;
            }
            if output.in_place && original.etag.is_none() {
                return Err(Outcome::Permanent(
                    "the object has no ETag: it cannot be replaced conditionally".into(),
                ));
            }
        }
    }
    drop(body);
    let (done, writer) = match conv.finish() {
        Ok(ok) => ok,
        Err(e) => return failed(e),
    };
    drop(writer.into_inner().map_err(|e| spool_error(e.error()))?);
    // The CRC32 of exactly the bytes the PUT sends, to compare with what S3 stored.
    let mut crc = crc32fast::Hasher::new();
    spool
        .read_through(|piece| crc.update(piece))
        .map_err(|e| spool_error(&e))?;
    let seconds = done.seconds();
    let shape = Shape {
        input_format: done.input.describe(),
        codec,
        downmix: downmix.name(),
        seconds,
        len: done.len,
        content_type: kind.content_type(),
        bitrate: match kind {
            crate::encode::Spooled::Opus { bitrate } => Some(bitrate),
            _ => None,
        },
    };
    let stream = ByteStream::from_path(&spool.path)
        .await
        .map_err(|e| spool_error(&e))?;
    let written = build_put(
        ctx, settings, &output, &original, &shape, tags, marker, stream,
    )
    .send()
    .await;
    let written = interpret_write(
        ctx,
        task,
        &output,
        &original,
        marker,
        Ok(crc.finalize()),
        written,
    )
    .await?;
    drop(spool);
    Ok(Summary {
        action: crate::outcome::Action::Converted,
        reason: None,
        bytes_in: size,
        bytes_out: done.len,
        duration_seconds: (seconds * 1000.0).round() / 1000.0,
        elapsed_seconds: 0.0,
        output_key: output.key,
        output_version_id: written.version_id().map(str::to_string),
        codec: Some(codec.into()),
        downmix: Some(downmix.name().into()),
        input_format: Some(done.input.describe()),
        dropped_bytes: done.data.partial_frame_bytes(),
        missing_bytes: done.data.missing_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_replaces_the_last_extension_of_the_name_only() {
        assert_eq!(with_suffix("a/b.wav", Some(".ogg")), "a/b.ogg");
        assert_eq!(with_suffix("a.d/b", Some(".ogg")), "a.d/b.ogg");
        assert_eq!(with_suffix("a/.hidden", Some(".ogg")), "a/.hidden.ogg");
        assert_eq!(with_suffix("x.tar.wav", Some(".flac")), "x.tar.flac");
        assert_eq!(with_suffix("a/b.wav", None), "a/b.wav");
    }

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
