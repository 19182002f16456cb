//! The embedded S3's objects on disk, versioned as S3 versions them: buckets with a versioning
//! state, every key kept verbatim (never mapped onto a path), each version a blob file named by a
//! random id, and the index of versions in an append-only journal replayed at start.
//!
//! Crash safety: a blob is written to `tmp/` and renamed into `blobs/` before its journal line is
//! appended, and the index changes only after that line is written, so a process killed at any
//! point leaves either the previous state or the complete new one (a half-written last line is
//! ignored on replay; blobs no line names are removed). The page cache keeps what a killed process
//! wrote; surviving power loss would need fsyncs this local default does not pay for.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The longest key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// What went wrong, named as S3 names it (the S3 layer maps each onto its error code).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such bucket.
    #[error("the bucket {0} does not exist")]
    NoSuchBucket(String),
    /// The bucket exists already.
    #[error("the bucket {0} exists already")]
    BucketExists(String),
    /// A bucket with versions left cannot be deleted.
    #[error("the bucket {0} is not empty")]
    BucketNotEmpty(String),
    /// No current object under the key (`delete_marker` is the marker's version id when the key's
    /// latest version is a delete marker).
    #[error("no object {key} in {bucket}")]
    NoSuchKey {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The delete marker that hides it, if one does.
        delete_marker: Option<String>,
    },
    /// The version id names no version of the key.
    #[error("no version {version} of {key}")]
    NoSuchVersion {
        /// Key.
        key: String,
        /// The version id asked for.
        version: String,
    },
    /// The version is a delete marker, which has no body or tags.
    #[error("version {0} is a delete marker")]
    DeleteMarker(String),
    /// A conditional write or read whose condition does not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The key is longer than S3 allows.
    #[error("the key has {0} bytes; S3 allows {MAX_KEY_BYTES}")]
    KeyTooLong(usize),
    /// Not something S3 accepts.
    #[error("{0}")]
    Invalid(String),
    /// No such multipart upload.
    #[error("no multipart upload {0}")]
    NoSuchUpload(String),
    /// The disk.
    #[error("{what}: {source}")]
    Io {
        /// What the store was doing.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Io { what, source }
}

/// A bucket's versioning state, as GetBucketVersioning reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Never versioned: one `null` version per key.
    Unversioned,
    /// Every write makes a new version.
    Enabled,
    /// Writes replace the `null` version; older versions are kept.
    Suspended,
}

/// What is stored with a version besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `x-amz-meta-*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    /// Object tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Storage class; `None` is STANDARD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `x-amz-server-side-encryption`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<String>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
    /// Checksums computed on upload, by algorithm (`CRC32`, `CRC32C`, `SHA1`, `SHA256`,
    /// `CRC64NVME`), base64 as S3 returns them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
}

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// `null` for versions written while the bucket was not versioning.
    pub id: String,
    /// A delete marker has no bytes.
    #[serde(default)]
    pub delete_marker: bool,
    /// The ETag without quotes.
    pub etag: String,
    /// Bytes.
    pub size: u64,
    /// Milliseconds since the epoch.
    pub modified_ms: i64,
    /// The blob file's name; empty for a delete marker.
    pub blob: String,
    /// Headers, tags, class, checksums.
    #[serde(default)]
    pub meta: Meta,
}

/// The id of versions written while a bucket is not versioning.
pub const NULL: &str = "null";

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op")]
#[allow(clippy::large_enum_variant)] // one short-lived record per change
enum Record {
    Bucket {
        name: String,
        created_ms: i64,
    },
    DropBucket {
        name: String,
    },
    Versioning {
        bucket: String,
        status: Versioning,
    },
    /// Adds a version as the latest; a `null` one replaces the key's earlier `null` version.
    Put {
        bucket: String,
        key: String,
        version: Version,
    },
    Remove {
        bucket: String,
        key: String,
        id: String,
    },
    Tags {
        bucket: String,
        key: String,
        id: String,
        tags: BTreeMap<String, String>,
    },
}

#[derive(Debug)]
struct Bucket {
    created_ms: i64,
    versioning: Versioning,
    /// Versions per key, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
}

/// A multipart upload in progress (kept in memory: a restart forgets it, as an aborted upload).
#[derive(Debug, Clone)]
pub struct Upload {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// What the object will carry.
    pub meta: Meta,
    /// When it was started.
    pub initiated_ms: i64,
    /// Uploaded parts by number: (ETag without quotes, size, modified).
    pub parts: BTreeMap<i32, (String, u64, i64)>,
}

struct Inner {
    buckets: BTreeMap<String, Bucket>,
    journal: File,
    uploads: HashMap<String, Upload>,
}

/// The store: one per server.
pub struct Store {
    root: PathBuf,
    inner: Mutex<Inner>,
}

/// What a write requires of the key's current object.
#[derive(Debug, Clone, Default)]
pub struct WriteCondition {
    /// `If-Match`: the current object's ETag (without quotes), or `*` for any.
    pub if_match: Option<String>,
    /// `If-None-Match: *`: no current object.
    pub if_none_match_any: bool,
}

/// A write's new version, before it has an id.
#[derive(Debug, Clone)]
pub struct Draft {
    /// ETag without quotes.
    pub etag: String,
    /// Bytes.
    pub size: u64,
    /// Headers, tags, class, checksums.
    pub meta: Meta,
}

/// What a DELETE did.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    /// The version created (a marker) or removed.
    pub version_id: Option<String>,
    /// Whether that version is a delete marker.
    pub delete_marker: bool,
}

/// A listing request over keys in order.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Skip keys (and common prefixes) up to and including this one.
    pub after: Option<String>,
    /// For versions: skip the versions of `after` up to and including this id (`None`: all).
    pub after_version: Option<String>,
    /// Entries (objects or versions plus common prefixes) per page.
    pub max: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// (key, version, is latest), in key order, newest version first.
    pub entries: Vec<(String, Version, bool)>,
    /// Common prefixes, in order.
    pub prefixes: Vec<String>,
    /// Whether more follow.
    pub truncated: bool,
    /// The last key or prefix of the page, to continue after.
    pub next: Option<String>,
    /// The last version id of the page, for a versions listing.
    pub next_version: Option<String>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh id for a blob, an upload or a version (32 hex digits, like S3's opaque ids).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Refuses what S3 refuses as a key.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::Invalid("an object key cannot be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::KeyTooLong(key.len()));
    }
    Ok(())
}

impl Bucket {
    fn apply_put(&mut self, key: &str, version: Version) -> Option<Version> {
        let list = self.keys.entry(key.to_string()).or_default();
        let replaced = if version.id == NULL {
            list.iter()
                .position(|v| v.id == NULL)
                .map(|i| list.remove(i))
        } else {
            None
        };
        list.push(version);
        replaced
    }

    fn apply_remove(&mut self, key: &str, id: &str) -> Option<Version> {
        let list = self.keys.get_mut(key)?;
        let i = list.iter().position(|v| v.id == id)?;
        let gone = list.remove(i);
        if list.is_empty() {
            self.keys.remove(key);
        }
        Some(gone)
    }

    fn latest(&self, key: &str) -> Option<&Version> {
        self.keys.get(key).and_then(|l| l.last())
    }

    fn current(&self, key: &str) -> Option<&Version> {
        self.latest(key).filter(|v| !v.delete_marker)
    }
}

impl Inner {
    fn bucket(&self, name: &str) -> Result<&Bucket, StoreError> {
        self.buckets
            .get(name)
            .ok_or_else(|| StoreError::NoSuchBucket(name.to_string()))
    }

    /// Writes the record, then applies it: the index never shows what the journal lacks.
    fn commit(&mut self, record: &Record) -> Result<Option<Version>, StoreError> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| StoreError::Invalid(format!("journal record: {e}")))?;
        line.push(b'\n');
        self.journal
            .write_all(&line)
            .map_err(io("appending to the journal"))?;
        Ok(apply(&mut self.buckets, record))
    }
}

fn apply(buckets: &mut BTreeMap<String, Bucket>, record: &Record) -> Option<Version> {
    match record {
        Record::Bucket { name, created_ms } => {
            buckets.entry(name.clone()).or_insert(Bucket {
                created_ms: *created_ms,
                versioning: Versioning::Unversioned,
                keys: BTreeMap::new(),
            });
            None
        }
        Record::DropBucket { name } => {
            buckets.remove(name);
            None
        }
        Record::Versioning { bucket, status } => {
            if let Some(b) = buckets.get_mut(bucket) {
                b.versioning = *status;
            }
            None
        }
        Record::Put {
            bucket,
            key,
            version,
        } => buckets
            .get_mut(bucket)
            .and_then(|b| b.apply_put(key, version.clone())),
        Record::Remove { bucket, key, id } => buckets
            .get_mut(bucket)
            .and_then(|b| b.apply_remove(key, id)),
        Record::Tags {
            bucket,
            key,
            id,
            tags,
        } => {
            if let Some(v) = buckets
                .get_mut(bucket)
                .and_then(|b| b.keys.get_mut(key))
                .and_then(|l| l.iter_mut().find(|v| &v.id == id))
            {
                v.meta.tags = tags.clone();
            }
            None
        }
    }
}

impl Store {
    /// Opens (or creates) the store under `root`: replays the journal, rewrites it compacted,
    /// and removes what an interrupted write left behind.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for d in ["blobs", "tmp", "parts"] {
            fs::create_dir_all(root.join(d)).map_err(io(format!("creating {d}/")))?;
        }
        let journal_path = root.join("journal.jsonl");
        let mut buckets = BTreeMap::new();
        if let Ok(f) = File::open(&journal_path) {
            for line in BufReader::new(f).split(b'\n') {
                let line = line.map_err(io("reading the journal"))?;
                // A line cut by a kill is the write that never happened.
                if let Ok(record) = serde_json::from_slice::<Record>(&line) {
                    apply(&mut buckets, &record);
                }
            }
        }
        let compacted = root.join("journal.jsonl.new");
        {
            let mut w = std::io::BufWriter::new(
                File::create(&compacted).map_err(io("writing the journal"))?,
            );
            let mut put = |r: &Record| -> Result<(), StoreError> {
                let mut line = serde_json::to_vec(r)
                    .map_err(|e| StoreError::Invalid(format!("journal record: {e}")))?;
                line.push(b'\n');
                w.write_all(&line).map_err(io("writing the journal"))
            };
            for (name, b) in &buckets {
                put(&Record::Bucket {
                    name: name.clone(),
                    created_ms: b.created_ms,
                })?;
                if b.versioning != Versioning::Unversioned {
                    put(&Record::Versioning {
                        bucket: name.clone(),
                        status: b.versioning,
                    })?;
                }
                for (key, versions) in &b.keys {
                    for v in versions {
                        put(&Record::Put {
                            bucket: name.clone(),
                            key: key.clone(),
                            version: v.clone(),
                        })?;
                    }
                }
            }
            w.flush().map_err(io("writing the journal"))?;
        }
        fs::rename(&compacted, &journal_path).map_err(io("replacing the journal"))?;
        let live: std::collections::HashSet<&str> = buckets
            .values()
            .flat_map(|b| b.keys.values().flatten())
            .map(|v| v.blob.as_str())
            .collect();
        for entry in fs::read_dir(root.join("blobs")).map_err(io("listing blobs/"))? {
            let entry = entry.map_err(io("listing blobs/"))?;
            if !live.contains(entry.file_name().to_string_lossy().as_ref()) {
                let _ = fs::remove_file(entry.path());
            }
        }
        for d in ["tmp", "parts"] {
            let _ = fs::remove_dir_all(root.join(d));
            fs::create_dir_all(root.join(d)).map_err(io(format!("creating {d}/")))?;
        }
        let journal = OpenOptions::new()
            .append(true)
            .open(&journal_path)
            .map_err(io("opening the journal"))?;
        Ok(Store {
            root: root.to_path_buf(),
            inner: Mutex::new(Inner {
                buckets,
                journal,
                uploads: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the index half-changed: every change is one `apply`.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new file in `tmp/` for a body being received.
    pub fn temp_path(&self) -> PathBuf {
        self.root.join("tmp").join(new_id())
    }

    fn blob_path(&self, blob: &str) -> PathBuf {
        self.root.join("blobs").join(blob)
    }

    fn part_path(&self, upload: &str, part: i32) -> PathBuf {
        self.root.join("parts").join(format!("{upload}.{part}"))
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.buckets.contains_key(name) {
            return Err(StoreError::BucketExists(name.to_string()));
        }
        inner.commit(&Record::Bucket {
            name: name.to_string(),
            created_ms: now_ms(),
        })?;
        Ok(())
    }

    /// Deletes an empty bucket.
    pub fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if !inner.bucket(name)?.keys.is_empty() {
            return Err(StoreError::BucketNotEmpty(name.to_string()));
        }
        inner.commit(&Record::DropBucket {
            name: name.to_string(),
        })?;
        Ok(())
    }

    /// Buckets with their creation times.
    pub fn buckets(&self) -> Vec<(String, i64)> {
        let inner = self.lock();
        inner
            .buckets
            .iter()
            .map(|(n, b)| (n.clone(), b.created_ms))
            .collect()
    }

    /// The bucket's versioning state.
    pub fn versioning(&self, bucket: &str) -> Result<Versioning, StoreError> {
        Ok(self.lock().bucket(bucket)?.versioning)
    }

    /// Enables or suspends versioning (a bucket never returns to unversioned).
    pub fn set_versioning(&self, bucket: &str, status: Versioning) -> Result<(), StoreError> {
        if status == Versioning::Unversioned {
            return Err(StoreError::Invalid(
                "versioning can be Enabled or Suspended".into(),
            ));
        }
        let mut inner = self.lock();
        inner.bucket(bucket)?;
        inner.commit(&Record::Versioning {
            bucket: bucket.to_string(),
            status,
        })?;
        Ok(())
    }

    /// Fails unless the bucket exists (before a body is received for it).
    pub fn check_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        self.lock().bucket(bucket).map(|_| ())
    }

    /// Makes the received file at `temp` the key's new version if `cond` holds of its current
    /// object, checked and applied under one lock so two conditional writes cannot both win.
    pub fn commit_write(
        &self,
        bucket: &str,
        key: &str,
        temp: &Path,
        draft: Draft,
        cond: &WriteCondition,
    ) -> Result<Version, StoreError> {
        let outcome = self.commit_write_locked(bucket, key, temp, draft, cond);
        if outcome.is_err() {
            let _ = fs::remove_file(temp);
        }
        outcome
    }

    fn commit_write_locked(
        &self,
        bucket: &str,
        key: &str,
        temp: &Path,
        draft: Draft,
        cond: &WriteCondition,
    ) -> Result<Version, StoreError> {
        check_key(key)?;
        let mut inner = self.lock();
        let b = inner.bucket(bucket)?;
        let current = b.current(key);
        if cond.if_none_match_any && current.is_some() {
            return Err(StoreError::PreconditionFailed(format!(
                "If-None-Match: * but {key} exists"
            )));
        }
        if let Some(want) = &cond.if_match {
            match current {
                None => {
                    return Err(StoreError::NoSuchKey {
                        bucket: bucket.to_string(),
                        key: key.to_string(),
                        delete_marker: None,
                    });
                }
                Some(v) if want != "*" && *want != v.etag => {
                    return Err(StoreError::PreconditionFailed(format!(
                        "If-Match {want:?} but the current ETag of {key} is {:?}",
                        v.etag
                    )));
                }
                Some(_) => {}
            }
        }
        let id = match b.versioning {
            Versioning::Enabled => new_id(),
            _ => NULL.to_string(),
        };
        let blob = new_id();
        fs::rename(temp, self.blob_path(&blob)).map_err(io("moving the body into blobs/"))?;
        let version = Version {
            id,
            delete_marker: false,
            etag: draft.etag,
            size: draft.size,
            modified_ms: now_ms(),
            blob,
            meta: draft.meta,
        };
        let record = Record::Put {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version: version.clone(),
        };
        match inner.commit(&record) {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    self.drop_blob(&old);
                }
                Ok(version)
            }
            Err(e) => {
                let _ = fs::remove_file(self.blob_path(&version.blob));
                Err(e)
            }
        }
    }

    fn drop_blob(&self, v: &Version) {
        if !v.blob.is_empty() {
            // Readers that opened it keep reading it: unlinking does not close their files.
            let _ = fs::remove_file(self.blob_path(&v.blob));
        }
    }

    fn find<'a>(
        b: &'a Bucket,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<&'a Version, StoreError> {
        match version {
            None => match b.latest(key) {
                Some(v) if v.delete_marker => Err(StoreError::NoSuchKey {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    delete_marker: Some(v.id.clone()),
                }),
                Some(v) => Ok(v),
                None => Err(StoreError::NoSuchKey {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    delete_marker: None,
                }),
            },
            Some(id) => b
                .keys
                .get(key)
                .and_then(|l| l.iter().find(|v| v.id == id))
                .ok_or_else(|| StoreError::NoSuchVersion {
                    key: key.to_string(),
                    version: id.to_string(),
                }),
        }
    }

    /// The version (the current one without an id), with whether it is the latest.
    pub fn head(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(Version, bool), StoreError> {
        let inner = self.lock();
        let b = inner.bucket(bucket)?;
        let v = Self::find(b, bucket, key, version)?;
        let latest = b.latest(key).is_some_and(|l| l.id == v.id);
        Ok((v.clone(), latest))
    }

    /// The version and its bytes, opened under the lock so body and ETag always agree.
    pub fn open_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(Version, File), StoreError> {
        let inner = self.lock();
        let b = inner.bucket(bucket)?;
        let v = Self::find(b, bucket, key, version)?;
        if v.delete_marker {
            return Err(StoreError::DeleteMarker(v.id.clone()));
        }
        let file = File::open(self.blob_path(&v.blob)).map_err(io(format!("opening {key}")))?;
        Ok((v.clone(), file))
    }

    /// DELETE as S3 does it: with a version id, removes that version; without one, removes the
    /// object (unversioned) or adds a delete marker (versioned; `null` while suspended).
    pub fn delete(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Deleted, StoreError> {
        let mut inner = self.lock();
        let b = inner.bucket(bucket)?;
        let versioning = b.versioning;
        let record = match version {
            Some(id) => {
                let Some(v) = b.keys.get(key).and_then(|l| l.iter().find(|v| v.id == id)) else {
                    // S3 answers 204 for a version that is not there.
                    return Ok(Deleted {
                        version_id: Some(id.to_string()),
                        delete_marker: false,
                    });
                };
                let marker = v.delete_marker;
                let rec = Record::Remove {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    id: id.to_string(),
                };
                let gone = inner.commit(&rec)?;
                if let Some(g) = gone {
                    self.drop_blob(&g);
                }
                return Ok(Deleted {
                    version_id: Some(id.to_string()),
                    delete_marker: marker,
                });
            }
            None if versioning == Versioning::Unversioned => {
                if b.latest(key).is_none() {
                    return Ok(Deleted {
                        version_id: None,
                        delete_marker: false,
                    });
                }
                Record::Remove {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    id: NULL.to_string(),
                }
            }
            None => Record::Put {
                bucket: bucket.to_string(),
                key: key.to_string(),
                version: Version {
                    id: if versioning == Versioning::Enabled {
                        new_id()
                    } else {
                        NULL.to_string()
                    },
                    delete_marker: true,
                    etag: String::new(),
                    size: 0,
                    modified_ms: now_ms(),
                    blob: String::new(),
                    meta: Meta::default(),
                },
            },
        };
        let gone = inner.commit(&record)?;
        if let Some(g) = gone {
            self.drop_blob(&g);
        }
        Ok(match record {
            Record::Put { version, .. } => Deleted {
                version_id: Some(version.id),
                delete_marker: true,
            },
            _ => Deleted {
                version_id: None,
                delete_marker: false,
            },
        })
    }

    /// Replaces a version's tags; returns its id.
    pub fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Result<String, StoreError> {
        let mut inner = self.lock();
        let b = inner.bucket(bucket)?;
        let v = Self::find(b, bucket, key, version)?;
        if v.delete_marker {
            return Err(StoreError::DeleteMarker(v.id.clone()));
        }
        let id = v.id.clone();
        inner.commit(&Record::Tags {
            bucket: bucket.to_string(),
            key: key.to_string(),
            id: id.clone(),
            tags,
        })?;
        Ok(id)
    }

    /// A page of current objects (ListObjects, ListObjectsV2).
    pub fn list(&self, bucket: &str, q: &ListQuery) -> Result<Listing, StoreError> {
        let inner = self.lock();
        let b = inner.bucket(bucket)?;
        let mut page = Listing::default();
        let mut count = 0;
        for (key, versions) in keys_from(b, q) {
            let Some(v) = versions.last().filter(|v| !v.delete_marker) else {
                continue;
            };
            let item = match rolled_up(key, q) {
                Some(cp) if q.after.as_deref().is_some_and(|a| cp.as_str() <= a) => continue,
                Some(cp) if page.prefixes.last() == Some(&cp) => continue,
                other => other,
            };
            if count == q.max {
                page.truncated = true;
                break;
            }
            count += 1;
            match item {
                Some(cp) => {
                    page.next = Some(cp.clone());
                    page.prefixes.push(cp);
                }
                None => {
                    page.next = Some(key.clone());
                    page.entries.push((key.clone(), v.clone(), true));
                }
            }
        }
        if !page.truncated {
            page.next = None;
        }
        Ok(page)
    }

    /// A page of versions and delete markers (ListObjectVersions), newest first per key.
    pub fn list_versions(&self, bucket: &str, q: &ListQuery) -> Result<Listing, StoreError> {
        let inner = self.lock();
        let b = inner.bucket(bucket)?;
        let mut page = Listing::default();
        let mut count = 0;
        let mut q_keys = q.clone();
        // Versions of the marker key after the marker version are still to come.
        if q.after_version.is_some() {
            q_keys.after = None;
        }
        'keys: for (key, versions) in keys_from(b, &q_keys) {
            if let Some(after) = &q.after
                && key.as_str() < after.as_str()
            {
                continue;
            }
            let item = match rolled_up(key, q) {
                Some(cp) if q.after.as_deref().is_some_and(|a| cp.as_str() <= a) => continue,
                Some(cp) if page.prefixes.last() == Some(&cp) => continue,
                other => other,
            };
            if let Some(cp) = item {
                if count == q.max {
                    page.truncated = true;
                    break;
                }
                count += 1;
                page.next = Some(cp.clone());
                page.next_version = None;
                page.prefixes.push(cp);
                continue;
            }
            let mut newest_first: Vec<&Version> = versions.iter().rev().collect();
            if q.after.as_deref() == Some(key.as_str()) {
                match &q.after_version {
                    None => continue,
                    Some(id) => match newest_first.iter().position(|v| &v.id == id) {
                        Some(i) => newest_first.drain(..=i).for_each(drop),
                        None => continue,
                    },
                }
            }
            let latest_id = versions.last().map(|v| v.id.clone());
            for v in newest_first {
                if count == q.max {
                    page.truncated = true;
                    break 'keys;
                }
                count += 1;
                page.next = Some(key.clone());
                page.next_version = Some(v.id.clone());
                let latest = latest_id.as_deref() == Some(v.id.as_str());
                page.entries.push((key.clone(), v.clone(), latest));
            }
        }
        if !page.truncated {
            page.next = None;
            page.next_version = None;
        }
        Ok(page)
    }

    /// Starts a multipart upload; returns its id.
    pub fn create_upload(&self, bucket: &str, key: &str, meta: Meta) -> Result<String, StoreError> {
        check_key(key)?;
        let mut inner = self.lock();
        inner.bucket(bucket)?;
        let id = new_id();
        inner.uploads.insert(
            id.clone(),
            Upload {
                bucket: bucket.to_string(),
                key: key.to_string(),
                meta,
                initiated_ms: now_ms(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    /// The upload, checked to be for this bucket and key.
    pub fn upload(&self, bucket: &str, key: &str, id: &str) -> Result<Upload, StoreError> {
        let inner = self.lock();
        inner
            .uploads
            .get(id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .cloned()
            .ok_or_else(|| StoreError::NoSuchUpload(id.to_string()))
    }

    /// Uploads in progress in a bucket: (key, upload id, initiated).
    pub fn uploads(&self, bucket: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
        let inner = self.lock();
        inner.bucket(bucket)?;
        let mut all: Vec<_> = inner
            .uploads
            .iter()
            .filter(|(_, u)| u.bucket == bucket)
            .map(|(id, u)| (u.key.clone(), id.clone(), u.initiated_ms))
            .collect();
        all.sort();
        Ok(all)
    }

    /// Records a received part (the file at `temp`), replacing an earlier one of that number.
    pub fn put_part(
        &self,
        upload: &str,
        number: i32,
        temp: &Path,
        etag: String,
        size: u64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let Some(u) = inner.uploads.get_mut(upload) else {
            let _ = fs::remove_file(temp);
            return Err(StoreError::NoSuchUpload(upload.to_string()));
        };
        fs::rename(temp, self.part_path(upload, number)).map_err(io("storing the part"))?;
        u.parts.insert(number, (etag, size, now_ms()));
        Ok(())
    }

    /// The file of a part, to concatenate.
    pub fn part_file(&self, upload: &str, number: i32) -> PathBuf {
        self.part_path(upload, number)
    }

    /// Forgets an upload and its parts.
    pub fn abort_upload(&self, upload: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let u = inner
            .uploads
            .remove(upload)
            .ok_or_else(|| StoreError::NoSuchUpload(upload.to_string()))?;
        for n in u.parts.keys() {
            let _ = fs::remove_file(self.part_path(upload, *n));
        }
        Ok(())
    }
}

/// Keys with the query's prefix, after its marker, in order.
fn keys_from<'a>(
    b: &'a Bucket,
    q: &'a ListQuery,
) -> impl Iterator<Item = (&'a String, &'a Vec<Version>)> + 'a {
    let start = match &q.after {
        Some(a) if a.as_str() >= q.prefix.as_str() => Bound::Excluded(a.clone()),
        _ => Bound::Included(q.prefix.clone()),
    };
    b.keys
        .range((start, Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(q.prefix.as_str()))
}

/// The common prefix a key rolls up into under the query's delimiter, if any.
fn rolled_up(key: &str, q: &ListQuery) -> Option<String> {
    let d = q.delimiter.as_deref().filter(|d| !d.is_empty())?;
    let rest = &key[q.prefix.len()..];
    rest.find(d)
        .map(|i| format!("{}{}", q.prefix, &rest[..i + d.len()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(s: &Store, bucket: &str, key: &str, body: &[u8]) -> Result<Version, StoreError> {
        let t = s.temp_path();
        fs::write(&t, body).unwrap();
        s.commit_write(
            bucket,
            key,
            &t,
            Draft {
                etag: batch_contract::md5::md5_hex(body),
                size: body.len() as u64,
                meta: Meta::default(),
            },
            &WriteCondition::default(),
        )
    }

    fn body(s: &Store, bucket: &str, key: &str, v: Option<&str>) -> Vec<u8> {
        let (_, mut f) = s.open_object(bucket, key, v).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut out).unwrap();
        out
    }

    #[test]
    fn keys_are_verbatim_and_versions_survive_a_reopen() {
        let dir = tempdir();
        let s = Store::open(&dir).unwrap();
        s.create_bucket("a").unwrap();
        s.create_bucket("b").unwrap();
        let keys = ["k/x", "k//x", "x/./y", "x/y", "/abs", "..", "a/../../b/k"];
        for k in keys {
            write(&s, "a", k, k.as_bytes()).unwrap();
        }
        let long = "é".repeat(512);
        write(&s, "a", &long, b"long").unwrap();
        assert!(matches!(
            write(&s, "a", &format!("{long}x"), b""),
            Err(StoreError::KeyTooLong(1025))
        ));
        s.set_versioning("a", Versioning::Enabled).unwrap();
        let v2 = write(&s, "a", "k/x", b"second").unwrap();
        drop(s);
        let s = Store::open(&dir).unwrap();
        for k in keys.iter().filter(|k| **k != "k/x") {
            assert_eq!(body(&s, "a", k, None), k.as_bytes(), "{k}");
        }
        assert_eq!(body(&s, "a", "k/x", None), b"second");
        assert_eq!(body(&s, "a", &long, None), b"long");
        assert_eq!(body(&s, "a", "k/x", Some(NULL)), b"k/x");
        assert_eq!(body(&s, "a", "k/x", Some(&v2.id)), b"second");
        assert!(
            s.list(
                "b",
                &ListQuery {
                    max: 10,
                    ..Default::default()
                }
            )
            .unwrap()
            .entries
            .is_empty()
        );
    }

    #[test]
    fn a_cut_journal_line_and_stray_files_are_the_write_that_never_happened() {
        let dir = tempdir();
        let s = Store::open(&dir).unwrap();
        s.create_bucket("a").unwrap();
        write(&s, "a", "k", b"one").unwrap();
        drop(s);
        let mut j = OpenOptions::new()
            .append(true)
            .open(dir.join("journal.jsonl"))
            .unwrap();
        j.write_all(br#"{"op":"Put","bucket":"a","key":"k","version":{"id":"nu"#)
            .unwrap();
        fs::write(dir.join("blobs").join("stray"), b"x").unwrap();
        fs::write(dir.join("tmp").join("half"), b"x").unwrap();
        let s = Store::open(&dir).unwrap();
        assert_eq!(body(&s, "a", "k", None), b"one");
        assert!(!dir.join("blobs").join("stray").exists());
        assert!(!dir.join("tmp").join("half").exists());
    }

    #[test]
    fn listing_pages_roll_up_prefixes_and_resume_after_them() {
        let dir = tempdir();
        let s = Store::open(&dir).unwrap();
        s.create_bucket("a").unwrap();
        for k in ["p/1", "p/2", "q", "r/1", "r/2", "s"] {
            write(&s, "a", k, b"x").unwrap();
        }
        let mut q = ListQuery {
            delimiter: Some("/".into()),
            max: 2,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = s.list("a", &q).unwrap();
            seen.extend(page.prefixes.iter().cloned());
            seen.extend(page.entries.iter().map(|e| e.0.clone()));
            if !page.truncated {
                break;
            }
            q.after = page.next;
        }
        seen.sort();
        assert_eq!(seen, ["p/", "q", "r/", "s"]);
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("store-test-{}", new_id()));
        fs::create_dir_all(&d).unwrap();
        d
    }
}
