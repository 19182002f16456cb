//! An S3 server inside the binary, for trying the tool with no AWS account: `s3s-fs` (objects as
//! files) on 127.0.0.1 with a generated key pair, plus what the handler needs that s3s-fs lacks:
//! object tagging and storage classes, kept in sidecar files beside the data. Buckets are never
//! versioned here, so in-place conversion is refused by the handler unless the operator opts in;
//! use a destination prefix. A local default for trying and demonstrating, not a production store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

/// A running embedded S3.
pub struct EmbeddedS3 {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Access key the server accepts.
    pub access_key: String,
    /// Its secret.
    pub secret_key: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EmbeddedS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What s3s-fs does not keep: tags and storage class.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Extras {
    tags: BTreeMap<String, String>,
    storage_class: Option<String>,
}

struct Server {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
    extras: PathBuf,
}

impl Server {
    fn path(&self, bucket: &str, key: &str) -> PathBuf {
        let name = batch_contract::md5::md5_hex(format!("{bucket}\0{key}").as_bytes());
        self.extras.join(format!("{name}.json"))
    }

    fn load(&self, bucket: &str, key: &str) -> Extras {
        std::fs::read(self.path(bucket, key))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, bucket: &str, key: &str, e: &Extras) -> S3Result<()> {
        let path = self.path(bucket, key);
        if e.tags.is_empty() && e.storage_class.is_none() {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(e).map_err(|err| s3_error!(InternalError, "{err}"))?;
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|err| s3_error!(InternalError, "saving tags: {err}"))
    }
}

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
    if tags.len() > 10 {
        return Err(s3_error!(InvalidTag, "more than 10 tags"));
    }
    Ok(tags)
}

/// s3s-fs names a sidecar file after the base64 of bucket and key, and stores each key segment
/// as a file name: both must fit the file system's 255 bytes.
/// Refuses a key s3s-fs would map onto another file or outside the bucket's folder: it stores
/// keys as paths, so `k//x` and `k/x` are one file, `x/./y` is `x/y`, and `a/../../B/k` lands
/// in bucket B. S3 keys are opaque; until the store keeps keys verbatim (#13), such keys are
/// refused with this reason rather than written over another object.
fn check_path(key: &str) -> S3Result<()> {
    let segments: Vec<&str> = key.split('/').collect();
    let interior_empty = segments
        .iter()
        .take(segments.len().saturating_sub(1))
        .any(|s| s.is_empty());
    if key.is_empty()
        || key.starts_with('/')
        || interior_empty
        || segments.iter().any(|s| *s == "." || *s == "..")
    {
        return Err(s3_error!(
            InvalidArgument,
            "the embedded S3 cannot store the key {key:?}: it keeps keys as file paths, where a \
             leading '/', '//', '.' or '..' would name another object's file (or another \
             bucket's); S3 itself accepts it"
        ));
    }
    Ok(())
}

fn check_key(bucket: &str, key: &str) -> S3Result<()> {
    check_path(key)?;
    let b64 = |n: usize| n.div_ceil(3) * 4;
    let sidecar = ".bucket-".len()
        + b64(bucket.len())
        + ".object-".len()
        + b64(key.len())
        + ".metadata.json".len();
    if sidecar > 255 || key.split('/').any(|seg| seg.len() > 255) {
        return Err(s3_error!(
            KeyTooLongError,
            "the embedded S3 stores keys of about {} bytes at most in bucket {bucket} (a file-name limit of s3s-fs); this key has {}",
            (255 - 30 - b64(bucket.len())) / 4 * 3,
            key.len()
        ));
    }
    Ok(())
}

fn check_class(class: Option<&StorageClass>) -> S3Result<Option<String>> {
    const KNOWN: [&str; 8] = [
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
    ];
    match class.map(|c| c.as_str()) {
        None => Ok(None),
        Some(c) if KNOWN.contains(&c) => Ok((c != "STANDARD").then(|| c.to_string())),
        Some(c) => Err(s3_error!(InvalidStorageClass, "unknown storage class {c}")),
    }
}

#[async_trait::async_trait]
impl S3 for Server {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let head = HeadBucketInput::builder()
            .bucket(req.input.bucket.clone())
            .build()
            .map_err(|e| s3_error!(InternalError, "{e}"))?;
        self.fs.head_bucket(req.map_input(|_| head)).await?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }
    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        check_key(&bucket, &key)?;
        let extras = Extras {
            tags: parse_tagging(req.input.tagging.as_deref())?,
            storage_class: check_class(req.input.storage_class.take().as_ref())?,
        };
        let out = self.fs.put_object(req).await?;
        self.save(&bucket, &key, &extras)?;
        Ok(out)
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        check_path(&req.input.key)?;
        let extras = self.load(&req.input.bucket, &req.input.key);
        if req.input.range.is_none() && req.input.part_number.is_none() {
            return self.get_whole_object(req, extras).await;
        }
        let mut out = self.fs.get_object(req).await?;
        out.output.storage_class = extras.storage_class.map(StorageClass::from);
        out.output.tag_count = (!extras.tags.is_empty()).then_some(extras.tags.len() as i32);
        Ok(out)
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        check_path(&req.input.key)?;
        let extras = self.load(&req.input.bucket, &req.input.key);
        let mut out = self.fs.head_object(req).await?;
        out.output.storage_class = extras.storage_class.map(StorageClass::from);
        Ok(out)
    }
    async fn copy_object(
        &self,
        mut req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        check_key(&bucket, &key)?;
        if let CopySource::Bucket { key, .. } = &req.input.copy_source {
            check_path(key)?;
        }
        let source = match &req.input.copy_source {
            CopySource::Bucket { bucket, key, .. } => self.load(bucket, key),
            _ => Extras::default(),
        };
        let replace = req
            .input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == "REPLACE");
        let extras = Extras {
            tags: if replace {
                parse_tagging(req.input.tagging.as_deref())?
            } else {
                source.tags
            },
            storage_class: check_class(req.input.storage_class.take().as_ref())?,
        };
        let out = self.fs.copy_object(req).await?;
        self.save(&bucket, &key, &extras)?;
        Ok(out)
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        check_path(&req.input.key)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let out = self.fs.delete_object(req).await?;
        self.save(&bucket, &key, &Extras::default())?;
        Ok(out)
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        for o in &req.input.delete.objects {
            check_path(&o.key)?;
        }
        self.fs.delete_objects(req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let (method, uri, headers) = (req.method.clone(), req.uri.clone(), req.headers.clone());
        let (credentials, region) = (req.credentials.clone(), req.region.clone());
        let mut out = self.fs.list_objects_v2(req).await?;
        for o in out.output.contents.iter_mut().flatten() {
            let key = o.key.clone().unwrap_or_default();
            let extras = self.load(&bucket, &key);
            o.storage_class = Some(ObjectStorageClass::from(
                extras.storage_class.unwrap_or_else(|| "STANDARD".into()),
            ));
            // s3s-fs lists no ETag; S3 lists each object's. Its HEAD reads the recorded one.
            if o.e_tag.is_none() {
                let input = HeadObjectInput::builder()
                    .bucket(bucket.clone())
                    .key(key)
                    .build()
                    .map_err(|e| s3_error!(InternalError, "{e}"))?;
                let head = S3Request {
                    input,
                    method: method.clone(),
                    uri: uri.clone(),
                    headers: headers.clone(),
                    extensions: Default::default(),
                    credentials: credentials.clone(),
                    region: region.clone(),
                    service: Some("s3".into()),
                    trailing_headers: None,
                };
                if let Ok(h) = self.fs.head_object(head).await {
                    o.e_tag = h.output.e_tag;
                }
            }
        }
        Ok(out)
    }
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        check_path(&req.input.key)?;
        let path = self
            .fs_object_exists(&req.input.bucket, &req.input.key)
            .await?;
        let _ = path;
        let extras = self.load(&req.input.bucket, &req.input.key);
        let tag_set = extras
            .tags
            .into_iter()
            .map(|(k, v)| Tag {
                key: Some(k),
                value: Some(v),
            })
            .collect();
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set,
            version_id: None,
        }))
    }
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        check_path(&req.input.key)?;
        self.fs_object_exists(&req.input.bucket, &req.input.key)
            .await?;
        let mut extras = self.load(&req.input.bucket, &req.input.key);
        extras.tags = req
            .input
            .tagging
            .tag_set
            .iter()
            .map(|t| {
                (
                    t.key.clone().unwrap_or_default(),
                    t.value.clone().unwrap_or_default(),
                )
            })
            .collect();
        if extras.tags.len() > 10 {
            return Err(s3_error!(InvalidTag, "more than 10 tags"));
        }
        self.save(&req.input.bucket, &req.input.key, &extras)?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        check_path(&req.input.key)?;
        let mut extras = self.load(&req.input.bucket, &req.input.key);
        extras.tags.clear();
        self.save(&req.input.bucket, &req.input.key, &extras)?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        check_path(&req.input.key)?;
        self.fs.create_multipart_upload(req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        check_path(&req.input.key)?;
        self.fs.upload_part(req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        check_path(&req.input.key)?;
        self.fs.complete_multipart_upload(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        check_path(&req.input.key)?;
        self.fs.abort_multipart_upload(req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        check_path(&req.input.key)?;
        self.fs.list_parts(req).await
    }
}

impl Server {
    /// A whole object, read in 1 MiB pieces (s3s-fs reads 4 KiB at a time, which bounds the
    /// demo's throughput). Headers come from s3s-fs's HEAD; the file is opened first and checked
    /// to be the one the HEAD described (s3s-fs replaces files by rename), so ETag and body agree.
    async fn get_whole_object(
        &self,
        req: S3Request<GetObjectInput>,
        extras: Extras,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        use std::os::unix::fs::MetadataExt;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let path = self.root.join(&bucket).join(&key);
        if !path.starts_with(&self.root) || key.split('/').any(|s| s == "..") {
            return Err(s3_error!(InvalidArgument, "bad key"));
        }
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| s3_error!(NoSuchKey))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| s3_error!(InternalError, "{e}"))?;
        let head_input = HeadObjectInput::builder()
            .bucket(bucket)
            .key(key)
            .build()
            .map_err(|e| s3_error!(InternalError, "{e}"))?;
        let head = self
            .fs
            .head_object(req.map_input(|_| head_input))
            .await?
            .output;
        let now = std::fs::metadata(&path).map_err(|_| s3_error!(NoSuchKey))?;
        if now.ino() != meta.ino() || now.len() != meta.len() {
            return Err(s3_error!(
                InternalError,
                "the object changed while it was read; retry"
            ));
        }
        let len = meta.len();
        let body = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        let output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(len as i64),
            last_modified: head.last_modified,
            metadata: head.metadata,
            content_encoding: head.content_encoding,
            content_type: head.content_type,
            content_disposition: head.content_disposition,
            content_language: head.content_language,
            cache_control: head.cache_control,
            e_tag: head.e_tag,
            checksum_crc32: head.checksum_crc32,
            checksum_crc32c: head.checksum_crc32c,
            checksum_sha1: head.checksum_sha1,
            checksum_sha256: head.checksum_sha256,
            checksum_crc64nvme: head.checksum_crc64nvme,
            storage_class: extras.storage_class.map(StorageClass::from),
            tag_count: (!extras.tags.is_empty()).then_some(extras.tags.len() as i32),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn fs_object_exists(&self, bucket: &str, key: &str) -> S3Result<()> {
        let input = HeadObjectInput::builder()
            .bucket(bucket.to_string())
            .key(key.to_string())
            .build()
            .map_err(|e| s3_error!(InternalError, "{e}"))?;
        let req = S3Request {
            input,
            method: hyper::Method::HEAD,
            uri: hyper::Uri::from_static("/"),
            headers: Default::default(),
            extensions: Default::default(),
            credentials: None,
            region: None,
            service: None,
            trailing_headers: None,
        };
        self.fs.head_object(req).await.map(|_| ())
    }
}

fn random_hex(bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < bytes * 2 {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(bytes * 2);
    s
}

/// Starts the embedded S3 on `addr` with objects under `dir/s3` and sidecars under `dir/extras`.
pub async fn start(dir: &Path, addr: SocketAddr) -> std::io::Result<EmbeddedS3> {
    let root = dir.join("s3");
    let extras = dir.join("extras");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&extras)?;
    let fs = s3s_fs::FileSystem::new(&root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let root = root.canonicalize()?;
    let access_key = format!("LOCAL{}", random_hex(8).to_ascii_uppercase());
    let secret_key = random_hex(20);
    let mut b = s3s::service::S3ServiceBuilder::new(Server { fs, root, extras });
    b.set_auth(s3s::auth::SimpleAuth::from_single(
        access_key.clone(),
        secret_key.clone(),
    ));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let http =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let conn = http
                .serve_connection(hyper_util::rt::TokioIo::new(sock), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok(EmbeddedS3 {
        url,
        access_key,
        secret_key,
        task,
    })
}

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
        for refused in ["k//x", "x/./y", "a/../../B/k", "/abs", "..", "a/..", ""] {
            assert!(check_path(refused).is_err(), "{refused:?}");
        }
        for kept in ["k/x", "a b+c%20/通話.wav", "folder/", "x.y/..z", "..a"] {
            assert!(check_path(kept).is_ok(), "{kept:?}");
        }
        assert!(check_key("calls", &"k".repeat(150)).is_ok());
        assert!(check_key("calls", &"k".repeat(180)).is_err());
        assert_eq!(
            check_class(Some(&StorageClass::from("GLACIER_IR".to_string())))
                .unwrap()
                .as_deref(),
            Some("GLACIER_IR")
        );
    }
}
