//! Where a job's tasks come from: a CSV manifest, an S3 Inventory manifest, or the manifest
//! generator's own listing. Each is read the way the service reads it; a manifest that cannot be
//! read or parsed fails the job with the reason, naming the object and the line.

use std::io::Read;

use aws_sdk_s3::Client;

use batch_contract::inventory::InventoryManifest;
use batch_contract::job::{CreateJob, GeneratorFilter, ManifestLocation};

use super::retry::{EngineError, Failure, body_failure, retried, sdk_failure};
use super::store::Task;

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

/// The manifest's current ETag (unquoted); CreateJob compares it with the request's.
pub async fn manifest_etag(s3: &Client, loc: &ManifestLocation) -> Result<String, EngineError> {
    let (bucket, key) = split_object_arn(&loc.object_arn)?;
    let head = retried("HeadObject", &bucket, &key, || async {
        s3.head_object()
            .bucket(&bucket)
            .key(&key)
            .set_version_id(loc.object_version_id.clone())
            .send()
            .await
            .map_err(|e| sdk_failure(&e))
    })
    .await?;
    Ok(head.e_tag().unwrap_or("").trim_matches('"').to_string())
}

/// GETs a whole (small) object, retried whole when the call or its body fails; returns the bytes
/// and the ETag.
async fn get(
    s3: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<(Vec<u8>, String), EngineError> {
    retried("GetObject", bucket, key, || async {
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_failure(&e))?;
        let etag = out.e_tag().unwrap_or("").trim_matches('"').to_string();
        let expected = out.content_length();
        let mut body = out.body;
        let mut bytes = Vec::new();
        loop {
            match body.next().await {
                None => break,
                Some(Ok(chunk)) => bytes.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(body_failure(e, bytes.len(), expected)),
            }
        }
        if let Some(n) = expected.filter(|&n| n >= 0 && n as usize != bytes.len()) {
            return Err(Failure {
                retryable: true,
                detail: format!("the body ended after {} of {n} bytes", bytes.len()),
            });
        }
        Ok((bytes, etag))
    })
    .await
}

/// Rows of a `S3BatchOperations_CSV_20180820` manifest, by its `Fields`.
pub fn csv_tasks(bytes: &[u8], fields: &[String], name: &str) -> Result<Vec<Task>, EngineError> {
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
        .from_reader(bytes);
    let mut tasks = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("{name}: line {}: {e}", i + 1))?;
        if rec.len() != fields.len() {
            return Err(EngineError::Invalid(format!(
                "{name}: line {}: {} fields, the manifest's Fields has {}",
                i + 1,
                rec.len(),
                fields.len()
            )));
        }
        let (bucket, key) = (rec[b].to_string(), rec[k].to_string());
        if bucket.is_empty() || key.is_empty() {
            return Err(EngineError::Invalid(format!(
                "{name}: line {}: empty bucket or key",
                i + 1
            )));
        }
        tasks.push(Task {
            bucket,
            key,
            version: v.map(|v| rec[v].to_string()),
        });
    }
    Ok(tasks)
}

/// Reads the job's manifest (pinned by ETag) into tasks.
pub async fn read_manifest(s3: &Client, job: &CreateJob) -> Result<Vec<Task>, EngineError> {
    let m = job.manifest.as_ref().ok_or("the job has no manifest")?;
    let (bucket, key) = split_object_arn(&m.location.object_arn)?;
    let name = format!("s3://{bucket}/{key}");
    let (bytes, etag) = get(s3, &bucket, &key, m.location.object_version_id.as_deref()).await?;
    if etag != m.location.etag.trim_matches('"') {
        return Err(EngineError::Invalid(format!(
            "{name}: ETag {etag} does not match the job's {}; the manifest changed after the job was created",
            m.location.etag
        )));
    }
    match m.spec.format.as_str() {
        "S3BatchOperations_CSV_20180820" => {
            let fields = m
                .spec
                .fields
                .clone()
                .unwrap_or_else(|| vec!["Bucket".into(), "Key".into()]);
            csv_tasks(&bytes, &fields, &name)
        }
        "S3InventoryReport_CSV_20161130" => inventory_tasks(s3, &bytes, &name).await,
        other => Err(EngineError::Invalid(format!(
            "{name}: manifest format {other} is not supported"
        ))),
    }
}

async fn inventory_tasks(
    s3: &Client,
    manifest: &[u8],
    name: &str,
) -> Result<Vec<Task>, EngineError> {
    let inv = InventoryManifest::parse(manifest, name).map_err(|e| e.to_string())?;
    if !inv.file_format.eq_ignore_ascii_case("CSV") {
        return Err(EngineError::Invalid(format!(
            "{name}: Must be a CSV-formatted Amazon S3 Inventory report (this one is {})",
            inv.file_format
        )));
    }
    let cols = inv.csv_columns(name).map_err(|e| e.to_string())?;
    let dest = bucket_of_arn(&inv.destination_bucket);
    let mut tasks = Vec::new();
    for f in &inv.files {
        let (gz, _) = get(s3, &dest, &f.key, None).await?;
        let md5 = batch_contract::md5::md5_hex(&gz);
        if !md5.eq_ignore_ascii_case(&f.md5_checksum) {
            return Err(EngineError::Invalid(format!(
                "s3://{dest}/{}: MD5 {md5} does not match the inventory manifest's {}",
                f.key, f.md5_checksum
            )));
        }
        let mut csv_bytes = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut csv_bytes)
            .map_err(|e| format!("s3://{dest}/{}: {e}", f.key))?;
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&csv_bytes[..]);
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| format!("s3://{dest}/{}: line {}: {e}", f.key, i + 1))?;
            if rec.len() != cols.count {
                return Err(EngineError::Invalid(format!(
                    "s3://{dest}/{}: line {}: {} fields, the fileSchema has {}",
                    f.key,
                    i + 1,
                    rec.len(),
                    cols.count
                )));
            }
            tasks.push(Task {
                bucket: rec[cols.bucket].to_string(),
                key: rec[cols.key].to_string(),
                version: cols
                    .version_id
                    .map(|v| rec[v].to_string())
                    .filter(|v| !v.is_empty()),
            });
        }
    }
    Ok(tasks)
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

/// Lists the generator's source bucket through its filter; keys are URL-encoded as in a manifest.
pub async fn generate(s3: &Client, job: &CreateJob) -> Result<Vec<Task>, EngineError> {
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
    let mut tasks = Vec::new();
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
                tasks.push(Task {
                    bucket: bucket.clone(),
                    key: batch_contract::key::encode_key(key),
                    version: None,
                });
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
    Ok(tasks)
}

/// Writes the generated list where the generator asks (an inventory-style `manifest.json`
/// and one gzipped CSV beside it); returns its object ARN and ETag.
pub async fn write_generated(
    s3: &Client,
    job: &CreateJob,
    job_id: &str,
    tasks: &[Task],
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
    let mut csv_bytes = Vec::new();
    for t in tasks {
        csv_bytes.extend_from_slice(format!("\"{}\",\"{}\"\n", t.bucket, t.key).as_bytes());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &csv_bytes).map_err(|e| e.to_string())?;
    let gz = gz.finish().map_err(|e| e.to_string())?;
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
            size: gz.len() as u64,
            md5_checksum: batch_contract::md5::md5_hex(&gz),
        }],
    };
    put(s3, &bucket, &data_key, gz).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            if let Err(e) = csv_tasks(&bytes, &fields, "m.csv") {
                prop_assert!(e.to_string().contains("m.csv"), "{e}");
            }
        }
    }

    #[test]
    fn csv_rows_follow_the_fields_and_bad_rows_name_the_line() {
        let fields: Vec<String> = ["Bucket", "Key", "VersionId"].map(String::from).to_vec();
        let t = csv_tasks(b"b,a%20b.wav,v1\nb,c.wav,null\n", &fields, "m.csv").unwrap();
        assert_eq!(t[0].key, "a%20b.wav");
        assert_eq!(t[1].version.as_deref(), Some("null"));
        let e = csv_tasks(b"b,a.wav,v1\nb,c.wav\n", &fields, "m.csv")
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
