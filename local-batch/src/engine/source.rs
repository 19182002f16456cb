//! Where a job's tasks come from: a CSV manifest, an S3 Inventory manifest, or the manifest
//! generator's own listing. Each is read the way the service reads it; a manifest that cannot be
//! read or parsed fails the job with the reason, naming the object and the line. Manifests and
//! inventory data files are downloaded to a scratch file and parsed from it, and tasks go to a
//! sink as they are read: nothing here holds a whole task list.

use std::io::Write;
use std::path::Path;

use aws_sdk_s3::Client;

use batch_contract::inventory::InventoryManifest;
use batch_contract::job::{CreateJob, GeneratorFilter};

use super::retry::{EngineError, Failure, body_failure, retried, sdk_failure};
use super::store::Task;

/// Where tasks go as they are read (the job store's task list).
pub type Sink<'a> = &'a mut (dyn FnMut(Task) -> Result<(), EngineError> + Send);

/// What a download to a scratch file got.
struct Downloaded {
    etag: String,
    md5: String,
}

/// `arn:aws:s3:::bucket/key` → (bucket, key).
pub fn split_object_arn(arn: &str) -> Result<(String, String), EngineError> {
    let rest = arn
        .strip_prefix("arn:")
        .and_then(|r| r.split_once(":s3:::"))
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{arn:?} is not an S3 object ARN"))?;
    let (bucket, key) = rest
        .split_once('/')
        .ok_or_else(|| format!("{arn:?} names no object"))?;
    if bucket.is_empty() || key.is_empty() {
        return Err(EngineError::Invalid(format!("{arn:?} names no object")));
    }
    Ok((bucket.to_string(), key.to_string()))
}

/// Bucket name of a bucket ARN (text after the last `:`).
pub fn bucket_of_arn(arn: &str) -> String {
    arn.rsplit(':').next().unwrap_or(arn).to_string()
}

/// GETs an object into a file, retried whole when the call or its body fails; returns the ETag
/// and the MD5 of the bytes written. Memory stays at one chunk whatever the object's size.
async fn download(
    s3: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    path: &Path,
) -> Result<Downloaded, EngineError> {
    retried("GetObject", bucket, key, || async {
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_failure(&e))?;
        let local = |e: std::io::Error| Failure {
            retryable: false,
            detail: format!("writing {}: {e}", path.display()),
        };
        let etag = out.e_tag().unwrap_or("").trim_matches('"').to_string();
        let expected = out.content_length();
        let file = std::fs::File::create(path).map_err(local)?;
        let mut w = batch_contract::md5::HashingWriter::new(std::io::BufWriter::new(file));
        let mut body = out.body;
        let mut got = 0usize;
        loop {
            match body.next().await {
                None => break,
                Some(Ok(chunk)) => {
                    got += chunk.len();
                    w.write_all(&chunk).map_err(local)?;
                }
                Some(Err(e)) => return Err(body_failure(e, got, expected)),
            }
        }
        if let Some(n) = expected.filter(|&n| n >= 0 && n as usize != got) {
            return Err(Failure {
                retryable: true,
                detail: format!("the body ended after {got} of {n} bytes"),
            });
        }
        let (buffered, md5, _) = w.finish();
        buffered
            .into_inner()
            .map_err(|e| local(e.into_error()))?
            .sync_all()
            .map_err(local)?;
        Ok(Downloaded { etag, md5 })
    })
    .await
}

/// Rows of a `S3BatchOperations_CSV_20180820` manifest, by its `Fields`, to `sink`.
pub fn csv_tasks(
    input: impl std::io::Read,
    fields: &[String],
    name: &str,
    sink: Sink<'_>,
) -> Result<(), EngineError> {
    let col = |f: &str| fields.iter().position(|x| x == f);
    let (Some(b), Some(k)) = (col("Bucket"), col("Key")) else {
        return Err(EngineError::Invalid(format!(
            "{name}: Fields {fields:?} need Bucket and Key"
        )));
    };
    let v = col("VersionId");
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut rec = csv::StringRecord::new();
    let mut line = 0usize;
    loop {
        line += 1;
        match r.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(EngineError::Invalid(format!("{name}: line {line}: {e}"))),
        }
        if rec.len() != fields.len() {
            return Err(EngineError::Invalid(format!(
                "{name}: line {line}: {} fields, the manifest's Fields has {}",
                rec.len(),
                fields.len()
            )));
        }
        let (bucket, key) = (rec[b].to_string(), rec[k].to_string());
        if bucket.is_empty() || key.is_empty() {
            return Err(EngineError::Invalid(format!(
                "{name}: line {line}: empty bucket or key"
            )));
        }
        sink(Task {
            bucket,
            key,
            version: v.map(|v| rec[v].to_string()),
        })?;
    }
}

/// Reads the job's manifest (pinned by ETag) into `sink`, through the scratch file `scratch`.
pub async fn read_manifest(
    s3: &Client,
    job: &CreateJob,
    scratch: &Path,
    sink: Sink<'_>,
) -> Result<(), EngineError> {
    let m = job.manifest.as_ref().ok_or("the job has no manifest")?;
    let (bucket, key) = split_object_arn(&m.location.object_arn)?;
    let name = format!("s3://{bucket}/{key}");
    let fields = m
        .spec
        .fields
        .clone()
        .unwrap_or_else(|| vec!["Bucket".into(), "Key".into()]);
    let format = m.spec.format.as_str();
    if !matches!(
        format,
        "S3BatchOperations_CSV_20180820" | "S3InventoryReport_CSV_20161130"
    ) {
        return Err(EngineError::Invalid(format!(
            "{name}: manifest format {format} is not supported"
        )));
    }
    let read = async {
        let got = download(
            s3,
            &bucket,
            &key,
            m.location.object_version_id.as_deref(),
            scratch,
        )
        .await?;
        pinned(&got.etag, &m.location.etag, &name)?;
        if format == "S3BatchOperations_CSV_20180820" {
            let file = std::fs::File::open(scratch)?;
            csv_tasks(std::io::BufReader::new(file), &fields, &name, sink)
        } else {
            // The data files reuse the scratch file: keep the (small) manifest.json in memory.
            let bytes = std::fs::read(scratch)?;
            inventory_tasks(s3, &bytes, &name, scratch, sink).await
        }
    };
    let result = read.await;
    let _ = std::fs::remove_file(scratch);
    result
}

fn pinned(etag: &str, wanted: &str, name: &str) -> Result<(), EngineError> {
    if etag != wanted.trim_matches('"') {
        return Err(EngineError::Invalid(format!(
            "{name}: ETag {etag} does not match the job's {wanted}; the manifest changed after the job was created"
        )));
    }
    Ok(())
}

async fn inventory_tasks(
    s3: &Client,
    manifest: &[u8],
    name: &str,
    scratch: &Path,
    sink: Sink<'_>,
) -> Result<(), EngineError> {
    let inv = InventoryManifest::parse(manifest, name).map_err(|e| e.to_string())?;
    if !inv.file_format.eq_ignore_ascii_case("CSV") {
        return Err(EngineError::Invalid(format!(
            "{name}: Must be a CSV-formatted Amazon S3 Inventory report (this one is {})",
            inv.file_format
        )));
    }
    let cols = inv.csv_columns(name).map_err(|e| e.to_string())?;
    let dest = bucket_of_arn(&inv.destination_bucket);
    for f in &inv.files {
        let got = download(s3, &dest, &f.key, None, scratch).await?;
        if !got.md5.eq_ignore_ascii_case(&f.md5_checksum) {
            return Err(EngineError::Invalid(format!(
                "s3://{dest}/{}: MD5 {} does not match the inventory manifest's {}",
                f.key, got.md5, f.md5_checksum
            )));
        }
        let file = std::fs::File::open(scratch)?;
        let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(gz);
        let mut rec = csv::StringRecord::new();
        let mut line = 0usize;
        loop {
            line += 1;
            match r.read_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    return Err(EngineError::Invalid(format!(
                        "s3://{dest}/{}: line {line}: {e}",
                        f.key
                    )));
                }
            }
            if rec.len() != cols.count {
                return Err(EngineError::Invalid(format!(
                    "s3://{dest}/{}: line {line}: {} fields, the fileSchema has {}",
                    f.key,
                    rec.len(),
                    cols.count
                )));
            }
            sink(Task {
                bucket: rec[cols.bucket].to_string(),
                key: rec[cols.key].to_string(),
                version: cols
                    .version_id
                    .map(|v| rec[v].to_string())
                    .filter(|v| !v.is_empty()),
            })?;
        }
    }
    Ok(())
}

fn time_of(s: &str) -> Result<i64, EngineError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(&s[..s.len().min(10)], "%Y-%m-%d").map(|d| {
                d.and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    .timestamp_millis()
            })
        })
        .map_err(|_| EngineError::Invalid(format!("{s:?} is not a timestamp")))
}

fn accepts(
    f: &GeneratorFilter,
    key: &str,
    size: i64,
    modified_ms: i64,
    class: &str,
) -> Result<bool, EngineError> {
    if let Some(k) = &f.key_name_constraint {
        if let Some(p) = &k.match_any_prefix
            && !p.iter().any(|p| key.starts_with(p.as_str()))
        {
            return Ok(false);
        }
        if let Some(s) = &k.match_any_suffix
            && !s.iter().any(|s| key.ends_with(s.as_str()))
        {
            return Ok(false);
        }
    }
    if let Some(a) = &f.created_after
        && modified_ms < time_of(a)?
    {
        return Ok(false);
    }
    if let Some(b) = &f.created_before
        && modified_ms >= time_of(b)?
    {
        return Ok(false);
    }
    if f.object_size_greater_than_bytes.is_some_and(|g| size <= g)
        || f.object_size_less_than_bytes.is_some_and(|l| size >= l)
    {
        return Ok(false);
    }
    if let Some(classes) = &f.match_any_storage_class
        && !classes.iter().any(|c| c == class)
    {
        return Ok(false);
    }
    Ok(true)
}

/// Lists the generator's source bucket through its filter into `sink`, a page at a time; keys
/// are URL-encoded as in a manifest.
pub async fn generate(s3: &Client, job: &CreateJob, sink: Sink<'_>) -> Result<(), EngineError> {
    let g = &job
        .manifest_generator
        .as_ref()
        .ok_or("the job has neither a manifest nor a manifest generator")?
        .s3_job_manifest_generator;
    let bucket = bucket_of_arn(&g.source_bucket);
    let filter = g.filter.clone().unwrap_or_default();
    let prefix = filter
        .key_name_constraint
        .as_ref()
        .and_then(|k| k.match_any_prefix.as_ref())
        .filter(|p| p.len() == 1)
        .map(|p| p[0].clone());
    let mut token: Option<String> = None;
    loop {
        let page = retried(
            "ListObjectsV2",
            &bucket,
            prefix.as_deref().unwrap_or(""),
            || async {
                s3.list_objects_v2()
                    .bucket(&bucket)
                    .set_prefix(prefix.clone())
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_failure(&e))
            },
        )
        .await?;
        for o in page.contents() {
            let key = o.key().unwrap_or_default();
            let modified = o
                .last_modified()
                .map(|t| t.to_millis().unwrap_or(0))
                .unwrap_or(0);
            let class = o.storage_class().map(|c| c.as_str()).unwrap_or("STANDARD");
            if accepts(&filter, key, o.size().unwrap_or(0), modified, class)? {
                sink(Task {
                    bucket: bucket.clone(),
                    key: batch_contract::key::encode_key(key),
                    version: None,
                })?;
            }
        }
        match page
            .next_continuation_token()
            .filter(|_| page.is_truncated() == Some(true))
        {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    Ok(())
}

/// Writes the generated list where the generator asks (an inventory-style `manifest.json`
/// and one gzipped CSV beside it, compressed into the scratch file `scratch` as the tasks stream
/// by); returns its object ARN and ETag.
pub async fn write_generated(
    s3: &Client,
    job: &CreateJob,
    job_id: &str,
    tasks: impl Iterator<Item = std::io::Result<Task>>,
    scratch: &Path,
) -> Result<Option<(String, String)>, EngineError> {
    let Some(g) = job
        .manifest_generator
        .as_ref()
        .map(|g| &g.s3_job_manifest_generator)
    else {
        return Ok(None);
    };
    let Some(out) = g
        .manifest_output_location
        .as_ref()
        .filter(|_| g.enable_manifest_output)
    else {
        return Ok(None);
    };
    let bucket = bucket_of_arn(&out.bucket);
    let base = match out
        .manifest_prefix
        .as_deref()
        .map(|p| p.trim_end_matches('/'))
    {
        Some(p) if !p.is_empty() => format!("{p}/job-{job_id}"),
        _ => format!("job-{job_id}"),
    };
    let file = std::fs::File::create(scratch)?;
    let mut gz = flate2::write::GzEncoder::new(
        batch_contract::md5::HashingWriter::new(std::io::BufWriter::new(file)),
        flate2::Compression::default(),
    );
    for t in tasks {
        let t = t?;
        writeln!(gz, "\"{}\",\"{}\"", t.bucket, t.key)?;
    }
    let (buffered, md5, size) = gz.finish()?.finish();
    buffered.into_inner().map_err(|e| e.into_error())?;
    let data_key = format!("{base}/data/{}.csv.gz", uuid::Uuid::new_v4());
    let manifest = InventoryManifest {
        source_bucket: bucket_of_arn(&g.source_bucket),
        destination_bucket: out.bucket.clone(),
        version: "2021-11-30".into(),
        creation_timestamp: chrono::Utc::now().timestamp_millis().to_string(),
        file_format: "CSV".into(),
        file_schema: "Bucket, Key".into(),
        files: vec![batch_contract::inventory::InventoryFile {
            key: data_key.clone(),
            size,
            md5_checksum: md5,
        }],
    };
    put_file(s3, &bucket, &data_key, scratch).await?;
    let _ = std::fs::remove_file(scratch);
    let manifest_key = format!("{base}/manifest.json");
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let etag = put(s3, &bucket, &manifest_key, body).await?;
    Ok(Some((
        format!("arn:aws:s3:::{bucket}/{manifest_key}"),
        etag,
    )))
}

/// PUTs a small object, retried; returns its ETag (unquoted). Rewriting the same bytes is
/// harmless, so a PUT whose answer was lost is simply sent again.
pub async fn put(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<String, EngineError> {
    let out = retried("PutObject", bucket, key, || async {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.clone().into())
            .send()
            .await
            .map_err(|e| sdk_failure(&e))
    })
    .await?;
    Ok(out.e_tag().unwrap_or("").trim_matches('"').to_string())
}

/// PUTs a file, streamed from disk on each attempt, retried; returns its ETag (unquoted).
pub async fn put_file(
    s3: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
) -> Result<String, EngineError> {
    let out = retried("PutObject", bucket, key, || async {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
            .await
            .map_err(|e| Failure {
                retryable: false,
                detail: format!("reading {}: {e}", path.display()),
            })?;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| sdk_failure(&e))
    })
    .await?;
    Ok(out.e_tag().unwrap_or("").trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tasks_of(bytes: &[u8], fields: &[String]) -> Result<Vec<Task>, EngineError> {
        let mut tasks = Vec::new();
        csv_tasks(bytes, fields, "m.csv", &mut |t| {
            tasks.push(t);
            Ok(())
        })?;
        Ok(tasks)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any manifest bytes: tasks, or a reason naming the manifest and the line.
        #[test]
        fn any_manifest_bytes_are_tasks_or_a_named_line(
            bytes in prop::collection::vec(prop_oneof![any::<u8>(), Just(b','), Just(b'\n'), Just(b'"')], 0..300),
            versions in any::<bool>(),
        ) {
            let fields: Vec<String> = if versions {
                vec!["Bucket".into(), "Key".into(), "VersionId".into()]
            } else {
                vec!["Bucket".into(), "Key".into()]
            };
            if let Err(e) = tasks_of(&bytes, &fields) {
                prop_assert!(e.to_string().contains("m.csv"), "{e}");
            }
        }
    }

    #[test]
    fn csv_rows_follow_the_fields_and_bad_rows_name_the_line() {
        let fields: Vec<String> = ["Bucket", "Key", "VersionId"].map(String::from).to_vec();
        let t = tasks_of(b"b,a%20b.wav,v1\nb,c.wav,null\n", &fields).unwrap();
        assert_eq!(t[0].key, "a%20b.wav");
        assert_eq!(t[1].version.as_deref(), Some("null"));
        let e = tasks_of(b"b,a.wav,v1\nb,c.wav\n", &fields)
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.csv: line 2: 2 fields"), "{e}");
        assert!(split_object_arn("arn:aws:s3:::b").is_err());
        assert_eq!(
            split_object_arn("arn:aws:s3:::b/k/x.csv").unwrap(),
            ("b".into(), "k/x.csv".into())
        );
    }

    #[test]
    fn generator_filters_are_strict_where_the_api_says_so() {
        let f = GeneratorFilter {
            created_before: Some("2024-01-02".into()),
            object_size_greater_than_bytes: Some(100),
            key_name_constraint: Some(batch_contract::job::KeyNameConstraint {
                match_any_prefix: Some(vec!["a/".into()]),
                match_any_suffix: Some(vec![".wav".into()]),
            }),
            ..Default::default()
        };
        let day1 = time_of("2024-01-01T12:00:00Z").unwrap();
        let day2 = time_of("2024-01-02").unwrap();
        assert!(accepts(&f, "a/x.wav", 101, day1, "STANDARD").unwrap());
        assert!(!accepts(&f, "a/x.wav", 100, day1, "STANDARD").unwrap());
        assert!(!accepts(&f, "a/x.wav", 101, day2, "STANDARD").unwrap());
        assert!(!accepts(&f, "b/x.wav", 101, day1, "STANDARD").unwrap());
        assert!(!accepts(&f, "a/x.WAV", 101, day1, "STANDARD").unwrap());
    }
}
