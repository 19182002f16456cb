//! Select → write → upload: which recordings are due, found by listing the day folders of a
//! window ([`listing`]) or by reading an S3 Inventory report ([`inventory`]), kept when they pass
//! the [`filter`]s, and written as a manifest with a summary beside it.

pub mod filter;
pub mod inventory;
pub mod listing;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use futures::{Stream, StreamExt, TryStreamExt};
use regex::Regex;

pub use filter::{
    DEFAULT_MIN_SIZE, DEFAULT_SKIP_CLASSES, DateWindow, Filter, Recording, parse_age,
};

use crate::aws::AwsOptions;
use crate::location::Location;
use crate::manifest::{self, Part, Summary, Writer};
use listing::Lister;

/// Whether to put version ids in the manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Versions {
    /// Ask the bucket: version ids when versioning is (or was) enabled.
    #[default]
    Auto,
    /// Current version ids.
    On,
    /// No version ids.
    Off,
}

/// What to select and where the manifest goes: the request of the `manifest` command, of `run`
/// and of the scheduled function. `Default` is the CLI's defaults.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Bucket to list (source A).
    pub bucket: Option<String>,
    /// S3 Inventory manifest.json to read instead of listing (source B).
    pub inventory: Option<Location>,
    /// Prefix above the `YYYY/MM/DD/` folders.
    pub prefix: String,
    /// Recordings at least this old by their day folder: 7d, 2w, 3m, 1y.
    pub older_than: Option<String>,
    /// First day, inclusive.
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    pub to: Option<NaiveDate>,
    /// Exactly this day.
    pub date: Option<NaiveDate>,
    /// Key suffix, case-insensitive ("" for any).
    pub suffix: String,
    /// Regex the key must match.
    pub key_regex: Option<Regex>,
    /// Last modified at or after (epoch seconds).
    pub modified_after: Option<i64>,
    /// Last modified before (epoch seconds).
    pub modified_before: Option<i64>,
    /// Smallest original in bytes.
    pub min_size: u64,
    /// Largest original in bytes.
    pub max_size: Option<u64>,
    /// Only these storage classes (empty: any).
    pub storage_classes: Vec<String>,
    /// Skip these storage classes.
    pub skip_storage_classes: Vec<String>,
    /// Skip objects that carry the converted tag (one GetObjectTagging each).
    pub check_tags: bool,
    /// The converted tag, `key=value`.
    pub converted_tag: String,
    /// Version ids in the manifest.
    pub versions: Versions,
    /// Where to write the manifest.
    pub output: Option<Location>,
    /// Split into manifests of at most this many tasks.
    pub max_tasks: Option<u64>,
    /// Day prefixes listed at once.
    pub concurrency: usize,
    /// Select and summarise, write nothing.
    pub dry_run: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            bucket: None,
            inventory: None,
            prefix: String::new(),
            older_than: None,
            from: None,
            to: None,
            date: None,
            suffix: ".wav".into(),
            key_regex: None,
            modified_after: None,
            modified_before: None,
            min_size: DEFAULT_MIN_SIZE,
            max_size: None,
            storage_classes: Vec::new(),
            skip_storage_classes: DEFAULT_SKIP_CLASSES.map(String::from).to_vec(),
            check_tags: false,
            converted_tag: "converted=true".into(),
            versions: Versions::Auto,
            output: None,
            max_tasks: None,
            concurrency: 16,
            dry_run: false,
        }
    }
}

impl Selection {
    fn filter(&self) -> Filter {
        Filter {
            suffix: (!self.suffix.is_empty()).then(|| self.suffix.clone()),
            regex: self.key_regex.clone(),
            modified_after: self.modified_after,
            modified_before: self.modified_before,
            min_size: self.min_size,
            max_size: self.max_size,
            classes: self
                .storage_classes
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            // A class asked for explicitly is not skipped by the default list.
            skip_classes: self
                .skip_storage_classes
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .filter(|c| {
                    !self
                        .storage_classes
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(c))
                })
                .collect(),
        }
    }

    /// The day window asked for, if any.
    pub fn window(&self, today: NaiveDate) -> anyhow::Result<Option<DateWindow>> {
        if let Some(d) = self.date {
            return Ok(Some(DateWindow { from: d, to: d }));
        }
        if self.older_than.is_none() && self.from.is_none() && self.to.is_none() {
            return Ok(None);
        }
        let mut to = self.to.unwrap_or(today);
        if let Some(age) = &self.older_than {
            let days = parse_age(age).map_err(anyhow::Error::msg)?;
            to = to.min(today - chrono::Days::new(days));
        }
        let from = self
            .from
            .unwrap_or(NaiveDate::from_ymd_opt(1970, 1, 1).expect("date"));
        if from > to {
            bail!(
                "the date window is empty: --from, --to and --older-than give {from} to {to} \
                 (the first day must not be after the last)"
            );
        }
        Ok(Some(DateWindow { from, to }))
    }
}

fn progress(label: &'static str) -> indicatif::ProgressBar {
    crate::progress::spinner(label)
}

type Batches = std::pin::Pin<Box<dyn Stream<Item = anyhow::Result<Vec<Recording>>> + Send>>;

/// Runs `manifest`; returns the summary (also written beside the manifest).
pub async fn run(args: &Selection, aws: &AwsOptions) -> anyhow::Result<Summary> {
    // An empty or malformed window is refused before any request.
    args.window(chrono::Utc::now().date_naive())?;
    if let Some(Location::Local(p)) = &args.inventory
        && !p.is_file()
    {
        bail!("--inventory {}: no such file", p.display());
    }
    let s3 = aws.s3().await;
    let filter = args.filter();
    if let Some(inventory) = &args.inventory {
        return from_inventory(args, &s3, &filter, inventory).await;
    }
    let (source, batches): (String, Batches) = match &args.bucket {
        None => bail!("give --bucket (listing) or --inventory"),
        Some(bucket) => {
            let versions = match args.versions {
                Versions::On => true,
                Versions::Off => false,
                Versions::Auto => {
                    batch_handler::client::bucket_versioning(&s3, bucket)
                        .await
                        .map_err(aws_sdk_s3::Error::from)
                        .with_context(|| format!("checking versioning of bucket {bucket}"))?
                        != batch_handler::client::Versioning::Off
                }
            };
            let lister = Lister {
                s3: s3.clone(),
                bucket: bucket.clone(),
                versions,
            };
            let today = chrono::Utc::now().date_naive();
            match args.window(today)? {
                Some(w) => {
                    let months = lister.existing_months(&args.prefix).await?;
                    let days = w.day_prefixes(&args.prefix, &months);
                    let source = format!(
                        "s3://{bucket}/{}{{{}..{}}} ({} day prefixes)",
                        args.prefix,
                        w.from,
                        w.to,
                        days.len()
                    );
                    (source, Box::pin(lister.prefixes(days, args.concurrency)))
                }
                None => (
                    format!("s3://{bucket}/{}", args.prefix),
                    Box::pin(lister.pages(args.prefix.clone())),
                ),
            }
        }
    };
    select_and_write(args, &s3, &filter, source, batches).await
}

async fn select_and_write(
    args: &Selection,
    s3: &aws_sdk_s3::Client,
    filter: &Filter,
    source: String,
    mut batches: Batches,
) -> anyhow::Result<Summary> {
    let tmp = std::env::temp_dir().join(format!(
        "manifest-builder-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    let mut writer = Writer::new(&tmp, "manifest", args.max_tasks, source)?;
    let (tag_key, tag_value) = args
        .converted_tag
        .split_once('=')
        .unwrap_or((args.converted_tag.as_str(), "true"));
    let pb = progress("listing");
    let mut scanned = 0u64;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        scanned += batch.len() as u64;
        let (mut selected, rest): (Vec<Recording>, Vec<Recording>) =
            batch.into_iter().partition(|r| filter.accepts(r));
        for r in rest.iter().filter(|r| filter.archived(r)) {
            writer.summary.add_archived(r);
        }
        if args.check_tags {
            selected = without_tag(s3, selected, tag_key, tag_value).await?;
        }
        for r in &selected {
            writer.push(r)?;
        }
        pb.set_message(format!(
            "listing: {scanned} objects seen, {} selected",
            writer.summary.objects
        ));
    }
    pb.finish_and_clear();
    let (files, mut summary) = writer.finish()?;
    summary.scanned = scanned;
    let result = publish(args, s3, &files, &mut summary).await;
    std::fs::remove_dir_all(&tmp).ok();
    result.map(|()| summary)
}

/// Uploads (or copies) the manifest parts and the summary to `--output`.
async fn publish(
    args: &Selection,
    s3: &aws_sdk_s3::Client,
    files: &[(std::path::PathBuf, u64)],
    summary: &mut Summary,
) -> anyhow::Result<()> {
    if args.dry_run || summary.objects == 0 {
        return Ok(());
    }
    let Some(output) = &args.output else {
        bail!("give --output s3://bucket/key.csv (or a local path), or --dry-run");
    };
    let n = files.len();
    for (i, (path, tasks)) in files.iter().enumerate() {
        let loc = manifest::part_location(output, i, n);
        let etag = loc.put_file(s3, path, "text/csv").await?;
        summary.manifests.push(Part {
            location: loc.to_string(),
            etag,
            tasks: *tasks,
        });
    }
    let json = serde_json::to_vec_pretty(&summary)?;
    manifest::summary_location(output)
        .write(s3, json, "application/json")
        .await?;
    Ok(())
}

/// Where a data file of a local inventory copy is, and the local folder that stood for which
/// part of the destination bucket. `files[].key` is the file's key in the destination bucket; a
/// copy such as `aws s3 sync s3://inventory-bucket/prefix/ ./inv/` mirrors the bucket from some
/// folder down (`./inv` for `prefix/`, so the manifest is at
/// `./inv/<source-bucket>/<config>/<date>/manifest.json` and the data at
/// `./inv/<source-bucket>/<config>/data/`). Tried in order: the whole key, then the key less its
/// first folders, each against the manifest's folder and every folder above it; last, the file's
/// name beside the manifest. A key with `..` or an absolute path is never followed.
fn local_data_file(
    manifest: &std::path::Path,
    key: &str,
) -> anyhow::Result<(std::path::PathBuf, String)> {
    let dir = manifest.parent().unwrap_or(std::path::Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    let parts: Vec<&str> = key.split('/').collect();
    let safe = !key.starts_with('/') && parts.iter().all(|p| !p.is_empty() && *p != "..");
    let ancestors: Vec<&std::path::Path> = dir.ancestors().take(parts.len() + 1).collect();
    if safe {
        for skip in 0..parts.len() {
            let rel: std::path::PathBuf = parts[skip..].iter().collect();
            for root in &ancestors {
                let candidate = root.join(&rel);
                if candidate.is_file() {
                    let stands_for = parts[..skip].join("/");
                    let note = format!(
                        "{} standing for the destination bucket's {}",
                        root.display(),
                        if stands_for.is_empty() {
                            "top".to_string()
                        } else {
                            format!("{stands_for}/")
                        }
                    );
                    return Ok((candidate, note));
                }
            }
        }
    }
    let name = parts.last().copied().unwrap_or(key);
    let beside = dir.join(name);
    if !name.is_empty() && name != ".." && beside.is_file() {
        return Ok((beside, format!("{} (by file name)", dir.display())));
    }
    bail!(
        "inventory data file {key} not found in the local copy: looked for it (and for the key \
         less its first folders) under {} and the folders above it, and for {name} beside the \
         manifest; copy the whole report, e.g. `aws s3 sync s3://<destination-bucket>/<prefix>/ \
         <dir>/`",
        dir.display()
    )
}

/// Streams `from` to `to` (S3) or reads it in place (local), checking its MD5.
async fn fetch_checked(
    s3: &aws_sdk_s3::Client,
    from: &Location,
    to: &std::path::Path,
    md5: &str,
) -> anyhow::Result<()> {
    use md5::Digest;
    use tokio::io::AsyncWriteExt;
    let mut hasher = md5::Md5::new();
    match from {
        Location::S3 { .. } => {
            let mut body = from.body(s3).await?;
            let mut file = tokio::fs::File::create(to).await?;
            while let Some(chunk) = body
                .try_next()
                .await
                .with_context(|| format!("reading {from}"))?
            {
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
        }
        Location::Local(p) => {
            let mut f =
                std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            std::io::copy(&mut f, &mut hasher)?;
        }
    }
    let actual = batch_contract::md5::finish_md5_hex(hasher);
    match inventory::md5_mismatch(&from.to_string(), &actual, md5) {
        Some(e) => bail!(e),
        None => Ok(()),
    }
}

async fn from_inventory(
    args: &Selection,
    s3: &aws_sdk_s3::Client,
    filter: &Filter,
    manifest_loc: &Location,
) -> anyhow::Result<Summary> {
    let name = manifest_loc.to_string();
    let inv = inventory::InventoryManifest::parse(&manifest_loc.read(s3).await?, &name)?;
    let format = inventory::DataFormat::from_manifest(&inv, &name)?;
    let cols = match format {
        inventory::DataFormat::Csv => Some(inv.csv_columns(&name)?),
        _ => None,
    };
    let tmp = std::env::temp_dir().join(format!(
        "manifest-builder-inv-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    std::fs::create_dir_all(&tmp)?;
    let pb = progress("reading inventory");
    let result = read_inventory(
        args,
        s3,
        filter,
        manifest_loc,
        &inv,
        (format, cols),
        &tmp,
        &pb,
    )
    .await;
    pb.finish_and_clear();
    std::fs::remove_dir_all(&tmp).ok();
    result
}

#[allow(clippy::too_many_arguments)]
async fn read_inventory(
    args: &Selection,
    s3: &aws_sdk_s3::Client,
    filter: &Filter,
    manifest_loc: &Location,
    inv: &inventory::InventoryManifest,
    (format, cols): (inventory::DataFormat, Option<inventory::Columns>),
    tmp: &std::path::Path,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Summary> {
    // Fetch (S3) or locate (local) every data file, MD5 checked, a few at a time. A local CSV.gz
    // is checked while it is scanned instead (one pass over it, on every core).
    let check_in_scan = matches!(manifest_loc, Location::Local(_)) && cols.is_some();
    let roots = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let roots = &roots;
    let fetched: Vec<(String, std::path::PathBuf, Option<String>)> =
        futures::stream::iter(inv.files.iter().enumerate())
            .map(|(i, f)| async move {
                let (from, path) = match manifest_loc {
                    Location::S3 { bucket, .. } => {
                        let from = Location::S3 {
                            bucket: bucket.clone(),
                            key: f.key.clone(),
                        };
                        (from, tmp.join(format!("data-{i:06}")))
                    }
                    Location::Local(p) => {
                        let (path, root) = local_data_file(p, &f.key)?;
                        roots.lock().expect("roots").insert(root);
                        (Location::Local(path.clone()), path)
                    }
                };
                if check_in_scan {
                    return anyhow::Ok((from.to_string(), path, Some(f.md5_checksum.clone())));
                }
                fetch_checked(s3, &from, &path, &f.md5_checksum).await?;
                anyhow::Ok((from.to_string(), path, None))
            })
            .buffered(4)
            .try_collect()
            .await?;
    pb.set_message(format!("reading inventory: {} data files", fetched.len()));
    // Decode in parallel, each file to its own row file; then append them in manifest order,
    // so the same inventory always gives the same manifest bytes (and ETag).
    let (filter, rows_dir) = (filter.clone(), tmp.to_path_buf());
    let scanned: Vec<(Summary, std::path::PathBuf)> = tokio::task::spawn_blocking(move || {
        use rayon::prelude::*;
        fetched
            .par_iter()
            .enumerate()
            .map(|(i, (name, path, md5))| {
                let rows = rows_dir.join(format!("rows-{i:06}.csv"));
                match &cols {
                    Some(cols) => {
                        inventory::scan_csv_gz(path, name, cols, &filter, &rows, md5.as_deref())
                    }
                    None => inventory::scan_columnar(path, format, name, &filter, &rows),
                }
                .map(|s| (s, rows))
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await??;
    let roots: Vec<String> = roots.lock().expect("roots").iter().cloned().collect();
    let source = if roots.is_empty() {
        format!("inventory {manifest_loc} ({} data files)", inv.files.len())
    } else {
        format!(
            "inventory {manifest_loc} ({} data files, local copy: {})",
            inv.files.len(),
            roots.join("; ")
        )
    };
    let mut writer = Writer::new(&tmp.join("out"), "manifest", args.max_tasks, source)?;
    let has_versions = match &cols {
        Some(c) => c.version_id.is_some(),
        None => inv.file_schema.to_ascii_lowercase().contains("version_id"),
    };
    let mut total = Summary::default();
    for (s, rows) in &scanned {
        inventory::append_rows(rows, s.objects, &mut writer, has_versions)?;
        total.merge(s);
    }
    let (files, mut summary) = writer.finish()?;
    summary.merge(&total);
    if has_versions {
        summary.fields = vec!["Bucket".into(), "Key".into(), "VersionId".into()];
    }
    publish(args, s3, &files, &mut summary).await?;
    Ok(summary)
}

async fn without_tag(
    s3: &aws_sdk_s3::Client,
    recordings: Vec<Recording>,
    key: &str,
    value: &str,
) -> anyhow::Result<Vec<Recording>> {
    let checks = futures::stream::iter(recordings)
        .map(|r| async move {
            let out = s3
                .get_object_tagging()
                .bucket(&r.bucket)
                .key(&r.key)
                .set_version_id(r.version_id.clone().filter(|v| v != "null"))
                .send()
                .await
                .map_err(aws_sdk_s3::Error::from)
                .with_context(|| format!("reading tags of s3://{}/{}", r.bucket, r.key))?;
            let tagged = out
                .tag_set()
                .iter()
                .any(|t| t.key() == key && t.value() == value);
            anyhow::Ok((!tagged).then_some(r))
        })
        .buffered(16);
    let kept: Vec<Option<Recording>> = futures::TryStreamExt::try_collect(checks).await?;
    Ok(kept.into_iter().flatten().collect())
}

/// Human-readable summary lines.
pub fn print_summary(s: &Summary, dry_run: bool) {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    eprintln!("source: {}", s.source);
    eprintln!(
        "scanned {} objects, selected {} ({:.3} GiB)",
        s.scanned,
        s.objects,
        gib(s.bytes)
    );
    if let (Some(o), Some(n)) = (&s.oldest, &s.newest) {
        eprintln!("last modified: {o} .. {n}");
    }
    for (class, t) in &s.by_storage_class {
        eprintln!(
            "  {class:<20} {:>10} objects {:>12.3} GiB",
            t.objects,
            gib(t.bytes)
        );
    }
    if s.objects == 0 {
        eprintln!("nothing selected: no manifest written");
    } else if dry_run {
        eprintln!("dry run: no manifest written");
    }
    for p in &s.manifests {
        eprintln!(
            "manifest {} ({} tasks{})",
            p.location,
            p.tasks,
            p.etag
                .as_deref()
                .map(|e| format!(", ETag {e}"))
                .unwrap_or_default()
        );
    }
}
