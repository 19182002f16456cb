//! `rollback JOB`: puts the originals back. For every object the job converted in place it
//! copies the original version onto the key (CopyObject with `x-amz-copy-source-version-id`),
//! conditional on the key still holding this job's conversion (`If-Match` on its ETag, after a
//! HEAD that checks its version id), carrying the original's metadata and tags (COPY
//! directives) and its storage class and encryption. The conversion stays as a noncurrent
//! version, so the audit trail keeps what happened; copying rather than deleting the conversion
//! version also works where the caller may not delete versions. An object changed since the job
//! is skipped and reported, never overwritten; a second rollback finds the originals back and
//! changes nothing.

use std::collections::BTreeMap;

use anyhow::Context;
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{MetadataDirective, StorageClass, TaggingDirective};
use batch_handler::task::MARK_METADATA;
use futures::StreamExt;
use serde::Serialize;

use crate::aws::AwsOptions;
use crate::job::JobOptions;
use crate::verify::{Conversion, conversions, not_found, sdk_reason};

/// What rollback did, or would do, for one conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The original is the current version again.
    Restored,
    /// `--dry-run`: it would be restored.
    WouldRestore,
    /// It already was (an earlier rollback): nothing done.
    AlreadyRestored,
    /// The key no longer holds this job's conversion: left as it is.
    SkippedChanged,
    /// The conversion was written to another key: the original was never replaced.
    SkippedNotInPlace,
    /// The original version no longer exists: nothing to restore.
    RefusedNoOriginal,
    /// A request failed.
    Error,
}

/// One rollback row.
#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The original's version (the copy source).
    pub original_version: Option<String>,
    /// The conversion's version.
    pub conversion_version: Option<String>,
    /// The new current version (the copy), when restored.
    pub restored_version: Option<String>,
    /// What happened.
    pub action: Action,
    /// Why, when not plainly restored.
    pub reason: String,
}

/// What `rollback` was asked.
#[derive(Debug, Clone, Default)]
pub struct RollbackRequest {
    /// Job id, or a report location (as `report` takes).
    pub what: String,
    /// Check everything, change nothing.
    pub dry_run: bool,
    /// Objects at once.
    pub concurrency: usize,
}

/// The outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackSummary {
    /// The completion report read.
    pub report: String,
    /// Where the rollback report was written (none on a dry run).
    pub rollback_report: Option<String>,
    /// Whether anything was changed.
    pub dry_run: bool,
    /// Converted tasks in the report.
    pub conversions: usize,
    /// Counts by action.
    pub actions: BTreeMap<String, usize>,
    /// Everything not restored (or, dry, not restorable).
    pub problems: Vec<RolledBack>,
    /// 0: every original is current again (or would be); 2: some were skipped or refused.
    #[serde(skip)]
    pub exit: u8,
}

/// Rolls a job back; writes `rollback.csv` beside its completion report.
pub async fn rollback(
    req: &RollbackRequest,
    jobs: &JobOptions,
    aws: &AwsOptions,
) -> anyhow::Result<RollbackSummary> {
    let (loc, rows) = crate::report::read(&req.what, jobs, aws).await?;
    let all = conversions(&rows);
    let s3 = aws.s3().await;
    let pb = crate::progress::objects(all.len() as u64, "rolling back");
    let done: Vec<RolledBack> = futures::stream::iter(all.iter())
        .map(|c| {
            let (s3, pb) = (s3.clone(), &pb);
            async move {
                let r = restore(&s3, c, req.dry_run).await;
                pb.inc(1);
                r
            }
        })
        .buffered(req.concurrency.max(1))
        .collect()
        .await;
    pb.finish_and_clear();
    let out = if req.dry_run {
        None
    } else {
        let out = loc.sibling("rollback.csv");
        out.write(&s3, rows_csv(&done)?.into_bytes(), "text/csv")
            .await
            .with_context(|| format!("writing the rollback report {out}"))?;
        Some(out.to_string())
    };
    let mut actions = BTreeMap::new();
    for r in &done {
        *actions
            .entry(
                serde_json::to_value(&r.action)?
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
            .or_insert(0) += 1;
    }
    let fine = |a: &Action| {
        matches!(
            a,
            Action::Restored | Action::WouldRestore | Action::AlreadyRestored
        )
    };
    let exit = if done.iter().all(|r| fine(&r.action)) {
        0
    } else {
        2
    };
    Ok(RollbackSummary {
        report: loc.to_string(),
        rollback_report: out,
        dry_run: req.dry_run,
        conversions: all.len(),
        actions,
        problems: done.into_iter().filter(|r| !fine(&r.action)).collect(),
        exit,
    })
}

fn rows_csv(rows: &[RolledBack]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "bucket",
        "key",
        "original_version",
        "conversion_version",
        "restored_version",
        "action",
        "reason",
    ])?;
    for r in rows {
        let action = serde_json::to_value(&r.action)?;
        w.write_record([
            r.bucket.as_str(),
            r.key.as_str(),
            r.original_version.as_deref().unwrap_or(""),
            r.conversion_version.as_deref().unwrap_or(""),
            r.restored_version.as_deref().unwrap_or(""),
            action.as_str().unwrap_or(""),
            r.reason.as_str(),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Prints the summary for a person.
pub fn print(s: &RollbackSummary) {
    println!("report {}", s.report);
    println!(
        "{} conversions{}",
        s.conversions,
        if s.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    for (a, n) in &s.actions {
        println!("  {a:<20} {n}");
    }
    for p in &s.problems {
        println!("  {:?} s3://{}/{}: {}", p.action, p.bucket, p.key, p.reason);
    }
    if let Some(r) = &s.rollback_report {
        println!("rollback report {r}");
    }
}

async fn restore(s3: &Client, c: &Conversion, dry_run: bool) -> RolledBack {
    let mut row = RolledBack {
        bucket: c.bucket.clone(),
        key: c.key.clone(),
        original_version: c.original_version.clone(),
        conversion_version: c.output_version.clone(),
        restored_version: None,
        action: Action::Error,
        reason: String::new(),
    };
    match restore_inner(s3, c, dry_run, &mut row).await {
        Ok((action, reason)) => {
            row.action = action;
            row.reason = reason;
        }
        Err(reason) => row.reason = reason,
    }
    row
}

async fn restore_inner(
    s3: &Client,
    c: &Conversion,
    dry_run: bool,
    row: &mut RolledBack,
) -> Result<(Action, String), String> {
    if !c.in_place() {
        return Ok((
            Action::SkippedNotInPlace,
            format!(
                "the conversion was written to {}; the original was never replaced",
                c.output_key
            ),
        ));
    }
    let bucket = c.bucket.as_str();
    let current = match s3.head_object().bucket(bucket).key(&c.key).send().await {
        Ok(h) => Some(h),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(sdk_reason(&format!("reading {} (HeadObject)", c.key), &e)),
    };
    // The original version: the conversion records it; the manifest may too.
    let conversion = match (&current, &c.output_version) {
        (Some(h), Some(v)) if h.version_id() == Some(v.as_str()) => Some(h.clone()),
        (_, Some(v)) => match s3
            .head_object()
            .bucket(bucket)
            .key(&c.key)
            .version_id(v)
            .send()
            .await
        {
            Ok(h) => Some(h),
            Err(e) if not_found(&e) => None,
            Err(e) => {
                return Err(sdk_reason(
                    &format!("reading the conversion {} (HeadObject)", c.key),
                    &e,
                ));
            }
        },
        (h, None) => h.clone(),
    };
    if conversion.is_none()
        && let Some(v) = &c.output_version
    {
        return Ok((
            Action::SkippedChanged,
            format!(
                "the conversion (version {v}) no longer exists; the key holds {}, not written by this job: left as it is",
                current
                    .as_ref()
                    .and_then(|h| h.version_id())
                    .map_or("nothing".to_string(), |id| format!("version {id}"))
            ),
        ));
    }
    let original_version = conversion
        .as_ref()
        .and_then(|h| h.metadata())
        .and_then(|m| m.get("original-version-id"))
        .cloned()
        .or_else(|| c.original_version.clone());
    row.original_version = original_version.clone();
    let Some(original_version) = original_version else {
        return Ok((
            Action::RefusedNoOriginal,
            "no original version is recorded for this conversion".into(),
        ));
    };
    let original = match s3
        .head_object()
        .bucket(bucket)
        .key(&c.key)
        .version_id(&original_version)
        .send()
        .await
    {
        Ok(h) => h,
        Err(e) if not_found(&e) => {
            return Ok((
                Action::RefusedNoOriginal,
                format!(
                    "the original version {original_version} no longer exists (expired by a lifecycle rule, or deleted): nothing to restore"
                ),
            ));
        }
        Err(e) => {
            return Err(sdk_reason(
                &format!("reading the original {} (HeadObject)", c.key),
                &e,
            ));
        }
    };
    let Some(now) = current else {
        return Ok((
            Action::SkippedChanged,
            "the key was deleted after the job: left as it is".into(),
        ));
    };
    let holds_conversion = match &c.output_version {
        Some(v) => now.version_id() == Some(v.as_str()),
        None => now
            .metadata()
            .is_some_and(|m| m.contains_key(MARK_METADATA)),
    };
    if !holds_conversion {
        let same_bytes = now.e_tag() == original.e_tag();
        let ours = now
            .metadata()
            .is_some_and(|m| m.contains_key(MARK_METADATA));
        if same_bytes && !ours {
            return Ok((
                Action::AlreadyRestored,
                format!(
                    "the key holds the original again (version {})",
                    now.version_id().unwrap_or("-")
                ),
            ));
        }
        return Ok((
            Action::SkippedChanged,
            format!(
                "the key was written after the job (current version {}, not the conversion {}): left as it is",
                now.version_id().unwrap_or("-"),
                c.output_version.as_deref().unwrap_or("-")
            ),
        ));
    }
    if dry_run {
        return Ok((Action::WouldRestore, String::new()));
    }
    let class = original
        .storage_class()
        .cloned()
        .unwrap_or(StorageClass::Standard);
    let mut copy = s3
        .copy_object()
        .bucket(bucket)
        .key(&c.key)
        .copy_source(format!(
            "{bucket}/{}?versionId={}",
            batch_contract::key::encode_key(&c.key).replace('+', "%20"),
            original_version
        ))
        .metadata_directive(MetadataDirective::Copy)
        .tagging_directive(TaggingDirective::Copy)
        .storage_class(class)
        .set_if_match(now.e_tag().map(str::to_string));
    if let Some(sse) = original.server_side_encryption() {
        copy = copy.server_side_encryption(sse.clone());
        if sse.as_str().starts_with("aws:kms") {
            copy = copy.set_ssekms_key_id(original.ssekms_key_id().map(str::to_string));
        }
    }
    match copy.send().await {
        Ok(out) => {
            row.restored_version = out.version_id().map(str::to_string);
            Ok((Action::Restored, String::new()))
        }
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok((
            Action::SkippedChanged,
            "the key changed while it was rolled back (If-Match failed): left as it is".into(),
        )),
        Err(e) => Err(sdk_reason(
            &format!(
                "copying version {original_version} back onto {} (CopyObject)",
                c.key
            ),
            &e,
        )),
    }
}
