//! `manifest`: its flags, resolved into a [`Selection`].

use chrono::NaiveDate;
use manifest_builder::location::Location;
use manifest_builder::select::{self, Selection, Versions};
use regex::Regex;

/// Flags of `manifest`.
#[derive(Debug, Clone, clap::Args)]
pub struct ManifestArgs {
    /// Bucket to list (source A).
    #[arg(long, conflicts_with = "inventory", value_parser = super::check::bucket_name)]
    pub bucket: Option<String>,
    /// S3 Inventory manifest.json to read instead of listing (source B): s3://... or a local path.
    /// CSV, ORC or Parquet; each data file's MD5 is checked; current versions only.
    #[arg(long)]
    pub inventory: Option<Location>,
    /// Prefix above the `YYYY/MM/DD/` folders, e.g. connect/<alias>/CallRecordings/.
    #[arg(long, default_value = "", value_parser = super::check::key_prefix)]
    pub prefix: String,
    /// Recordings at least this old by their day folder: 7d, 2w, 3m, 1y. Starts at the beginning (backfill) unless --from.
    #[arg(long, value_parser = super::check::age)]
    pub older_than: Option<String>,
    /// First day (YYYY-MM-DD), inclusive.
    #[arg(long, value_parser = super::check::date)]
    pub from: Option<NaiveDate>,
    /// Last day (YYYY-MM-DD), inclusive.
    #[arg(long, value_parser = super::check::date)]
    pub to: Option<NaiveDate>,
    /// Exactly this day (YYYY-MM-DD).
    #[arg(long, conflicts_with_all = ["from", "to", "older_than"], value_parser = super::check::date)]
    pub date: Option<NaiveDate>,
    /// Key suffix to select, case-insensitive ("" for any).
    #[arg(long, default_value = ".wav")]
    pub suffix: String,
    /// Regex the key must match.
    #[arg(long)]
    pub key_regex: Option<Regex>,
    /// Last modified at or after (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub modified_after: Option<i64>,
    /// Last modified before (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub modified_before: Option<i64>,
    /// Smallest original in bytes. Default 512 KiB: its A-law output is GLACIER_IR's 128 KiB
    /// minimum billable size, so anything smaller saves little and still pays the requests.
    #[arg(long, default_value_t = select::DEFAULT_MIN_SIZE)]
    pub min_size: u64,
    /// Largest original in bytes.
    #[arg(long)]
    pub max_size: Option<u64>,
    /// Only objects in these storage classes (repeatable; default any).
    #[arg(long = "storage-class")]
    pub storage_classes: Vec<String>,
    /// Skip these storage classes (repeatable). Default GLACIER, DEEP_ARCHIVE (unreadable
    /// without a restore) and GLACIER_IR (most likely converted; reading it is billed per GB).
    #[arg(long = "skip-storage-class", default_values_t = select::DEFAULT_SKIP_CLASSES.map(String::from))]
    pub skip_storage_classes: Vec<String>,
    /// Skip objects that already carry the converted tag: one GetObjectTagging per object
    /// (the handler skips them anyway, at the price of one GET).
    #[arg(long)]
    pub check_tags: bool,
    /// Tag that marks converted objects (with --check-tags).
    #[arg(long, default_value = "converted=true")]
    pub converted_tag: String,
    /// Versions: auto (ask the bucket), on (current version ids), off.
    #[arg(long, default_value = "auto", value_enum)]
    pub versions: VersionsArg,
    /// Where to write the manifest: s3://bucket/key.csv or a local path.
    #[arg(long)]
    pub output: Option<Location>,
    /// Split into manifests of at most this many tasks.
    #[arg(long)]
    pub max_tasks: Option<u64>,
    /// Day prefixes listed at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Select and summarise, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--versions`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum VersionsArg {
    /// Ask the bucket.
    Auto,
    /// Current version ids.
    On,
    /// No version ids.
    Off,
}

impl From<&ManifestArgs> for Selection {
    fn from(a: &ManifestArgs) -> Self {
        Selection {
            bucket: a.bucket.clone(),
            inventory: a.inventory.clone(),
            prefix: a.prefix.clone(),
            older_than: a.older_than.clone(),
            from: a.from,
            to: a.to,
            date: a.date,
            suffix: a.suffix.clone(),
            key_regex: a.key_regex.clone(),
            modified_after: a.modified_after,
            modified_before: a.modified_before,
            min_size: a.min_size,
            max_size: a.max_size,
            storage_classes: a.storage_classes.clone(),
            skip_storage_classes: a.skip_storage_classes.clone(),
            check_tags: a.check_tags,
            converted_tag: a.converted_tag.clone(),
            versions: match a.versions {
                VersionsArg::Auto => Versions::Auto,
                VersionsArg::On => Versions::On,
                VersionsArg::Off => Versions::Off,
            },
            output: a.output.clone(),
            max_tasks: a.max_tasks,
            concurrency: a.concurrency,
            dry_run: a.dry_run,
        }
    }
}

fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp());
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|_| format!("{s:?} is not YYYY-MM-DD or an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ManifestArgs,
    }

    #[test]
    fn the_flags_default_to_the_library_defaults() {
        let args = Wrap::try_parse_from(["manifest"]).unwrap().args;
        let (ours, lib) = (Selection::from(&args), Selection::default());
        assert_eq!(format!("{ours:?}"), format!("{lib:?}"));
    }
}
