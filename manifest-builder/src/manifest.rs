//! Batch Operations CSV manifests (`S3BatchOperations_CSV_20180820`): no header, every key
//! strictly percent-encoded, `bucket,key[,versionId]` with a version on every row or on none,
//! split by task count, and a summary of what went in.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::location::Location;
use crate::select::Recording;

/// Totals for one storage class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassTotals {
    /// Objects.
    pub objects: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One written manifest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// Where it is.
    pub location: String,
    /// ETag (S3 only), without quotes: what CreateJob pins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Rows.
    pub tasks: u64,
}

/// One selected object, as `doctor` samples it (encryption, legal holds, the longest recording).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sampled {
    /// Key, decoded.
    pub key: String,
    /// Version, when the selection has version ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Bytes.
    pub size: u64,
}

/// Objects kept in the sample of a summary: enough to see a bucket's encryption and holds.
pub const SAMPLE_SIZE: usize = 20;

/// Storage classes that cannot be read without a restore.
pub const ARCHIVE_CLASSES: [&str; 2] = ["GLACIER", "DEEP_ARCHIVE"];

/// FNV-1a of a key: the sample is the objects with the smallest hashes, so it is the same however
/// the selection was split, and spread over the whole selection.
fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a manifest holds, saved beside it as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Where the recordings came from.
    pub source: String,
    /// Objects selected.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Oldest last-modified (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest: Option<String>,
    /// Newest last-modified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
    /// Per storage class.
    pub by_storage_class: BTreeMap<String, ClassTotals>,
    /// Objects seen before filtering.
    pub scanned: u64,
    /// `["Bucket","Key"]` or `["Bucket","Key","VersionId"]`.
    pub fields: Vec<String>,
    /// The manifest files.
    pub manifests: Vec<Part>,
    /// The largest selected object: the longest recording, which the function's timeout must fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest: Option<Sampled>,
    /// Objects seen in archive classes (GLACIER, DEEP_ARCHIVE), never selected: a restore first.
    pub archived: ClassTotals,
    /// A sample of the selection ([`SAMPLE_SIZE`] at most), spread by key hash.
    pub sample: Vec<Sampled>,
    #[serde(skip)]
    oldest_t: Option<i64>,
    #[serde(skip)]
    newest_t: Option<i64>,
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339())
        .unwrap_or_default()
}

impl Summary {
    /// Counts one selected recording.
    pub fn add(&mut self, r: &Recording) {
        self.objects += 1;
        self.bytes += r.size;
        let sampled = Sampled {
            key: r.key.clone(),
            version_id: r.version_id.clone(),
            size: r.size,
        };
        if self.largest.as_ref().is_none_or(|l| r.size > l.size) {
            self.largest = Some(sampled.clone());
        }
        self.offer_sample(sampled);
        if !self.by_storage_class.contains_key(&r.storage_class) {
            self.by_storage_class
                .insert(r.storage_class.clone(), ClassTotals::default());
        }
        let c = self
            .by_storage_class
            .get_mut(&r.storage_class)
            .expect("just inserted");
        c.objects += 1;
        c.bytes += r.size;
        if let Some(t) = r.last_modified {
            if self.oldest_t.is_none_or(|o| t < o) {
                self.oldest_t = Some(t);
                self.oldest = Some(rfc3339(t));
            }
            if self.newest_t.is_none_or(|n| t > n) {
                self.newest_t = Some(t);
                self.newest = Some(rfc3339(t));
            }
        }
    }
}

impl Summary {
    /// Counts an object seen in an archive class (not selected: it needs a restore first).
    pub fn add_archived(&mut self, r: &Recording) {
        if ARCHIVE_CLASSES.contains(&r.storage_class.as_str()) {
            self.archived.objects += 1;
            self.archived.bytes += r.size;
        }
    }

    /// Keeps `s` if it is among the [`SAMPLE_SIZE`] smallest key hashes seen.
    fn offer_sample(&mut self, s: Sampled) {
        let h = key_hash(&s.key);
        if self.sample.len() >= SAMPLE_SIZE && self.sample.iter().all(|o| key_hash(&o.key) <= h) {
            return;
        }
        let at = self
            .sample
            .partition_point(|o| (key_hash(&o.key), &o.key) <= (h, &s.key));
        self.sample.insert(at, s);
        self.sample.truncate(SAMPLE_SIZE);
    }

    /// Adds another summary's totals (one inventory data file's, say).
    pub fn merge(&mut self, other: &Summary) {
        self.objects += other.objects;
        self.bytes += other.bytes;
        self.scanned += other.scanned;
        self.archived.objects += other.archived.objects;
        self.archived.bytes += other.archived.bytes;
        if let Some(l) = &other.largest
            && self.largest.as_ref().is_none_or(|s| l.size > s.size)
        {
            self.largest = Some(l.clone());
        }
        for s in &other.sample {
            self.offer_sample(s.clone());
        }
        for (class, t) in &other.by_storage_class {
            let c = self.by_storage_class.entry(class.clone()).or_default();
            c.objects += t.objects;
            c.bytes += t.bytes;
        }
        if let Some(o) = other
            .oldest_t
            .filter(|&o| self.oldest_t.is_none_or(|s| o < s))
        {
            self.oldest_t = Some(o);
            self.oldest = other.oldest.clone();
        }
        if let Some(n) = other
            .newest_t
            .filter(|&n| self.newest_t.is_none_or(|s| n > s))
        {
            self.newest_t = Some(n);
            self.newest = other.newest.clone();
        }
    }
}

/// One manifest row.
pub fn row(r: &Recording) -> String {
    let mut out = Vec::new();
    write_row(&mut out, r, None).expect("writing to memory");
    String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
}

/// Writes [`row`] of `r` to `out`; `raw_key` is the key as the source spelled it (an inventory's
/// URL-encoded key), copied as it is when that is how [`row`] would write it.
pub fn write_row(
    out: &mut impl std::io::Write,
    r: &Recording,
    raw_key: Option<&str>,
) -> std::io::Result<()> {
    use batch_contract::key::{encode_key, is_encoded_as_written};
    out.write_all(r.bucket.as_bytes())?;
    out.write_all(b",")?;
    match raw_key.filter(|k| is_encoded_as_written(k)) {
        Some(k) => out.write_all(k.as_bytes())?,
        None => out.write_all(encode_key(&r.key).as_bytes())?,
    }
    if let Some(v) = &r.version_id {
        out.write_all(b",")?;
        out.write_all(v.as_bytes())?;
    }
    out.write_all(b"\n")
}

/// Writes manifest parts to local files as recordings arrive (memory does not grow with them).
#[derive(Debug)]
pub struct Writer {
    dir: PathBuf,
    stem: String,
    max_tasks: Option<u64>,
    with_versions: Option<bool>,
    files: Vec<(PathBuf, u64)>,
    current: Option<std::io::BufWriter<std::fs::File>>,
    in_current: u64,
    /// Running totals.
    pub summary: Summary,
}

impl Writer {
    /// Parts go to `dir/stem-NNNNN.csv`.
    pub fn new(
        dir: &Path,
        stem: &str,
        max_tasks: Option<u64>,
        source: String,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Writer {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            max_tasks: max_tasks.filter(|&m| m > 0),
            with_versions: None,
            files: Vec::new(),
            current: None,
            in_current: 0,
            summary: Summary {
                source,
                ..Summary::default()
            },
        })
    }

    /// Adds one selected recording.
    pub fn push(&mut self, r: &Recording) -> anyhow::Result<()> {
        self.push_line(&row(r), r.version_id.is_some(), || {
            format!("s3://{}/{}", r.bucket, r.key)
        })?;
        self.summary.add(r);
        Ok(())
    }

    /// Adds a row already formatted by [`row`] (its totals are the caller's to merge).
    pub fn push_line(
        &mut self,
        line: &str,
        has_version: bool,
        name: impl Fn() -> String,
    ) -> anyhow::Result<()> {
        match self.with_versions {
            None => self.with_versions = Some(has_version),
            Some(w) if w != has_version => bail!(
                "{}: a manifest has a version id on every row or on none",
                name()
            ),
            _ => {}
        }
        if self.current.is_none() || self.max_tasks.is_some_and(|m| self.in_current >= m) {
            self.roll()?;
        }
        let w = self.current.as_mut().expect("open part");
        w.write_all(line.as_bytes())?;
        self.in_current += 1;
        self.files.last_mut().expect("open part").1 += 1;
        Ok(())
    }

    /// Copies `rows` lines already formatted by [`row`] in one piece, when they fit in the
    /// current part (or a new one); returns false, having read nothing, when they must be split.
    pub fn push_block(
        &mut self,
        block: &mut impl std::io::Read,
        rows: u64,
        has_version: bool,
    ) -> anyhow::Result<bool> {
        if rows == 0 || self.with_versions.is_some_and(|w| w != has_version) {
            return Ok(false);
        }
        let room = |in_current| self.max_tasks.is_none_or(|m| in_current + rows <= m);
        if self.current.is_none() || !room(self.in_current) {
            if !room(0) {
                return Ok(false);
            }
            self.roll()?;
        }
        self.with_versions = Some(has_version);
        let w = self.current.as_mut().expect("open part");
        std::io::copy(block, w)?;
        self.in_current += rows;
        self.files.last_mut().expect("open part").1 += rows;
        Ok(true)
    }

    fn roll(&mut self) -> anyhow::Result<()> {
        if let Some(mut w) = self.current.take() {
            w.flush()?;
        }
        let path = self
            .dir
            .join(format!("{}-{:05}.csv", self.stem, self.files.len() + 1));
        let f =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        self.current = Some(std::io::BufWriter::with_capacity(1 << 20, f));
        self.files.push((path, 0));
        self.in_current = 0;
        Ok(())
    }

    /// Closes the parts: their local paths and row counts, and the summary.
    pub fn finish(mut self) -> anyhow::Result<(Vec<(PathBuf, u64)>, Summary)> {
        if let Some(mut w) = self.current.take() {
            w.flush()?;
        }
        let mut s = self.summary;
        s.fields = match self.with_versions {
            Some(true) => vec!["Bucket".into(), "Key".into(), "VersionId".into()],
            _ => vec!["Bucket".into(), "Key".into()],
        };
        Ok((self.files, s))
    }
}

/// Where part `i` of `n` goes: `output` itself when there is one part, else `name-00001.csv`...
pub fn part_location(output: &Location, i: usize, n: usize) -> Location {
    if n <= 1 {
        return output.clone();
    }
    let name = match output {
        Location::S3 { key, .. } => key.rsplit('/').next().unwrap_or("manifest.csv").to_string(),
        Location::Local(p) => p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "manifest.csv".into()),
    };
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name.as_str(), "csv"));
    output.sibling(&format!("{stem}-{:05}.{ext}", i + 1))
}

/// Where the summary of `output` goes: `name.summary.json` beside it.
pub fn summary_location(output: &Location) -> Location {
    beside(output, "summary.json")
}

/// `<stem>.<suffix>` beside the manifest at `output` (its summary, a run's marker).
pub fn beside(output: &Location, suffix: &str) -> Location {
    let name = match output {
        Location::S3 { key, .. } => key.rsplit('/').next().unwrap_or("manifest.csv").to_string(),
        Location::Local(p) => p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let stem = name.rsplit_once('.').map(|(s, _)| s).unwrap_or(&name);
    output.sibling(&format!("{stem}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, version: Option<&str>, size: u64, t: i64, class: &str) -> Recording {
        Recording {
            bucket: "amzn-s3-demo-bucket1".into(),
            key: key.into(),
            version_id: version.map(str::to_string),
            size,
            last_modified: Some(t),
            storage_class: class.into(),
        }
    }

    #[test]
    fn the_sample_and_the_largest_do_not_depend_on_how_the_selection_was_split() {
        let recs: Vec<Recording> = (0..200)
            .map(|i: u64| {
                rec(
                    &format!("r/{i}.wav"),
                    None,
                    1000 + (i * 37 % 101),
                    i as i64,
                    "STANDARD",
                )
            })
            .collect();
        let mut whole = Summary::default();
        recs.iter().for_each(|r| whole.add(r));
        let (mut a, mut b) = (Summary::default(), Summary::default());
        recs[..77].iter().for_each(|r| a.add(r));
        recs[77..].iter().for_each(|r| b.add(r));
        a.merge(&b);
        assert_eq!(whole.sample.len(), SAMPLE_SIZE);
        assert_eq!(a.sample, whole.sample);
        assert_eq!(a.largest, whole.largest);
        assert_eq!(whole.largest.as_ref().unwrap().size, 1100);
        let mut keys: Vec<&str> = whole.sample.iter().map(|s| s.key.as_str()).collect();
        keys.dedup();
        assert_eq!(keys.len(), SAMPLE_SIZE, "no object twice");
        let mut archived = Summary::default();
        archived.add_archived(&rec("r/cold.wav", None, 5, 0, "DEEP_ARCHIVE"));
        archived.add_archived(&rec("r/warm.wav", None, 5, 0, "STANDARD"));
        assert_eq!((archived.archived.objects, archived.archived.bytes), (1, 5));
    }

    #[test]
    fn blocks_go_in_whole_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("mf-block-{}", std::process::id()));
        let mut w = Writer::new(&dir, "m", Some(3), "test".into()).unwrap();
        let block = |n: usize| (0..n).map(|i| format!("b,k{i}.wav\n")).collect::<String>();
        assert!(w.push_block(&mut block(2).as_bytes(), 2, false).unwrap());
        // 2 + 2 > 3: a new part takes the block.
        assert!(w.push_block(&mut block(2).as_bytes(), 2, false).unwrap());
        // 4 rows never fit a part of 3: the caller splits them line by line.
        let four = block(4);
        assert!(!w.push_block(&mut four.as_bytes(), 4, false).unwrap());
        // Versioned rows after unversioned ones are refused here too.
        assert!(!w.push_block(&mut block(1).as_bytes(), 1, true).unwrap());
        assert!(w.push_block(&mut block(1).as_bytes(), 1, false).unwrap());
        let (files, _) = w.finish().unwrap();
        assert_eq!(files.iter().map(|f| f.1).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(
            std::fs::read_to_string(&files[1].0).unwrap(),
            "b,k0.wav\nb,k1.wav\nb,k0.wav\n"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn rows_are_strictly_encoded_without_header() {
        assert_eq!(
            row(&rec("object key with spaces", None, 1, 0, "STANDARD")),
            "amzn-s3-demo-bucket1,object%20key%20with%20spaces\n"
        );
        assert_eq!(
            row(&rec(
                "photos/jpgs/newjersey/objectkey5",
                Some("imHf3FAiRsvBW_EHB8GOu.NHunHO1gVs"),
                1,
                0,
                "STANDARD"
            )),
            "amzn-s3-demo-bucket1,photos/jpgs/newjersey/objectkey5,imHf3FAiRsvBW_EHB8GOu.NHunHO1gVs\n"
        );
        assert_eq!(
            row(&rec("c/a+b,c:d.wav", Some("null"), 1, 0, "STANDARD")),
            "amzn-s3-demo-bucket1,c/a%2Bb%2Cc%3Ad.wav,null\n"
        );
        // From an inventory: the key as it was spelled there, copied only when it is our spelling.
        let r = rec("a b:c.wav", None, 1, 0, "STANDARD");
        for raw in ["a%20b%3Ac.wav", "a+b%3ac.wav", "a%20b:c.wav"] {
            let mut out = Vec::new();
            write_row(&mut out, &r, Some(raw)).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), row(&r), "{raw}");
        }
    }

    #[test]
    fn split_by_tasks_with_totals() {
        let dir = std::env::temp_dir().join(format!("mb-writer-{}", std::process::id()));
        let mut w = Writer::new(&dir, "m", Some(2), "test".into()).unwrap();
        for (i, class) in [
            "STANDARD",
            "STANDARD",
            "STANDARD_IA",
            "STANDARD",
            "STANDARD",
        ]
        .iter()
        .enumerate()
        {
            w.push(&rec(
                &format!("k{i}.wav"),
                None,
                10 * (i as u64 + 1),
                1_700_000_000 + i as i64,
                class,
            ))
            .unwrap();
        }
        let err = w
            .push(&rec("v.wav", Some("1"), 1, 0, "STANDARD"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("version id on every row or on none"), "{err}");
        let (files, s) = w.finish().unwrap();
        assert_eq!(files.iter().map(|f| f.1).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert_eq!(
            std::fs::read_to_string(&files[2].0).unwrap(),
            "amzn-s3-demo-bucket1,k4.wav\n"
        );
        assert_eq!((s.objects, s.bytes), (5, 150));
        assert_eq!(
            s.by_storage_class["STANDARD_IA"],
            ClassTotals {
                objects: 1,
                bytes: 30
            }
        );
        assert_eq!(s.oldest.as_deref(), Some("2023-11-14T22:13:20+00:00"));
        assert_eq!(s.fields, vec!["Bucket", "Key"]);
        let out: Location = "s3://b/jobs/manifest.csv".parse().unwrap();
        assert_eq!(
            part_location(&out, 0, 1).to_string(),
            "s3://b/jobs/manifest.csv"
        );
        assert_eq!(
            part_location(&out, 2, 3).to_string(),
            "s3://b/jobs/manifest-00003.csv"
        );
        assert_eq!(
            summary_location(&out).to_string(),
            "s3://b/jobs/manifest.summary.json"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
