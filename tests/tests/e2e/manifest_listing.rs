//! `manifest-builder manifest` against moto: day-prefix listing with pagination, versions, filters,
//! odd keys, upload with ETag, and the rows decoded by the handler back to the same objects.

use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use batch_contract::event::ResultCode;
use batch_handler::Handler;
use batch_handler::settings::Settings;
use e2e_tests::*;
use futures::StreamExt;
use serde_json::{Value, json};

fn manifest_builder(endpoint: &str) -> Option<Command> {
    let mut c = aws_command(&workspace_binary("manifest-builder")?);
    c.args(["--endpoint-url", endpoint]);
    Some(c)
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("run manifest-builder");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{e}");
    (o, e)
}

/// `manifest-builder --json ARGS` (the binary was checked at the start of the test): its stdout as JSON.
fn json(endpoint: &str, args: &[&str]) -> Value {
    let mut mb = manifest_builder(endpoint).expect("manifest-builder binary");
    let (stdout, stderr) = run(mb.arg("--json").args(args));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_by_day_prefixes_writes_a_versioned_manifest_the_handler_reads_back() {
    let test = "listing_by_day_prefixes";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    if require_binary("manifest-builder", test).is_none() {
        return;
    }
    let mut mb = manifest_builder(&endpoint).expect("binary found");
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "listing", true).await;
    let base = "connect/acme/CallRecordings/";
    let wav = connect_wav(0.25);
    // A busy day: more than one page (1000) of recordings.
    let busy: Vec<String> = (0..1050)
        .map(|i| {
            format!(
                "{base}2024/03/05/{i:05}-c0ffee_20240305T10:{:02}_UTC.wav",
                i % 60
            )
        })
        .collect();
    let odd = [
        format!("{base}2024/03/06/with space+plus%pct:colon_20240306T11:07_UTC.wav"),
        format!("{base}2024/03/06/café-日本語_20240306T12:00_UTC.wav"),
    ];
    let outside = [
        format!("{base}2024/02/28/too-old.wav"),
        format!("{base}2024/03/08/too-new.wav"),
    ];
    let not_wav = format!("{base}2024/03/06/notes.txt");
    let all: Vec<String> = busy
        .iter()
        .chain(odd.iter())
        .chain(outside.iter())
        .cloned()
        .chain([not_wav.clone()])
        .collect();
    futures::stream::iter(all.iter())
        .for_each_concurrent(16, |k| {
            let (s3, bucket, body) = (s3.clone(), bucket.clone(), wav.clone());
            async move {
                s3.put_object()
                    .bucket(&bucket)
                    .key(k)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .expect("put");
            }
        })
        .await;

    let output = format!("s3://{bucket}/manifests/march.csv");
    let (stdout, stderr) = run(mb.args([
        "--json",
        "manifest",
        "--bucket",
        &bucket,
        "--prefix",
        base,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-07",
        "--min-size",
        "0",
        "--output",
        &output,
    ]));
    let summary: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(summary["objects"], 1052, "{summary}");
    assert_eq!(summary["fields"], json!(["Bucket", "Key", "VersionId"]));
    assert_eq!(summary["by_storage_class"]["STANDARD"]["objects"], 1052);
    let part = &summary["manifests"][0];
    assert_eq!(part["location"], output);
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("manifests/march.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(
        part["etag"].as_str(),
        head.e_tag().map(|e| e.trim_matches('"')),
        "ETag recorded without quotes"
    );
    let saved = s3
        .get_object()
        .bucket(&bucket)
        .key("manifests/march.summary.json")
        .send()
        .await
        .unwrap();
    let saved: Value =
        serde_json::from_slice(&saved.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(saved["objects"], 1052);

    let csv = String::from_utf8(get_bytes(&s3, &bucket, "manifests/march.csv").await).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1052);
    assert!(
        rows.iter()
            .all(|r| r.len() == 3 && r[0] == bucket && !r[2].is_empty()),
        "bucket,key,version on every row"
    );
    let keys: Vec<String> = rows
        .iter()
        .map(|r| batch_contract::key::decode_key(r[1]).unwrap())
        .collect();
    for k in busy.iter().chain(odd.iter()) {
        assert!(keys.contains(k), "{k} missing");
    }
    for k in outside.iter().chain([&not_wav]) {
        assert!(!keys.contains(k), "{k} must not be selected");
    }
    assert!(
        rows.iter().all(|r| r[1]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b))),
        "strict encoding"
    );

    // The odd keys' rows, as Batch Operations would pass them, reach the same objects.
    let odd_rows: Vec<(&str, Option<&str>)> = rows
        .iter()
        .filter(|r| r[1].contains("%20") || r[1].contains("%C3"))
        .map(|r| (r[1], Some(r[2])))
        .collect();
    assert_eq!(odd_rows.len(), 2);
    let response = Handler::new(s3.clone(), Settings::default())
        .handle(&event_v1(&bucket, &odd_rows), None)
        .await;
    for r in &response.results {
        assert_eq!(r.result_code, ResultCode::Succeeded, "{}", r.result_string);
        assert!(
            r.result_string.contains("\"converted\""),
            "{}",
            r.result_string
        );
    }

    // --date, dry run: the two converted recordings are GLACIER_IR now, skipped by default...
    let result = json(
        &endpoint,
        &[
            "manifest",
            "--bucket",
            &bucket,
            "--prefix",
            base,
            "--date",
            "2024-03-06",
            "--min-size",
            "0",
            "--dry-run",
        ],
    );
    assert_eq!(result["objects"], 0);
    // ...and selected when that class is asked for; an unversioned view writes no version column.
    let dry = json(
        &endpoint,
        &[
            "manifest",
            "--bucket",
            &bucket,
            "--prefix",
            base,
            "--date",
            "2024-03-06",
            "--min-size",
            "0",
            "--versions",
            "off",
            "--storage-class",
            "GLACIER_IR",
            "--dry-run",
        ],
    );
    assert_eq!(dry["objects"], 2);
    assert_eq!(dry["fields"], json!(["Bucket", "Key"]));
    assert_eq!(dry["manifests"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_and_splitting_on_an_unversioned_bucket() {
    let test = "filters_and_splitting";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    if require_binary("manifest-builder", test).is_none() {
        return;
    }
    let mut mb = manifest_builder(&endpoint).expect("binary found");
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "filters", false).await;
    let big = vec![0u8; 600 * 1024];
    for (key, body, class) in [
        ("r/a.wav", big.clone(), None),
        ("r/b.WAV", big.clone(), None),
        ("r/c.wav", vec![0u8; 1000], None),
        ("r/d.wav", big.clone(), Some("GLACIER_IR")),
        ("r/e.wav", big.clone(), Some("STANDARD_IA")),
        ("r/f.mp3", big.clone(), None),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_storage_class(class.map(Into::into))
            .send()
            .await
            .unwrap();
    }
    let dir = std::env::temp_dir().join(format!("e2e-filters-{}", std::process::id()));
    let out = dir.join("m.csv");
    let (stdout, _) = run(mb
        .args([
            "--json",
            "manifest",
            "--bucket",
            &bucket,
            "--prefix",
            "r/",
            "--max-tasks",
            "2",
            "--output",
        ])
        .arg(&out));
    let s: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        s["objects"], 3,
        "a, b (suffix case-insensitive), e; not c (small), d (GLACIER_IR), f (mp3): {s}"
    );
    assert_eq!(s["scanned"], 6);
    assert_eq!(s["manifests"].as_array().unwrap().len(), 2);
    let first = std::fs::read_to_string(dir.join("m-00001.csv")).unwrap();
    let second = std::fs::read_to_string(dir.join("m-00002.csv")).unwrap();
    assert_eq!(first, format!("{bucket},r/a.wav\n{bucket},r/b.WAV\n"));
    assert_eq!(second, format!("{bucket},r/e.wav\n"));
    assert!(dir.join("m.summary.json").exists());
    let result = json(
        &endpoint,
        &[
            "manifest",
            "--bucket",
            &bucket,
            "--prefix",
            "r/",
            "--storage-class",
            "STANDARD_IA",
            "--dry-run",
        ],
    );
    assert_eq!(result["objects"], 1);
    let result = json(
        &endpoint,
        &[
            "manifest",
            "--bucket",
            &bucket,
            "--prefix",
            "r/",
            "--key-regex",
            "^r/[ab]",
            "--dry-run",
        ],
    );
    assert_eq!(result["objects"], 2);
    // --check-tags drops what already carries the converted tag (one GetObjectTagging each).
    let tag = aws_sdk_s3::types::Tag::builder()
        .key("converted")
        .value("true")
        .build()
        .unwrap();
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(tag)
        .build()
        .unwrap();
    s3.put_object_tagging()
        .bucket(&bucket)
        .key("r/a.wav")
        .tagging(tagging)
        .send()
        .await
        .unwrap();
    let result = json(
        &endpoint,
        &[
            "manifest",
            "--bucket",
            &bucket,
            "--prefix",
            "r/",
            "--key-regex",
            "^r/[ab]",
            "--check-tags",
            "--dry-run",
        ],
    );
    assert_eq!(result["objects"], 1);
}

fn gz(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_csv_gz_all_versions_with_md5_checks_and_clear_errors() {
    let Some(endpoint) = moto_and_binary("inventory_csv_gz", "manifest-builder") else {
        return;
    };
    let s3 = s3_client(&endpoint);
    let inv_bucket = new_bucket(&s3, "inventory", false).await;
    let src = "amazon-connect-0123456789ab";
    // As S3 Inventory writes it: every field quoted, keys URL-encoded with '+' for a space.
    let row = |key: &str, version: &str, latest: &str, delete: &str, size: &str, class: &str| {
        format!(
            "\"{src}\",\"{key}\",\"{version}\",\"{latest}\",\"{delete}\",\"{size}\",\"2024-01-26T03:07:12.000Z\",\"etag\",\"{class}\",\"false\",\"\",\"SSE-KMS\",\"\",\"\",\"\",\"\",\"ENABLED\",\"\"\n"
        )
    };
    let file1 = [
        row(
            "connect/acme/CallRecordings/2024/01/26/a+b_20240126T03%3A07_UTC.wav",
            "v2",
            "true",
            "false",
            "2000000",
            "STANDARD",
        ),
        row(
            "connect/acme/CallRecordings/2024/01/26/a+b_20240126T03%3A07_UTC.wav",
            "v1",
            "false",
            "false",
            "2000000",
            "STANDARD",
        ),
        row(
            "connect/acme/CallRecordings/2024/01/26/null-version.wav",
            "",
            "true",
            "false",
            "3000000",
            "STANDARD",
        ),
        row(
            "connect/acme/CallRecordings/2024/01/26/deleted.wav",
            "v9",
            "true",
            "true",
            "0",
            "STANDARD",
        ),
    ]
    .concat();
    let file2 = [
        row(
            "connect/acme/CallRecordings/2024/01/27/caf%C3%A9.wav",
            "v5",
            "true",
            "false",
            "900000",
            "STANDARD_IA",
        ),
        row(
            "connect/acme/CallRecordings/2024/01/27/small.wav",
            "v6",
            "true",
            "false",
            "1000",
            "STANDARD",
        ),
        row(
            "connect/acme/CallRecordings/2024/01/27/archived.wav",
            "v7",
            "true",
            "false",
            "5000000",
            "GLACIER",
        ),
    ]
    .concat();
    let schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm";
    let base = format!("inv/{src}/all/2024-01-28T01-00Z");
    let mut files = Vec::new();
    for (i, text) in [file1, file2].iter().enumerate() {
        let body = gz(text);
        let key = format!("inv/{src}/all/data/part-{i}.csv.gz");
        files.push(json!({"key": key, "size": body.len(), "MD5checksum": batch_contract::md5::md5_hex(&body)}));
        s3.put_object()
            .bucket(&inv_bucket)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }
    let manifest = json!({"sourceBucket": src, "destinationBucket": format!("arn:aws:s3:::{inv_bucket}"), "version": "2016-11-30",
        "creationTimestamp": "1706403600000", "fileFormat": "CSV", "fileSchema": schema, "files": files});
    let put_manifest = |m: &Value, key: &str| {
        let (s3, b, body, key) = (
            s3.clone(),
            inv_bucket.clone(),
            m.to_string(),
            key.to_string(),
        );
        async move {
            s3.put_object()
                .bucket(&b)
                .key(&key)
                .body(ByteStream::from(body.into_bytes()))
                .send()
                .await
                .unwrap()
        }
    };
    put_manifest(&manifest, &format!("{base}/manifest.json")).await;

    let dir = std::env::temp_dir().join(format!("e2e-inventory-{}", std::process::id()));
    let out = dir.join("from-inventory.csv");
    let mut mb = manifest_builder(&endpoint).unwrap();
    let (stdout, _) = run(mb
        .args([
            "--json",
            "manifest",
            "--inventory",
            &format!("s3://{inv_bucket}/{base}/manifest.json"),
            "--output",
        ])
        .arg(&out));
    let s: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["scanned"], 7);
    assert_eq!(s["objects"], 3, "{s}");
    assert_eq!(s["fields"], json!(["Bucket", "Key", "VersionId"]));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!(
            "{src},connect/acme/CallRecordings/2024/01/26/a%20b_20240126T03%3A07_UTC.wav,v2\n\
             {src},connect/acme/CallRecordings/2024/01/26/null-version.wav,null\n\
             {src},connect/acme/CallRecordings/2024/01/27/caf%C3%A9.wav,v5\n"
        ),
        "current versions only, keys re-encoded strictly, null version written as null, in file order"
    );

    // The same report copied to this machine as `aws s3 sync s3://<inv>/inv/ ./copy/` leaves it:
    // the destination bucket's own layout, `files[].key` still the bucket's keys. The local
    // copy gives the same manifest, says which folder stood for which part of the bucket, and
    // still checks every MD5.
    let copy = dir.join("copy");
    let listed = s3
        .list_objects_v2()
        .bucket(&inv_bucket)
        .prefix("inv/")
        .send()
        .await
        .unwrap();
    for o in listed.contents() {
        let key = o.key().unwrap();
        let body = s3
            .get_object()
            .bucket(&inv_bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let local = copy.join(key.strip_prefix("inv/").unwrap());
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, &body).unwrap();
    }
    let local_manifest = copy.join(format!("{src}/all/2024-01-28T01-00Z/manifest.json"));
    from_local_copy(
        &endpoint,
        &local_manifest,
        &dir.join("from-local-copy.csv"),
        &out,
        &format!(
            "{} standing for the destination bucket's inv/",
            copy.display()
        ),
    );
    let part1 = copy.join(format!("{src}/all/data/part-1.csv.gz"));
    let good = std::fs::read(&part1).unwrap();
    let mut broken = good.clone();
    let last = broken.len() - 1;
    broken[last] ^= 1;
    std::fs::write(&part1, &broken).unwrap();
    let refused = manifest_builder(&endpoint)
        .unwrap()
        .args(["manifest", "--dry-run", "--inventory"])
        .arg(&local_manifest)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("part-1.csv.gz") && err.contains("MD5"),
        "a changed local data file is refused: {err}"
    );
    std::fs::write(&part1, &good).unwrap();
    std::fs::remove_dir_all(copy.join(format!("{src}/all/data"))).unwrap();
    let missing = manifest_builder(&endpoint)
        .unwrap()
        .args(["manifest", "--dry-run", "--inventory"])
        .arg(&local_manifest)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && err.contains("part-0.csv.gz") && err.contains("aws s3 sync"),
        "a missing data file is named, with how to copy the report: {err}"
    );
    // The service reads an inventory report from S3 only: submit refuses a local path before any
    // request (the endpoint below is closed).
    let refused =
        std::process::Command::new(require_binary("manifest-builder", "inventory_csv_gz").unwrap())
            .args([
                "--endpoint-url",
                "http://127.0.0.1:9",
                "--account-id",
                "123456789012",
                "submit",
                "--function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:h",
                "--role-arn",
                "arn:aws:iam::123456789012:role/r",
                "--inventory",
            ])
            .arg(&local_manifest)
            .output()
            .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && err.contains("reads the inventory report from S3")
            && !err.contains("could not reach"),
        "{err}"
    );

    // Bad input: each a one-line error naming the file, non-zero exit, no manifest written.
    let mut bad_md5 = manifest.clone();
    bad_md5["files"][1]["MD5checksum"] = json!("00000000000000000000000000000000");
    put_manifest(&bad_md5, "bad/md5/manifest.json").await;
    let short = gz(&format!("\"{src}\",\"k.wav\"\n"));
    s3.put_object()
        .bucket(&inv_bucket)
        .key("bad/short.csv.gz")
        .body(ByteStream::from(short.clone()))
        .send()
        .await
        .unwrap();
    let mut bad_row = manifest.clone();
    bad_row["files"] = json!([{"key": "bad/short.csv.gz", "size": short.len(), "MD5checksum": batch_contract::md5::md5_hex(&short)}]);
    put_manifest(&bad_row, "bad/row/manifest.json").await;
    s3.put_object()
        .bucket(&inv_bucket)
        .key("bad/json/manifest.json")
        .body(ByteStream::from_static(b"{\"sourceBucket\": 1}"))
        .send()
        .await
        .unwrap();
    for (key, expect) in [
        ("bad/md5/manifest.json", "part-1.csv.gz: MD5"),
        (
            "bad/row/manifest.json",
            "short.csv.gz: row 1: 2 fields, the fileSchema has 18",
        ),
        ("bad/json/manifest.json", "not an S3 Inventory manifest"),
    ] {
        let target = dir.join("bad.csv");
        let outcome = manifest_builder(&endpoint)
            .unwrap()
            .args([
                "manifest",
                "--inventory",
                &format!("s3://{inv_bucket}/{key}"),
                "--output",
            ])
            .arg(&target)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&outcome.stderr);
        assert!(!outcome.status.success(), "{key} should fail");
        assert!(err.contains(expect), "{key}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!target.exists(), "nothing written after an error");
    }
}

/// `manifest --inventory` of a local copy of a report: the same manifest bytes as `from_s3`, and a
/// summary that says which local folder stood for which part of the destination bucket.
fn from_local_copy(
    endpoint: &str,
    manifest: &std::path::Path,
    out: &std::path::Path,
    from_s3: &std::path::Path,
    root: &str,
) {
    let mut mb = manifest_builder(endpoint).unwrap();
    let (stdout, _) = run(mb
        .args(["--json", "manifest", "--inventory"])
        .arg(manifest)
        .arg("--output")
        .arg(out));
    let s: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        std::fs::read(out).unwrap(),
        std::fs::read(from_s3).unwrap(),
        "the local copy gives the same manifest: {s}"
    );
    let source = s["source"].as_str().unwrap();
    assert!(source.contains(root), "{root:?} not in {source}");
}

fn inventory_batch() -> arrow::array::RecordBatch {
    use arrow::array::{
        ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("is_latest", DataType::Boolean, true),
        Field::new("is_delete_marker", DataType::Boolean, true),
        Field::new("size", DataType::Int64, true),
        Field::new(
            "last_modified_date",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("storage_class", DataType::Utf8, true),
    ]));
    let b = "amazon-connect-0123456789ab";
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![b, b, b, b, b])),
        // ORC and Parquet keys are not URL-encoded.
        Arc::new(StringArray::from(vec![
            "calls/a b+c:d.wav",
            "calls/a b+c:d.wav",
            "calls/null.wav",
            "calls/gone.wav",
            "calls/ir.wav",
        ])),
        Arc::new(StringArray::from(vec![
            Some("v2"),
            Some("v1"),
            None,
            Some("v9"),
            Some("v4"),
        ])),
        Arc::new(BooleanArray::from(vec![true, false, true, true, true])),
        Arc::new(BooleanArray::from(vec![false, false, false, true, false])),
        Arc::new(Int64Array::from(vec![
            2_000_000, 2_000_000, 3_000_000, 0, 4_000_000,
        ])),
        Arc::new(
            TimestampMillisecondArray::from(vec![1_706_238_432_000i64; 5]).with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![
            "STANDARD",
            "STANDARD",
            "STANDARD_IA",
            "STANDARD",
            "GLACIER_IR",
        ])),
    ];
    arrow::array::RecordBatch::try_new(schema, cols).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn orc_and_parquet_inventories_give_the_same_manifest() {
    let test = "orc_and_parquet_inventories";
    let Some(endpoint) = moto_endpoint(test) else {
        return;
    };
    if require_binary("manifest-builder", test).is_none() {
        return;
    }
    let s3 = s3_client(&endpoint);
    let bucket = new_bucket(&s3, "columnar", false).await;
    let batch = inventory_batch();
    let mut orc = Vec::new();
    {
        let mut w = orc_rust::ArrowWriterBuilder::new(&mut orc, batch.schema())
            .try_build()
            .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let mut parquet_bytes = Vec::new();
    {
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut parquet_bytes, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let dir = std::env::temp_dir().join(format!("e2e-columnar-{}", std::process::id()));
    for (format, bytes, schema) in [
        (
            "ORC",
            orc,
            "struct<bucket:string,key:string,version_id:string,is_latest:boolean,is_delete_marker:boolean,size:bigint,last_modified_date:timestamp,storage_class:string>",
        ),
        (
            "Parquet",
            parquet_bytes,
            "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary storage_class (UTF8);}",
        ),
    ] {
        let key = format!("inv/{format}/data/part-0.{}", format.to_lowercase());
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await
            .unwrap();
        let manifest = json!({"sourceBucket": "amazon-connect-0123456789ab", "destinationBucket": format!("arn:aws:s3:::{bucket}"), "version": "2016-11-30",
            "creationTimestamp": "1706403600000", "fileFormat": format, "fileSchema": schema,
            "files": [{"key": key, "size": bytes.len(), "MD5checksum": batch_contract::md5::md5_hex(&bytes)}]});
        let mkey = format!("inv/{format}/manifest.json");
        s3.put_object()
            .bucket(&bucket)
            .key(&mkey)
            .body(ByteStream::from(manifest.to_string().into_bytes()))
            .send()
            .await
            .unwrap();
        let out = dir.join(format!("{format}.csv"));
        let mut mb = manifest_builder(&endpoint).unwrap();
        let (stdout, _) = run(mb
            .args([
                "--json",
                "manifest",
                "--inventory",
                &format!("s3://{bucket}/{mkey}"),
                "--output",
            ])
            .arg(&out));
        let s: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            (s["scanned"].as_u64(), s["objects"].as_u64()),
            (Some(5), Some(2)),
            "{format}: {s}"
        );
        assert_eq!(s["oldest"], "2024-01-26T03:07:12+00:00", "{format}");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "amazon-connect-0123456789ab,calls/a%20b%2Bc%3Ad.wav,v2\namazon-connect-0123456789ab,calls/null.wav,null\n",
            "{format}: raw keys encoded once; latest only; null version; GLACIER_IR skipped"
        );
        // A local copy in the destination bucket's layout (`aws s3 sync s3://dest/prefix/ ./x/`):
        // the manifest under <source>/<config>/<date>/, the data under <source>/<config>/data/,
        // `files[].key` the bucket's keys.
        let copy = dir.join(format!("copy-{format}"));
        let cfg = copy.join("amazon-connect-0123456789ab/weekly");
        let data_name = format!(
            "5f1e0b6c-2b1d-4d7e-9a1e-0c6b2d3e4f5a.{}",
            format.to_lowercase()
        );
        std::fs::create_dir_all(cfg.join("data")).unwrap();
        std::fs::create_dir_all(cfg.join("2024-01-28T01-00Z")).unwrap();
        std::fs::write(cfg.join("data").join(&data_name), &bytes).unwrap();
        let mut local = manifest.clone();
        local["files"][0]["key"] = json!(format!(
            "inventory/amazon-connect-0123456789ab/weekly/data/{data_name}"
        ));
        let local_manifest = cfg.join("2024-01-28T01-00Z/manifest.json");
        std::fs::write(&local_manifest, local.to_string()).unwrap();
        from_local_copy(
            &endpoint,
            &local_manifest,
            &dir.join(format!("{format}-local.csv")),
            &out,
            &format!(
                "{} standing for the destination bucket's inventory/",
                copy.display()
            ),
        );
    }
}
