//! The S3 operations over [`Store`]: what each request asks, answered as S3 answers it
//! (versions, delete markers, conditional requests, tags per version, checksums checked before
//! anything is stored, listings with ETags and URL encoding when asked).

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use md5::Digest;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use tokio::io::AsyncWriteExt;

use super::store::{
    Deleted, Draft, ListQuery, Listing, Meta, Store, StoreError, Version, Versioning,
    WriteCondition,
};

/// The S3 face of the store.
pub(crate) struct Server {
    pub(crate) store: Arc<Store>,
}

fn err(e: StoreError) -> S3Error {
    match e {
        StoreError::NoSuchBucket(b) => s3_error!(NoSuchBucket, "the bucket {b} does not exist"),
        StoreError::BucketExists(b) => {
            s3_error!(BucketAlreadyOwnedByYou, "the bucket {b} exists already")
        }
        StoreError::BucketNotEmpty(b) => s3_error!(BucketNotEmpty, "the bucket {b} is not empty"),
        StoreError::NoSuchKey {
            key, delete_marker, ..
        } => {
            let mut e = s3_error!(NoSuchKey, "no object under the key {key:?}");
            if let Some(id) = delete_marker {
                let mut h = hyper::HeaderMap::new();
                h.insert(
                    "x-amz-delete-marker",
                    hyper::header::HeaderValue::from_static("true"),
                );
                if let Ok(v) = hyper::header::HeaderValue::from_str(&id) {
                    h.insert("x-amz-version-id", v);
                }
                e.set_headers(h);
            }
            e
        }
        StoreError::NoSuchVersion { key, version } => {
            s3_error!(NoSuchVersion, "no version {version:?} of the key {key:?}")
        }
        StoreError::DeleteMarker(id) => {
            let mut e = s3_error!(
                MethodNotAllowed,
                "version {id} is a delete marker: it has no body or tags"
            );
            let mut h = hyper::HeaderMap::new();
            h.insert(
                "x-amz-delete-marker",
                hyper::header::HeaderValue::from_static("true"),
            );
            e.set_headers(h);
            e
        }
        StoreError::PreconditionFailed(m) => s3_error!(PreconditionFailed, "{m}"),
        StoreError::KeyTooLong(n) => s3_error!(
            KeyTooLongError,
            "the key has {n} bytes; S3 allows {}",
            super::store::MAX_KEY_BYTES
        ),
        StoreError::Invalid(m) => s3_error!(InvalidArgument, "{m}"),
        StoreError::NoSuchUpload(id) => s3_error!(NoSuchUpload, "no multipart upload {id}"),
        e @ StoreError::Io { .. } => s3_error!(InternalError, "{e}"),
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// Seconds since the epoch of an HTTP date (S3 compares dates to the second).
fn epoch_seconds(t: &Timestamp) -> Option<i64> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::EpochSeconds, &mut buf).ok()?;
    let s = String::from_utf8(buf).ok()?;
    s.split('.').next()?.parse().ok()
}

fn etag(v: &Version) -> ETag {
    ETag::Strong(v.etag.clone())
}

fn condition_value(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_string(),
        ETagCondition::ETag(e) => e.value().to_string(),
    }
}

fn matches(c: &ETagCondition, v: &Version) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == v.etag,
    }
}

/// GET/HEAD preconditions in the order RFC 9110 and S3 evaluate them.
fn check_read(
    v: &Version,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = v.modified_ms.div_euclid(1000);
    match if_match {
        Some(c) if !matches(c, v) => {
            return Err(s3_error!(
                PreconditionFailed,
                "If-Match {:?} but the ETag is {:?}",
                condition_value(c),
                v.etag
            ));
        }
        Some(_) => {}
        None => {
            if let Some(t) = if_unmodified_since.and_then(epoch_seconds)
                && modified > t
            {
                return Err(s3_error!(
                    PreconditionFailed,
                    "modified after If-Unmodified-Since"
                ));
            }
        }
    }
    match if_none_match {
        Some(c) if matches(c, v) => return Err(S3Error::new(S3ErrorCode::NotModified)),
        Some(_) => {}
        None => {
            if let Some(t) = if_modified_since.and_then(epoch_seconds)
                && modified <= t
            {
                return Err(S3Error::new(S3ErrorCode::NotModified));
            }
        }
    }
    Ok(())
}

const CLASSES: [&str; 9] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];

fn check_class(class: Option<&StorageClass>) -> S3Result<Option<String>> {
    match class.map(|c| c.as_str()) {
        None => Ok(None),
        Some(c) if CLASSES.contains(&c) => Ok((c != "STANDARD").then(|| c.to_string())),
        Some(c) => Err(s3_error!(InvalidStorageClass, "unknown storage class {c}")),
    }
}

fn class_name(v: &Version) -> String {
    v.meta
        .storage_class
        .clone()
        .unwrap_or_else(|| "STANDARD".into())
}

/// `x-amz-tagging`: a URL query string of at most 10 tags.
fn parse_tagging(header: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    for pair in header.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let d = |s: &str| {
            batch_contract::key::decode_key(s)
                .map_err(|_| s3_error!(InvalidTag, "malformed x-amz-tagging {s:?}"))
        };
        tags.insert(d(k)?, if v.is_empty() { String::new() } else { d(v)? });
    }
    check_tags(&tags)?;
    Ok(tags)
}

fn check_tags(tags: &BTreeMap<String, String>) -> S3Result<()> {
    if tags.len() > 10 {
        return Err(s3_error!(
            InvalidTag,
            "Object tags cannot be greater than 10"
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(s3_error!(InvalidTag, "the tag {k:?}={v:?} is not allowed"));
        }
    }
    Ok(())
}

fn tag_set(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// URL-encodes listed names when the client asked (`encoding-type=url`; boto3 and the AWS CLI
/// always do), as S3 does, so any key survives the XML.
fn encoder(kind: Option<&EncodingType>) -> impl Fn(String) -> String + use<> {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    let url = kind.is_some_and(|k| k.as_str() == "url");
    move |s: String| {
        if url {
            percent_encoding::utf8_percent_encode(&s, KEEP).to_string()
        } else {
            s
        }
    }
}

/// The checksums a request asks to be checked and kept.
#[derive(Default)]
struct Wanted {
    hasher: s3s::checksum::ChecksumHasher,
    expected: Checksum,
}

impl Wanted {
    fn new(algorithm: Option<&ChecksumAlgorithm>, given: Checksum) -> S3Result<Wanted> {
        let mut w = Wanted {
            expected: given,
            ..Default::default()
        };
        let h = &mut w.hasher;
        if w.expected.checksum_crc32.is_some() {
            h.crc32 = Some(Default::default());
        }
        if w.expected.checksum_crc32c.is_some() {
            h.crc32c = Some(Default::default());
        }
        if w.expected.checksum_sha1.is_some() {
            h.sha1 = Some(Default::default());
        }
        if w.expected.checksum_sha256.is_some() {
            h.sha256 = Some(Default::default());
        }
        if w.expected.checksum_crc64nvme.is_some() {
            h.crc64nvme = Some(Default::default());
        }
        match algorithm.map(|a| a.as_str()) {
            None => {}
            Some(ChecksumAlgorithm::CRC32) => h.crc32 = Some(Default::default()),
            Some(ChecksumAlgorithm::CRC32C) => h.crc32c = Some(Default::default()),
            Some(ChecksumAlgorithm::SHA1) => h.sha1 = Some(Default::default()),
            Some(ChecksumAlgorithm::SHA256) => h.sha256 = Some(Default::default()),
            Some(ChecksumAlgorithm::CRC64NVME) => h.crc64nvme = Some(Default::default()),
            Some(other) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "unknown checksum algorithm {other}"
                ));
            }
        }
        Ok(w)
    }

    /// Compares what was received with what the headers or trailers said it would be.
    fn finish(self, trailers: Option<s3s::TrailingHeaders>) -> S3Result<BTreeMap<String, String>> {
        let mut expected = self.expected;
        if let Some(t) = trailers.and_then(|t| t.take()) {
            let get = |name: &str| {
                t.get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            expected.checksum_crc32 = get("x-amz-checksum-crc32").or(expected.checksum_crc32);
            expected.checksum_crc32c = get("x-amz-checksum-crc32c").or(expected.checksum_crc32c);
            expected.checksum_sha1 = get("x-amz-checksum-sha1").or(expected.checksum_sha1);
            expected.checksum_sha256 = get("x-amz-checksum-sha256").or(expected.checksum_sha256);
            expected.checksum_crc64nvme =
                get("x-amz-checksum-crc64nvme").or(expected.checksum_crc64nvme);
        }
        let got = self.hasher.finalize();
        let mut kept = BTreeMap::new();
        for (name, want, have) in [
            ("CRC32", expected.checksum_crc32, got.checksum_crc32),
            ("CRC32C", expected.checksum_crc32c, got.checksum_crc32c),
            ("SHA1", expected.checksum_sha1, got.checksum_sha1),
            ("SHA256", expected.checksum_sha256, got.checksum_sha256),
            (
                "CRC64NVME",
                expected.checksum_crc64nvme,
                got.checksum_crc64nvme,
            ),
        ] {
            if let Some(want) = &want
                && Some(want) != have.as_ref()
            {
                return Err(s3_error!(
                    BadDigest,
                    "the {name} checksum you specified ({want}) did not match what was received ({})",
                    have.unwrap_or_default()
                ));
            }
            if let Some(h) = have {
                kept.insert(name.to_string(), h);
            }
        }
        Ok(kept)
    }
}

fn checksums_out(kept: &BTreeMap<String, String>) -> Checksum {
    let get = |n: &str| kept.get(n).cloned();
    Checksum {
        checksum_crc32: get("CRC32"),
        checksum_crc32c: get("CRC32C"),
        checksum_sha1: get("SHA1"),
        checksum_sha256: get("SHA256"),
        checksum_crc64nvme: get("CRC64NVME"),
        ..Default::default()
    }
}

/// A received body: where it is, its MD5 (hex) and size.
struct Received {
    path: std::path::PathBuf,
    md5: String,
    size: u64,
}

impl Server {
    /// Streams a request body into a new file in `tmp/`, hashing it on the way; nothing is
    /// visible until the store commits it, and a failed or refused body leaves no file.
    async fn receive(
        &self,
        body: Option<StreamingBlob>,
        wanted: &mut Wanted,
        content_md5: Option<&str>,
    ) -> S3Result<Received> {
        let path = self.store.temp_path();
        let outcome = self.receive_into(&path, body, wanted, content_md5).await;
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        outcome.map(|(md5, size)| Received { path, md5, size })
    }

    async fn receive_into(
        &self,
        path: &std::path::Path,
        body: Option<StreamingBlob>,
        wanted: &mut Wanted,
        content_md5: Option<&str>,
    ) -> S3Result<(String, u64)> {
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|e| s3_error!(InternalError, "creating a file for the body: {e}"))?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut md5 = batch_contract::md5::Hasher::new();
        let mut size = 0u64;
        if let Some(mut body) = body {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    s3_error!(IncompleteBody, "the body stopped after {size} bytes: {e}")
                })?;
                md5.update(&chunk);
                wanted.hasher.update(&chunk);
                size += chunk.len() as u64;
                out.write_all(&chunk)
                    .await
                    .map_err(|e| s3_error!(InternalError, "writing the body: {e}"))?;
            }
        }
        out.flush()
            .await
            .map_err(|e| s3_error!(InternalError, "writing the body: {e}"))?;
        let md5 = batch_contract::md5::finish_md5_hex(md5);
        if let Some(given) = content_md5 {
            let decoded = base64_simd::STANDARD
                .decode_to_vec(given)
                .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 {given:?} is not base64"))?;
            let hex: String = decoded.iter().map(|b| format!("{b:02x}")).collect();
            if hex != md5 {
                return Err(s3_error!(
                    BadDigest,
                    "the Content-MD5 you specified did not match what was received"
                ));
            }
        }
        Ok((md5, size))
    }

    fn version_header(&self, bucket: &str, v: &Version) -> Option<String> {
        match self.store.versioning(bucket) {
            Ok(Versioning::Unversioned) | Err(_) => None,
            Ok(_) => Some(v.id.clone()),
        }
    }

    fn listing_entry(v: &Version, key: String) -> Object {
        Object {
            key: Some(key),
            e_tag: Some(etag(v)),
            size: Some(v.size as i64),
            last_modified: Some(ts(v.modified_ms)),
            storage_class: Some(ObjectStorageClass::from(class_name(v))),
            ..Default::default()
        }
    }

    fn list_page(
        &self,
        bucket: &str,
        prefix: Option<String>,
        delimiter: Option<String>,
        after: Option<String>,
        max_keys: Option<i32>,
    ) -> S3Result<Listing> {
        let q = ListQuery {
            prefix: prefix.unwrap_or_default(),
            delimiter,
            after,
            after_version: None,
            max: max_keys.unwrap_or(1000).clamp(0, 1000) as usize,
        };
        self.store.list(bucket, &q).map_err(err)
    }
}

fn hex_token(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex_token(s: &str) -> S3Result<String> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The continuation token provided is incorrect"
        )
    };
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect::<S3Result<Vec<u8>>>()?;
    String::from_utf8(bytes).map_err(|_| bad())
}

fn meta_of(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    metadata: Option<Metadata>,
) -> Meta {
    Meta {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        user: metadata.unwrap_or_default().into_iter().collect(),
        ..Default::default()
    }
}

fn user_metadata(m: &Meta) -> Option<Metadata> {
    (!m.user.is_empty()).then(|| m.user.clone().into_iter().collect())
}

fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    if let Some(c) = if_none_match
        && !c.is_any()
    {
        return Err(s3_error!(
            NotImplemented,
            "If-None-Match on a write takes only '*'"
        ));
    }
    Ok(WriteCondition {
        if_match: if_match.map(condition_value),
        if_none_match_any: if_none_match.is_some(),
    })
}

/// The write conditions S3 reads from headers s3s 0.14 does not parse for an operation
/// (CopyObject's `If-Match` / `If-None-Match`, which the AWS SDKs send).
fn header_condition(headers: &hyper::HeaderMap) -> S3Result<WriteCondition> {
    let parse = |name: &str| -> S3Result<Option<ETagCondition>> {
        headers
            .get(name)
            .map(|v| {
                ETagCondition::parse_http_header(v.as_bytes())
                    .map_err(|_| s3_error!(InvalidArgument, "malformed {name} header"))
            })
            .transpose()
    };
    write_condition(
        parse("if-match")?.as_ref(),
        parse("if-none-match")?.as_ref(),
    )
}

#[async_trait::async_trait]
impl S3 for Server {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let b = req.input.bucket;
        self.store.create_bucket(&b).map_err(err)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{b}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store.check_bucket(&req.input.bucket).map_err(err)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .store
            .buckets()
            .into_iter()
            .map(|(name, ms)| Bucket {
                name: Some(name),
                creation_date: Some(ts(ms)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store.delete_bucket(&req.input.bucket).map_err(err)?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.store.check_bucket(&req.input.bucket).map_err(err)?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let status = match self.store.versioning(&req.input.bucket).map_err(err)? {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..Default::default()
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let status = match req
            .input
            .versioning_configuration
            .status
            .as_ref()
            .map(|s| s.as_str())
        {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "the versioning status must be Enabled or Suspended"
                ));
            }
        };
        self.store
            .set_versioning(&req.input.bucket, status)
            .map_err(err)?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        super::store::check_key(&key).map_err(err)?;
        self.store.check_bucket(&bucket).map_err(err)?;
        let cond = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let mut meta = meta_of(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.metadata,
        );
        meta.tags = parse_tagging(input.tagging.as_deref())?;
        meta.storage_class = check_class(input.storage_class.as_ref())?;
        meta.sse = input.server_side_encryption.map(|s| s.as_str().to_string());
        meta.sse_kms_key_id = input.ssekms_key_id;
        let mut wanted = Wanted::new(
            input.checksum_algorithm.as_ref(),
            Checksum {
                checksum_crc32: input.checksum_crc32,
                checksum_crc32c: input.checksum_crc32c,
                checksum_sha1: input.checksum_sha1,
                checksum_sha256: input.checksum_sha256,
                checksum_crc64nvme: input.checksum_crc64nvme,
                ..Default::default()
            },
        )?;
        let got = self
            .receive(input.body, &mut wanted, input.content_md5.as_deref())
            .await?;
        let checksums = match wanted.finish(req.trailing_headers) {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&got.path).await;
                return Err(e);
            }
        };
        meta.checksums = checksums;
        let draft = Draft {
            etag: got.md5,
            size: got.size,
            meta,
        };
        let v = self
            .store
            .commit_write(&bucket, &key, &got.path, draft, &cond)
            .map_err(err)?;
        let sums = checksums_out(&v.meta.checksums);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&v)),
            version_id: self.version_header(&bucket, &v),
            server_side_encryption: v.meta.sse.clone().map(ServerSideEncryption::from),
            ssekms_key_id: v.meta.sse_kms_key_id.clone(),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let (bucket, key) = (input.bucket.as_str(), input.key.as_str());
        let (v, mut file) = self
            .store
            .open_object(bucket, key, input.version_id.as_deref())
            .map_err(err)?;
        check_read(
            &v,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        if v.meta.storage_class.as_deref() == Some("GLACIER")
            || v.meta.storage_class.as_deref() == Some("DEEP_ARCHIVE")
        {
            return Err(s3_error!(
                InvalidObjectState,
                "The operation is not valid for the object's storage class"
            ));
        }
        let range =
            match &input.range {
                None => None,
                Some(r) => Some(r.check(v.size).map_err(|_| {
                    s3_error!(InvalidRange, "The requested range is not satisfiable")
                })?),
            };
        let (start, len) = match &range {
            Some(r) => (r.start, r.end - r.start),
            None => (0, v.size),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .map_err(|e| s3_error!(InternalError, "seeking in {key}: {e}"))?;
        }
        let reader = tokio::fs::File::from_std(file).take_limit(len);
        let body = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20);
        let sums = if range.is_none()
            && input
                .checksum_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
        {
            checksums_out(&v.meta.checksums)
        } else {
            Checksum::default()
        };
        let output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(len as i64),
            content_range: range
                .as_ref()
                .map(|r| format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), v.size)),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(ts(v.modified_ms)),
            e_tag: Some(etag(&v)),
            version_id: self.version_header(bucket, &v),
            metadata: user_metadata(&v.meta),
            content_type: v.meta.content_type.clone(),
            content_encoding: v.meta.content_encoding.clone(),
            content_disposition: v.meta.content_disposition.clone(),
            content_language: v.meta.content_language.clone(),
            cache_control: v.meta.cache_control.clone(),
            storage_class: v.meta.storage_class.clone().map(StorageClass::from),
            server_side_encryption: v.meta.sse.clone().map(ServerSideEncryption::from),
            ssekms_key_id: v.meta.sse_kms_key_id.clone(),
            tag_count: (!v.meta.tags.is_empty()).then_some(v.meta.tags.len() as i32),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let (bucket, key) = (input.bucket.as_str(), input.key.as_str());
        let (v, _) = self
            .store
            .head(bucket, key, input.version_id.as_deref())
            .map_err(err)?;
        if v.delete_marker {
            return Err(err(StoreError::DeleteMarker(v.id)));
        }
        check_read(
            &v,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let sums = if input
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
        {
            checksums_out(&v.meta.checksums)
        } else {
            Checksum::default()
        };
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(v.size as i64),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(ts(v.modified_ms)),
            e_tag: Some(etag(&v)),
            version_id: self.version_header(bucket, &v),
            metadata: user_metadata(&v.meta),
            content_type: v.meta.content_type.clone(),
            content_encoding: v.meta.content_encoding.clone(),
            content_disposition: v.meta.content_disposition.clone(),
            content_language: v.meta.content_language.clone(),
            cache_control: v.meta.cache_control.clone(),
            storage_class: v.meta.storage_class.clone().map(StorageClass::from),
            server_side_encryption: v.meta.sse.clone().map(ServerSideEncryption::from),
            ssekms_key_id: v.meta.sse_kms_key_id.clone(),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let cond = header_condition(&req.headers)?;
        let input = req.input;
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        super::store::check_key(&key).map_err(err)?;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            version_id: src_version,
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copying from an access point is not supported here"
            ));
        };
        let (src, mut file) = self
            .store
            .open_object(src_bucket, src_key, src_version.as_deref())
            .map_err(err)?;
        check_read(
            &src,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(|e| {
            if *e.code() == S3ErrorCode::NotModified {
                s3_error!(
                    PreconditionFailed,
                    "the copy source's condition does not hold"
                )
            } else {
                e
            }
        })?;
        let replace_meta = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let replace_tags = input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        let class = check_class(input.storage_class.as_ref())?;
        // Copying an older version onto its key is how S3 restores it; only a copy of the
        // current object onto itself must change something.
        let same = **src_bucket == *bucket
            && **src_key == *key
            && self
                .store
                .head(src_bucket, src_key, None)
                .is_ok_and(|(current, _)| current.id == src.id);
        if same && !replace_meta && class.is_none() && input.server_side_encryption.is_none() {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let mut meta = if replace_meta {
            meta_of(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.metadata,
            )
        } else {
            Meta {
                tags: BTreeMap::new(),
                storage_class: None,
                sse: None,
                sse_kms_key_id: None,
                ..src.meta.clone()
            }
        };
        meta.tags = if replace_tags {
            parse_tagging(input.tagging.as_deref())?
        } else {
            src.meta.tags.clone()
        };
        meta.storage_class = class;
        meta.sse = input
            .server_side_encryption
            .map(|s| s.as_str().to_string())
            .or_else(|| src.meta.sse.clone());
        meta.sse_kms_key_id = input
            .ssekms_key_id
            .or_else(|| src.meta.sse_kms_key_id.clone());
        meta.checksums = src.meta.checksums.clone();
        let temp = self.store.temp_path();
        let copied = {
            let temp = temp.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
                let mut out = std::fs::File::create(&temp)?;
                file.seek(SeekFrom::Start(0))?;
                std::io::copy(&mut file, &mut out)
            })
            .await
            .map_err(|e| s3_error!(InternalError, "copying: {e}"))?
        };
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&temp);
            return Err(s3_error!(InternalError, "copying {src_key}: {e}"));
        }
        let draft = Draft {
            etag: src.etag.clone(),
            size: src.size,
            meta,
        };
        let v = self
            .store
            .commit_write(&bucket, &key, &temp, draft, &cond)
            .map_err(err)?;
        let sums = checksums_out(&v.meta.checksums);
        let src_version_out = match self.store.versioning(src_bucket) {
            Ok(Versioning::Unversioned) | Err(_) => None,
            Ok(_) => Some(src.id.clone()),
        };
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&v)),
                last_modified: Some(ts(v.modified_ms)),
                checksum_crc32: sums.checksum_crc32,
                checksum_crc32c: sums.checksum_crc32c,
                checksum_sha1: sums.checksum_sha1,
                checksum_sha256: sums.checksum_sha256,
                checksum_crc64nvme: sums.checksum_crc64nvme,
                ..Default::default()
            }),
            version_id: self.version_header(&bucket, &v),
            copy_source_version_id: src_version_out,
            server_side_encryption: v.meta.sse.clone().map(ServerSideEncryption::from),
            ssekms_key_id: v.meta.sse_kms_key_id.clone(),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let d = self
            .store
            .delete(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(err)?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: d.delete_marker.then_some(true),
            version_id: d.version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.store.check_bucket(&input.bucket).map_err(err)?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for o in input.delete.objects {
            let asked = o.version_id.clone();
            match self.store.delete(&input.bucket, &o.key, asked.as_deref()) {
                Ok(Deleted {
                    version_id,
                    delete_marker,
                }) => {
                    if quiet {
                        continue;
                    }
                    let created_marker = asked.is_none() && delete_marker;
                    deleted.push(DeletedObject {
                        key: Some(o.key),
                        version_id: asked,
                        delete_marker: delete_marker.then_some(true),
                        delete_marker_version_id: if created_marker || delete_marker {
                            version_id
                        } else {
                            None
                        },
                    });
                }
                Err(e) => {
                    let e = err(e);
                    errors.push(Error {
                        code: Some(e.code().as_str().to_string()),
                        key: Some(o.key),
                        message: e.message().map(str::to_string),
                        version_id: o.version_id,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = req.input;
        let enc = encoder(i.encoding_type.as_ref());
        let page = self.list_page(
            &i.bucket,
            i.prefix.clone(),
            i.delimiter.clone(),
            i.marker.clone(),
            i.max_keys,
        )?;
        let next_marker = (page.truncated && i.delimiter.is_some())
            .then(|| page.next.clone().map(&enc))
            .flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(i.prefix.unwrap_or_default())),
            marker: Some(enc(i.marker.unwrap_or_default())),
            max_keys: Some(i.max_keys.unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            contents: Some(
                page.entries
                    .iter()
                    .map(|(k, v, _)| Self::listing_entry(v, enc(k.clone())))
                    .collect(),
            ),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.map(&enc),
            next_marker,
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let enc = encoder(i.encoding_type.as_ref());
        let after = match &i.continuation_token {
            Some(t) => Some(unhex_token(t)?),
            None => i.start_after.clone(),
        };
        let page = self.list_page(
            &i.bucket,
            i.prefix.clone(),
            i.delimiter.clone(),
            after,
            i.max_keys,
        )?;
        let key_count = (page.entries.len() + page.prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc(i.prefix.unwrap_or_default())),
            max_keys: Some(i.max_keys.unwrap_or(1000)),
            key_count: Some(key_count),
            continuation_token: i.continuation_token,
            is_truncated: Some(page.truncated),
            next_continuation_token: page.next.as_deref().map(hex_token),
            contents: Some(
                page.entries
                    .iter()
                    .map(|(k, v, _)| Self::listing_entry(v, enc(k.clone())))
                    .collect(),
            ),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.map(&enc),
            encoding_type: i.encoding_type,
            start_after: i.start_after.map(&enc),
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let i = req.input;
        let enc = encoder(i.encoding_type.as_ref());
        let q = ListQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone(),
            after: i.key_marker.clone().filter(|k| !k.is_empty()),
            after_version: i.version_id_marker.clone().filter(|v| !v.is_empty()),
            max: i.max_keys.unwrap_or(1000).clamp(0, 1000) as usize,
        };
        let page = self.store.list_versions(&i.bucket, &q).map_err(err)?;
        let (mut versions, mut markers) = (Vec::new(), Vec::new());
        for (key, v, latest) in page.entries {
            if v.delete_marker {
                markers.push(DeleteMarkerEntry {
                    key: Some(enc(key)),
                    version_id: Some(v.id.clone()),
                    is_latest: Some(latest),
                    last_modified: Some(ts(v.modified_ms)),
                    ..Default::default()
                });
            } else {
                versions.push(ObjectVersion {
                    key: Some(enc(key)),
                    version_id: Some(v.id.clone()),
                    is_latest: Some(latest),
                    e_tag: Some(etag(&v)),
                    size: Some(v.size as i64),
                    last_modified: Some(ts(v.modified_ms)),
                    storage_class: Some(ObjectVersionStorageClass::from(class_name(&v))),
                    ..Default::default()
                });
            }
        }
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(i.prefix.unwrap_or_default())),
            key_marker: Some(enc(i.key_marker.unwrap_or_default())),
            version_id_marker: Some(i.version_id_marker.unwrap_or_default()),
            max_keys: Some(i.max_keys.unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            next_key_marker: page.next.map(&enc),
            next_version_id_marker: page.next_version,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.map(&enc),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let i = req.input;
        let (v, _) = self
            .store
            .head(&i.bucket, &i.key, i.version_id.as_deref())
            .map_err(err)?;
        if v.delete_marker {
            return Err(err(StoreError::DeleteMarker(v.id)));
        }
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(&v.meta.tags),
            version_id: self.version_header(&i.bucket, &v),
        }))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let i = req.input;
        let mut tags = BTreeMap::new();
        for t in &i.tagging.tag_set {
            let k = t.key.clone().unwrap_or_default();
            if tags
                .insert(k.clone(), t.value.clone().unwrap_or_default())
                .is_some()
            {
                return Err(s3_error!(
                    InvalidTag,
                    "Cannot provide multiple Tags with the same key"
                ));
            }
        }
        check_tags(&tags)?;
        let id = self
            .store
            .set_tags(&i.bucket, &i.key, i.version_id.as_deref(), tags)
            .map_err(err)?;
        let versioned = !matches!(
            self.store.versioning(&i.bucket),
            Ok(Versioning::Unversioned)
        );
        Ok(S3Response::new(PutObjectTaggingOutput {
            version_id: versioned.then_some(id),
        }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let i = req.input;
        let id = self
            .store
            .set_tags(&i.bucket, &i.key, i.version_id.as_deref(), BTreeMap::new())
            .map_err(err)?;
        let versioned = !matches!(
            self.store.versioning(&i.bucket),
            Ok(Versioning::Unversioned)
        );
        Ok(S3Response::new(DeleteObjectTaggingOutput {
            version_id: versioned.then_some(id),
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        let mut meta = meta_of(
            i.content_type,
            i.content_encoding,
            i.content_disposition,
            i.content_language,
            i.cache_control,
            i.metadata,
        );
        meta.tags = parse_tagging(i.tagging.as_deref())?;
        meta.storage_class = check_class(i.storage_class.as_ref())?;
        meta.sse = i.server_side_encryption.map(|s| s.as_str().to_string());
        meta.sse_kms_key_id = i.ssekms_key_id;
        let id = self
            .store
            .create_upload(&i.bucket, &i.key, meta)
            .map_err(err)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let i = req.input;
        if !(1..=10_000).contains(&i.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        self.store
            .upload(&i.bucket, &i.key, &i.upload_id)
            .map_err(err)?;
        let mut wanted = Wanted::new(
            i.checksum_algorithm.as_ref(),
            Checksum {
                checksum_crc32: i.checksum_crc32,
                checksum_crc32c: i.checksum_crc32c,
                checksum_sha1: i.checksum_sha1,
                checksum_sha256: i.checksum_sha256,
                checksum_crc64nvme: i.checksum_crc64nvme,
                ..Default::default()
            },
        )?;
        let got = self
            .receive(i.body, &mut wanted, i.content_md5.as_deref())
            .await?;
        let sums = match wanted.finish(req.trailing_headers) {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&got.path).await;
                return Err(e);
            }
        };
        self.store
            .put_part(
                &i.upload_id,
                i.part_number,
                &got.path,
                got.md5.clone(),
                got.size,
            )
            .map_err(err)?;
        let sums = checksums_out(&sums);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(got.md5)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        let cond = write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
        let upload = self
            .store
            .upload(&i.bucket, &i.key, &i.upload_id)
            .map_err(err)?;
        let asked = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if asked.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
        let mut files = Vec::new();
        let mut md5s = batch_contract::md5::Hasher::new();
        let mut last = 0;
        for (n, p) in asked.iter().enumerate() {
            let number = p.part_number.unwrap_or(0);
            if number <= last {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order"
                ));
            }
            last = number;
            let Some((tag, size, _)) = upload.parts.get(&number) else {
                return Err(s3_error!(InvalidPart, "part {number} was not uploaded"));
            };
            if p.e_tag.as_ref().is_some_and(|e| e.value() != tag) {
                return Err(s3_error!(
                    InvalidPart,
                    "part {number}'s ETag does not match"
                ));
            }
            if n + 1 < asked.len() && *size < 5 * 1024 * 1024 {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed size"
                ));
            }
            let raw: Vec<u8> = (0..tag.len() / 2)
                .filter_map(|j| u8::from_str_radix(&tag[j * 2..j * 2 + 2], 16).ok())
                .collect();
            md5s.update(&raw);
            files.push(self.store.part_file(&i.upload_id, number));
        }
        let temp = self.store.temp_path();
        let joined = {
            let temp = temp.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
                let mut out = std::fs::File::create(&temp)?;
                let mut total = 0;
                for f in files {
                    total += std::io::copy(&mut std::fs::File::open(f)?, &mut out)?;
                }
                Ok(total)
            })
            .await
            .map_err(|e| s3_error!(InternalError, "joining parts: {e}"))?
        };
        let size = match joined {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(s3_error!(InternalError, "joining parts: {e}"));
            }
        };
        let etag_value = format!(
            "{}-{}",
            batch_contract::md5::finish_md5_hex(md5s),
            asked.len()
        );
        let draft = Draft {
            etag: etag_value,
            size,
            meta: upload.meta.clone(),
        };
        let v = self
            .store
            .commit_write(&i.bucket, &i.key, &temp, draft, &cond)
            .map_err(err)?;
        let _ = self.store.abort_upload(&i.upload_id);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key),
            e_tag: Some(etag(&v)),
            version_id: self.version_header(&i.bucket, &v),
            server_side_encryption: v.meta.sse.clone().map(ServerSideEncryption::from),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = req.input;
        self.store
            .upload(&i.bucket, &i.key, &i.upload_id)
            .map_err(err)?;
        self.store.abort_upload(&i.upload_id).map_err(err)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let i = req.input;
        let u = self
            .store
            .upload(&i.bucket, &i.key, &i.upload_id)
            .map_err(err)?;
        let marker = i.part_number_marker.unwrap_or(0);
        let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let after: Vec<_> = u.parts.iter().filter(|(n, _)| **n > marker).collect();
        let truncated = after.len() > max;
        let parts: Vec<Part> = after
            .iter()
            .take(max)
            .map(|(n, (tag, size, ms))| Part {
                part_number: Some(**n),
                e_tag: Some(ETag::Strong(tag.clone())),
                size: Some(*size as i64),
                last_modified: Some(ts(*ms)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(i.upload_id),
            is_truncated: Some(truncated),
            next_part_number_marker: parts.last().and_then(|p| p.part_number),
            part_number_marker: Some(marker),
            max_parts: Some(max as i32),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let uploads = self
            .store
            .uploads(&i.bucket)
            .map_err(err)?
            .into_iter()
            .filter(|(k, _, _)| k.starts_with(&prefix))
            .map(|(key, id, ms)| MultipartUpload {
                key: Some(key),
                upload_id: Some(id),
                initiated: Some(ts(ms)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: Some(prefix),
            is_truncated: Some(false),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}

/// `AsyncRead::take` under a name that does not clash with `std::io::Read::take`.
trait TakeLimit: tokio::io::AsyncRead + Sized {
    fn take_limit(self, n: u64) -> tokio::io::Take<Self> {
        tokio::io::AsyncReadExt::take(self, n)
    }
}

impl<R: tokio::io::AsyncRead> TakeLimit for R {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_headers_are_form_decoded_and_bounded() {
        let t = parse_tagging(Some("converted=true&by=a%20b+c")).unwrap();
        assert_eq!(t["converted"], "true");
        assert_eq!(t["by"], "a b c");
        let many: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(parse_tagging(Some(&many.join("&"))).is_err());
        assert!(check_class(Some(&StorageClass::from("NOPE".to_string()))).is_err());
        assert_eq!(
            check_class(Some(&StorageClass::from("GLACIER_IR".to_string())))
                .unwrap()
                .as_deref(),
            Some("GLACIER_IR")
        );
    }

    #[test]
    fn listed_names_are_url_encoded_only_when_asked() {
        let url = EncodingType::from_static(EncodingType::URL);
        let e = encoder(Some(&url));
        assert_eq!(e("a b+c%/通.wav".into()), "a%20b%2Bc%25/%E9%80%9A.wav");
        assert_eq!(encoder(None)("a b".into()), "a b");
        let k = "x/é+ %".to_string();
        assert_eq!(unhex_token(&hex_token(&k)).unwrap(), k);
        assert!(unhex_token("zz").is_err());
    }
}
