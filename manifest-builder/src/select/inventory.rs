//! S3 Inventory: the report's `manifest.json` and its columns, read by name from `fileSchema`.
//!
//! Never by position: the optional fields an inventory carries vary per configuration, and only
//! `Bucket, Key` are always first (`s3-batch-ops.md` §4.3). CSV keys are URL-encoded (`+` for a
//! space); ORC and Parquet keys are stored as they are. ORC and Parquet are read with `orc-rust`
//! and `parquet` into Arrow batches, columns looked up by their snake_case names.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, bail};

use crate::manifest::{self, Summary};
use crate::select::{Filter, Recording};

pub use batch_contract::inventory::{Columns, InventoryError, InventoryFile, InventoryManifest};

/// One inventory row as a recording; `Ok(None)` for rows that are not current versions.
pub fn recording(record: &csv::StringRecord, cols: &Columns) -> Result<Option<Recording>, String> {
    if record.len() != cols.count {
        return Err(format!(
            "{} fields, the fileSchema has {}",
            record.len(),
            cols.count
        ));
    }
    let field = |i: Option<usize>| i.map(|i| &record[i]).unwrap_or("");
    if cols.is_latest.is_some() && !field(cols.is_latest).eq_ignore_ascii_case("true") {
        return Ok(None);
    }
    if field(cols.is_delete_marker).eq_ignore_ascii_case("true") {
        return Ok(None);
    }
    let raw_key = &record[cols.key];
    let key = batch_contract::key::decode_key(raw_key).map_err(|e| format!("{e}: {raw_key:?}"))?;
    let size = match field(cols.size) {
        "" => 0,
        s => s
            .parse::<u64>()
            .map_err(|_| format!("Size {s:?} is not a number"))?,
    };
    let last_modified = match field(cols.last_modified) {
        "" => None,
        t => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| format!("LastModifiedDate {t:?} is not an ISO-8601 time"))?
                .timestamp(),
        ),
    };
    let class = field(cols.storage_class);
    Ok(Some(Recording {
        bucket: record[cols.bucket].to_string(),
        key,
        // "All versions" inventories leave the null version's id empty; the manifest says `null`.
        version_id: cols.version_id.map(|i| match &record[i] {
            "" => "null".to_string(),
            v => v.to_string(),
        }),
        size,
        last_modified,
        storage_class: if class.is_empty() {
            "STANDARD".into()
        } else {
            class.to_string()
        },
    }))
}

/// Reads one gzip CSV data file, writes the selected rows (manifest format) to `rows_out`.
///
/// Streams: memory does not depend on the file's size. `name` identifies the file in errors.
///
/// With `md5`, the compressed bytes are checked against it as they are read (a local copy of an
/// inventory: no separate pass over the file); a mismatch fails the scan.
pub fn scan_csv_gz(
    data: &Path,
    name: &str,
    cols: &Columns,
    filter: &Filter,
    rows_out: &Path,
    md5: Option<&str>,
) -> anyhow::Result<Summary> {
    let file = std::fs::File::open(data).with_context(|| format!("opening {}", data.display()))?;
    let file = Md5Reader {
        inner: file,
        hasher: md5::Md5::default(),
        expected: md5.map(str::to_string),
        name: name.to_string(),
    };
    let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file));
    let scanned = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        scope.spawn(move || inflate_into(gz, tx));
        scan_rows(ChannelReader::new(rx), name, cols, filter, rows_out)
    });
    match (scanned, md5) {
        // A damaged file usually stops decoding before its end, where its MD5 is checked: when
        // the MD5 is wrong too, that is the cause to report.
        (Err(e), Some(expected)) => {
            let mut hasher = md5::Md5::default();
            let whole =
                std::fs::File::open(data).and_then(|mut f| std::io::copy(&mut f, &mut hasher));
            match whole.ok().and_then(|_| {
                md5_mismatch(name, &batch_contract::md5::finish_md5_hex(hasher), expected)
            }) {
                Some(mismatch) => Err(anyhow::anyhow!(mismatch)),
                None => Err(e),
            }
        }
        (scanned, _) => scanned,
    }
}

/// The error for a data file whose MD5 is not the inventory manifest's, or `None` when it is.
pub fn md5_mismatch(file: &str, actual: &str, expected: &str) -> Option<String> {
    (!actual.eq_ignore_ascii_case(expected))
        .then(|| format!("{file}: MD5 {actual} does not match the inventory manifest's {expected}"))
}

/// Hashes what it reads; at the end of the file, fails unless the MD5 is the expected one.
struct Md5Reader<R> {
    inner: R,
    hasher: md5::Md5,
    expected: Option<String>,
    name: String,
}

impl<R: std::io::Read> std::io::Read for Md5Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use md5::Digest as _;
        let n = self.inner.read(buf)?;
        let Some(expected) = &self.expected else {
            return Ok(n);
        };
        if n > 0 || buf.is_empty() {
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
        let actual = batch_contract::md5::finish_md5_hex(std::mem::take(&mut self.hasher));
        match md5_mismatch(&self.name, &actual, expected) {
            None => {
                self.expected = None; // checked; later reads at the end just return 0
                Ok(0)
            }
            Some(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

/// Inflates on its own thread, 1 MiB at a time, while the caller parses: inflating and parsing
/// cost about the same, so two cores overlap them even on the last file of a job.
fn inflate_into(
    mut gz: impl std::io::Read,
    tx: std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>,
) {
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        let mut filled = 0;
        while filled < chunk.len() {
            match gz.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        chunk.truncate(filled);
        // A send fails only when the parser stopped (an error of its own): nothing left to do.
        if filled == 0 || tx.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// The parser's side of [`inflate_into`]: the chunks as one byte stream.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    fn new(rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.at = 0;
                }
                Err(_) => return Ok(0), // the inflater finished
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn scan_rows(
    input: impl std::io::Read,
    name: &str,
    cols: &Columns,
    filter: &Filter,
    rows_out: &Path,
) -> anyhow::Result<Summary> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(input);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(rows_out)?);
    let mut summary = Summary::default();
    let mut record = csv::StringRecord::new();
    let mut row = 0u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => bail!("{name}: row {}: {e}", row + 1),
        }
        row += 1;
        summary.scanned += 1;
        let r = match recording(&record, cols) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(reason) => bail!("{name}: row {row}: {reason}"),
        };
        if filter.accepts(&r) {
            manifest::write_row(&mut out, &r, Some(&record[cols.key]))?;
            summary.add(&r);
        } else if filter.archived(&r) {
            summary.add_archived(&r);
        }
    }
    out.flush()?;
    Ok(summary)
}

/// A format an inventory's data files come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// Gzip CSV, keys URL-encoded.
    Csv,
    /// Apache ORC.
    Orc,
    /// Apache Parquet.
    Parquet,
}

impl DataFormat {
    /// From `fileFormat`.
    pub fn from_manifest(m: &InventoryManifest, file: &str) -> Result<Self, InventoryError> {
        match m.file_format.to_ascii_lowercase().as_str() {
            "csv" => Ok(DataFormat::Csv),
            "orc" => Ok(DataFormat::Orc),
            "parquet" => Ok(DataFormat::Parquet),
            other => Err(InventoryError::Manifest {
                file: file.to_string(),
                reason: format!("fileFormat {other:?} is not CSV, ORC or Parquet"),
            }),
        }
    }
}

/// The recordings of one Arrow batch of an ORC or Parquet inventory (current versions only).
pub fn batch_recordings(batch: &arrow::array::RecordBatch) -> Result<Vec<Recording>, String> {
    use arrow::array::{Array, AsArray};
    use arrow::compute::cast;
    use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampSecondType};
    let schema = batch.schema();
    let col = |name: &str| {
        schema
            .fields()
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(name))
            .map(|i| batch.column(i).clone())
    };
    let as_type = |name: &str, t: &DataType| -> Result<Option<arrow::array::ArrayRef>, String> {
        col(name)
            .map(|c| cast(&c, t).map_err(|e| format!("column {name}: {e}")))
            .transpose()
    };
    let utf8 = DataType::Utf8;
    let (Some(bucket), Some(key)) = (as_type("bucket", &utf8)?, as_type("key", &utf8)?) else {
        return Err("no bucket and key columns".into());
    };
    let version = as_type("version_id", &utf8)?;
    let latest = as_type("is_latest", &DataType::Boolean)?;
    let deleted = as_type("is_delete_marker", &DataType::Boolean)?;
    let size = as_type("size", &DataType::Int64)?;
    let modified = as_type(
        "last_modified_date",
        &DataType::Timestamp(TimeUnit::Second, None),
    )?;
    let class = as_type("storage_class", &utf8)?;
    let (bucket, key) = (bucket.as_string::<i32>(), key.as_string::<i32>());
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let flag = |a: &Option<arrow::array::ArrayRef>| {
            a.as_ref()
                .map(|a| a.as_boolean())
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i))
        };
        if latest.is_some() && flag(&latest) != Some(true) {
            continue;
        }
        if flag(&deleted) == Some(true) {
            continue;
        }
        let text = |a: &Option<arrow::array::ArrayRef>| {
            a.as_ref()
                .map(|a| a.as_string::<i32>())
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i).to_string())
        };
        out.push(Recording {
            bucket: bucket.value(i).to_string(),
            key: key.value(i).to_string(),
            version_id: version.as_ref().map(|_| {
                text(&version)
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "null".into())
            }),
            size: size
                .as_ref()
                .map(|a| a.as_primitive::<Int64Type>())
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i).max(0) as u64)
                .unwrap_or(0),
            last_modified: modified
                .as_ref()
                .map(|a| a.as_primitive::<TimestampSecondType>())
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i)),
            storage_class: text(&class)
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "STANDARD".into()),
        });
    }
    Ok(out)
}

/// Reads one ORC or Parquet data file, writes the selected rows (manifest format) to `rows_out`.
pub fn scan_columnar(
    data: &Path,
    format: DataFormat,
    name: &str,
    filter: &Filter,
    rows_out: &Path,
) -> anyhow::Result<Summary> {
    let file = std::fs::File::open(data).with_context(|| format!("opening {}", data.display()))?;
    let batches: Box<
        dyn Iterator<Item = Result<arrow::array::RecordBatch, arrow::error::ArrowError>>,
    > = match format {
        DataFormat::Orc => Box::new(
            orc_rust::ArrowReaderBuilder::try_new(file)
                .map_err(|e| anyhow::anyhow!("{name}: not a readable ORC file: {e}"))?
                .build(),
        ),
        DataFormat::Parquet => Box::new(
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.build())
                .map_err(|e| anyhow::anyhow!("{name}: not a readable Parquet file: {e}"))?,
        ),
        DataFormat::Csv => bail!("{name}: CSV files are read by scan_csv_gz"),
    };
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(rows_out)?);
    let mut summary = Summary::default();
    let mut rows = 0u64;
    for batch in batches {
        let batch = batch.map_err(|e| anyhow::anyhow!("{name}: after row {rows}: {e}"))?;
        summary.scanned += batch.num_rows() as u64;
        for r in batch_recordings(&batch).map_err(|e| {
            anyhow::anyhow!(
                "{name}: rows {}..{}: {e}",
                rows + 1,
                rows + batch.num_rows() as u64
            )
        })? {
            if filter.accepts(&r) {
                out.write_all(manifest::row(&r).as_bytes())?;
                summary.add(&r);
            } else if filter.archived(&r) {
                summary.add_archived(&r);
            }
        }
        rows += batch.num_rows() as u64;
    }
    out.flush()?;
    Ok(summary)
}

/// Copies the rows written by [`scan_csv_gz`] into the manifest writer, in order.
pub fn append_rows(
    rows: &Path,
    summary_rows: u64,
    writer: &mut manifest::Writer,
    has_versions: bool,
) -> anyhow::Result<()> {
    let f = std::fs::File::open(rows).with_context(|| format!("opening {}", rows.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, f);
    if writer.push_block(&mut reader, summary_rows, has_versions)? {
        return Ok(());
    }
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        writer.push_line(&line, has_versions, || line.trim_end().to_string())?;
        line.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any inventory row, against any column layout: a recording, a skip or a reason.
        #[test]
        fn any_inventory_row_is_a_recording_or_a_reason(
            fields in prop::collection::vec(
                prop_oneof!["\\PC{0,12}", "[0-9]{1,12}", Just("true".to_string()),
                            Just("false".to_string()), Just("2024-01-02T03:04:05.000Z".to_string()),
                            "[a-z%+0-9]{0,12}"],
                0..10,
            ),
            schema in prop::sample::select(vec![
                "Bucket, Key, Size, LastModifiedDate, StorageClass",
                "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, StorageClass",
                "Bucket, Key",
            ]),
        ) {
            let inv = InventoryManifest {
                source_bucket: "b".into(),
                destination_bucket: "arn:aws:s3:::d".into(),
                version: "2016-11-30".into(),
                creation_timestamp: "0".into(),
                file_format: "CSV".into(),
                file_schema: schema.into(),
                files: vec![],
            };
            let cols = inv.csv_columns("m").unwrap();
            let record = csv::StringRecord::from(fields);
            if let Err(reason) = recording(&record, &cols) {
                prop_assert!(!reason.is_empty());
            }
        }
    }

    /// F12 (`s3-batch-ops.md` §10).
    const F12: &str = r#"{
      "sourceBucket": "example-source-bucket",
      "destinationBucket": "arn:aws:s3:::example-inventory-destination-bucket",
      "version": "2016-11-30",
      "creationTimestamp": "1514944800000",
      "fileFormat": "CSV",
      "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm",
      "files": [
        {"key": "Inventory/example-source-bucket/2016-11-06T21-32Z/files/939c6d46-85a9-4ba8-87bd-9db705a579ce.csv.gz",
         "size": 2147483647, "MD5checksum": "f11166069f1990abeb9c97ace9cdfabc"}
      ]
    }"#;

    #[test]
    fn f12_inventory_manifest_and_columns_by_name() {
        let m = InventoryManifest::parse(F12.as_bytes(), "manifest.json").unwrap();
        assert_eq!(m.source_bucket, "example-source-bucket");
        assert_eq!(m.file_format, "CSV");
        assert_eq!(m.files[0].size, 2_147_483_647);
        assert_eq!(m.files[0].md5_checksum, "f11166069f1990abeb9c97ace9cdfabc");
        assert!(m.files[0].key.ends_with(".csv.gz"));
        let c = m.csv_columns("manifest.json").unwrap();
        assert_eq!(
            (
                c.bucket,
                c.key,
                c.version_id,
                c.is_latest,
                c.is_delete_marker
            ),
            (0, 1, Some(2), Some(3), Some(4))
        );
        assert_eq!(
            (c.size, c.last_modified, c.storage_class, c.count),
            (Some(5), Some(6), Some(8), 18)
        );
    }

    #[test]
    fn rows_become_current_versions_with_decoded_keys() {
        let m = InventoryManifest::parse(F12.as_bytes(), "m").unwrap();
        let c = m.csv_columns("m").unwrap();
        let rec = |fields: &[&str]| {
            let mut all: Vec<&str> = fields.to_vec();
            all.resize(18, "");
            csv::StringRecord::from(all)
        };
        let r = recording(
            &rec(&[
                "b",
                "AWS+SKO+2015/a%3Ab.wav",
                "",
                "true",
                "false",
                "2048",
                "2024-01-26T03:07:12.000Z",
                "e",
                "STANDARD_IA",
            ]),
            &c,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.key.as_str(), r.version_id.as_deref(), r.size),
            ("AWS SKO 2015/a:b.wav", Some("null"), 2048)
        );
        assert_eq!(
            (r.last_modified, r.storage_class.as_str()),
            (Some(1_706_238_432), "STANDARD_IA")
        );
        assert_eq!(
            recording(&rec(&["b", "k", "v1", "false", "false"]), &c).unwrap(),
            None,
            "not the latest"
        );
        assert_eq!(
            recording(&rec(&["b", "k", "v1", "true", "true"]), &c).unwrap(),
            None,
            "delete marker"
        );
        assert!(
            recording(&rec(&["b", "k%zz", "v", "true", "false"]), &c)
                .unwrap_err()
                .contains("not URL-encoded")
        );
        assert!(
            recording(&rec(&["b", "k", "v", "true", "false", "big"]), &c)
                .unwrap_err()
                .contains("Size \"big\"")
        );
        assert!(
            recording(&csv::StringRecord::from(vec!["b", "k"]), &c)
                .unwrap_err()
                .contains("2 fields, the fileSchema has 18")
        );
    }

    #[test]
    fn a_gzip_file_is_scanned_through_the_inflater_thread_and_its_md5_checked() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("inv-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = InventoryManifest::parse(F12.as_bytes(), "m").unwrap();
        m.file_schema = "Bucket, Key, Size, LastModifiedDate".into();
        let cols = m.csv_columns("m").unwrap();
        // Two gzip members (MultiGzDecoder) and more than one 1 MiB chunk of CSV.
        let mut gz = Vec::new();
        for member in 0..2 {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for i in 0..30_000 {
                let ext = if i % 3 == 0 { "json" } else { "wav" };
                writeln!(
                    e,
                    "\"b\",\"calls/{member}-{i}%3A.{ext}\",\"600000\",\"2024-01-26T03:07:12.000Z\""
                )
                .unwrap();
            }
            gz.extend(e.finish().unwrap());
        }
        let data = dir.join("d.csv.gz");
        std::fs::write(&data, &gz).unwrap();
        let md5 = batch_contract::md5::md5_hex(&gz);
        let rows = dir.join("rows.csv");
        let filter = Filter::default();
        let s = scan_csv_gz(&data, "d.csv.gz", &cols, &filter, &rows, Some(&md5)).unwrap();
        assert_eq!((s.scanned, s.objects), (60_000, 40_000));
        let text = std::fs::read_to_string(&rows).unwrap();
        assert_eq!(text.lines().count(), 40_000);
        assert_eq!(text.lines().next(), Some("b,calls/0-1%3A.wav"));
        assert_eq!(text.lines().last(), Some("b,calls/1-29999%3A.wav"));

        let wrong = "0".repeat(32);
        let e = scan_csv_gz(&data, "d.csv.gz", &cols, &filter, &rows, Some(&wrong))
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.csv.gz: MD5 ") && e.contains(&wrong), "{e}");

        // A corrupt member: the inflater's error reaches the parser with the file's name.
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        bad[mid..mid + 64].fill(0xff);
        std::fs::write(&data, &bad).unwrap();
        let e = scan_csv_gz(&data, "d.csv.gz", &cols, &filter, &rows, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.csv.gz: "), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn current_version_inventories_have_other_positions() {
        let mut m = InventoryManifest::parse(F12.as_bytes(), "m").unwrap();
        m.file_schema = "Bucket, Key, Size, StorageClass, LastModifiedDate".into();
        let c = m.csv_columns("m").unwrap();
        assert_eq!(
            (c.version_id, c.size, c.storage_class, c.last_modified),
            (None, Some(2), Some(3), Some(4))
        );
        m.file_schema = "Size, StorageClass".into();
        assert!(
            m.csv_columns("inv/manifest.json")
                .unwrap_err()
                .to_string()
                .contains("no Bucket and Key")
        );
        let e = InventoryManifest::parse(b"{\"files\": 3}", "inv/manifest.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("inv/manifest.json: not an S3 Inventory manifest"),
            "{e}"
        );
    }
}
