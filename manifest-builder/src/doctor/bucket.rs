//! The recordings bucket's settings that decide whether an in-place job saves money (versioning,
//! a lifecycle rule for the noncurrent originals, Object Lock, replication), whether its tasks
//! can read the recordings (encryption, archive classes), and where the report goes.

use aws_sdk_s3::types::{
    ExpirationStatus, ObjectLockEnabled, ObjectLockLegalHoldStatus, ReplicationRuleStatus,
};

use super::function::Function;
use super::{CallError, Check, DoctorRequest, Facts, dollars, not_checked};
use crate::location::Location;

const GB: f64 = 1e9;

/// Whether a rule on `rule_prefix` covers every key under `prefix`.
fn covers(rule_prefix: &str, prefix: &str) -> bool {
    prefix.starts_with(rule_prefix)
}

fn gb(bytes: u64) -> String {
    if (bytes as f64) < GB {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.2} GB", bytes as f64 / GB)
    }
}

/// In place, versioning must be on: the original stays as a noncurrent version, the safety net
/// of `rollback`. Off or suspended, the handler refuses (unless its deployer opted in), so the
/// job would fail every task.
pub async fn versioning(
    s3: &aws_sdk_s3::Client,
    req: &DoctorRequest,
    func: Option<&Function>,
) -> Vec<Check> {
    let b = &req.bucket;
    let fix = format!(
        "aws s3api put-bucket-versioning --bucket {b} --versioning-configuration Status=Enabled"
    );
    let state = match batch_handler::client::bucket_versioning(s3, b).await {
        Ok(v) => v,
        Err(e) => {
            let e = CallError::from_sdk(&e);
            if e.is(&["NoSuchBucket"]) || e.status == Some(404) {
                return vec![Check::fail(
                    "bucket",
                    format!("bucket {b} does not exist (or is in another region)"),
                    "give the recordings bucket with --bucket (and --region)",
                )];
            }
            return vec![not_checked(
                "versioning",
                "GetBucketVersioning",
                "s3:GetBucketVersioning",
                &e,
            )];
        }
    };
    use batch_handler::client::Versioning;
    if let Some(dest) = &req.dest_bucket {
        return vec![Check::pass(
            "versioning",
            format!(
                "destination mode (into {dest}): originals are not replaced, so {b} need not be \
                 versioned ({state:?})"
            ),
        )];
    }
    let opted_in = func.is_some_and(|f| f.allows_unversioned_overwrite);
    vec![match state {
        Versioning::Enabled => Check::pass(
            "versioning",
            format!("enabled on {b}: each original stays as a noncurrent version until expired"),
        ),
        _ if opted_in => Check::warn(
            "versioning",
            format!(
                "{state:?} on {b}, and the function allows unversioned overwrites \
                 (ALLOW_UNVERSIONED_OVERWRITE): originals are replaced with no way back"
            ),
            fix,
        ),
        Versioning::Suspended => Check::fail(
            "versioning",
            format!(
                "suspended on {b}: in place, a conversion would overwrite the original; the \
                 handler refuses every task"
            ),
            fix,
        ),
        Versioning::Off => Check::fail(
            "versioning",
            format!(
                "never enabled on {b}: in place, a conversion would overwrite the original; the \
                 handler refuses every task"
            ),
            fix,
        ),
    }]
}

/// The command that adds the rule (as the stack's `LifecycleGuidance` output).
fn lifecycle_fix(req: &DoctorRequest) -> String {
    format!(
        "aws s3api put-bucket-lifecycle-configuration --bucket {} --lifecycle-configuration \
         '{{\"Rules\":[{{\"ID\":\"expire-replaced-recordings\",\"Status\":\"Enabled\",\
         \"Filter\":{{\"Prefix\":\"{}\"}},\"NoncurrentVersionExpiration\":{{\"NoncurrentDays\":{}}}}}]}}' \
         (merge with the bucket's existing rules: the call replaces them all; template parameter \
         NoncurrentVersionDays)",
        req.bucket,
        req.prefix,
        req.workload.noncurrent_days.max(1.0).round() as i64
    )
}

/// What keeping the originals costs: from the selection's bytes, at the Standard price.
fn extra_cost(req: &DoctorRequest) -> String {
    match &req.facts {
        Some(f) if f.bytes > 0 => format!(
            "the {} originals of this selection stay in STANDARD as noncurrent versions: {} a \
             month more, for ever, on top of the conversions",
            gb(f.bytes),
            dollars(f.bytes as f64 / GB * req.prices.standard_gb_month)
        ),
        _ => "every original stays in STANDARD as a noncurrent version: storage goes up, for ever \
              (give the selection flags to see what it costs)"
            .to_string(),
    }
}

/// In place, the savings come only when a rule expires the noncurrent originals under the prefix.
pub async fn lifecycle(s3: &aws_sdk_s3::Client, req: &DoctorRequest) -> Check {
    const NAME: &str = "lifecycle";
    if let Some(dest) = &req.dest_bucket {
        return Check::pass(
            NAME,
            format!(
                "destination mode (into {dest}): originals stay current in {}; delete or expire \
                 them yourself when the conversions are verified",
                req.bucket
            ),
        );
    }
    let rules = match s3
        .get_bucket_lifecycle_configuration()
        .bucket(&req.bucket)
        .send()
        .await
    {
        Ok(out) => out.rules().to_vec(),
        Err(e) => {
            let e = CallError::from_sdk(&e);
            if e.is(&["NoSuchLifecycleConfiguration"]) {
                Vec::new()
            } else if e.not_implemented() {
                return Check::warn(
                    NAME,
                    format!(
                        "this S3 has no lifecycle rules (GetBucketLifecycleConfiguration: \
                         NotImplemented): {}",
                        extra_cost(req)
                    ),
                    "on AWS, add the rule: ".to_string() + &lifecycle_fix(req),
                );
            } else {
                return not_checked(
                    NAME,
                    "GetBucketLifecycleConfiguration",
                    "s3:GetLifecycleConfiguration",
                    &e,
                );
            }
        }
    };
    let mut partial = Vec::new();
    for r in &rules {
        if r.status() != &ExpirationStatus::Enabled {
            continue;
        }
        let Some(days) = r
            .noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days())
        else {
            continue;
        };
        let id = r.id().unwrap_or("(no id)");
        #[allow(deprecated)]
        let legacy = r.prefix();
        let (prefix, narrowed) = match r.filter() {
            Some(f) => match f.and() {
                Some(and) => (
                    and.prefix().unwrap_or(""),
                    !and.tags().is_empty()
                        || and.object_size_greater_than().is_some()
                        || and.object_size_less_than().is_some(),
                ),
                None => (
                    f.prefix().unwrap_or(""),
                    f.tag().is_some()
                        || f.object_size_greater_than().is_some()
                        || f.object_size_less_than().is_some(),
                ),
            },
            None => (legacy.unwrap_or(""), false),
        };
        if covers(prefix, &req.prefix) && !narrowed {
            let assumed = req.workload.noncurrent_days;
            let note = if f64::from(days) > assumed + 0.5 {
                format!(
                    "; the estimate assumes {assumed} days: pass --noncurrent-days {days} to \
                     `estimate`"
                )
            } else {
                String::new()
            };
            return Check::pass(
                NAME,
                format!(
                    "rule {id} expires noncurrent versions under {:?} after {days} days: each \
                     original goes {days} days after its conversion{note}",
                    prefix
                ),
            );
        }
        partial.push(format!(
            "rule {id} ({}{})",
            if prefix.is_empty() {
                "whole bucket".to_string()
            } else {
                format!("prefix {prefix:?}")
            },
            if narrowed {
                ", only tagged or sized objects"
            } else {
                ""
            }
        ));
    }
    let found = if partial.is_empty() {
        match rules.len() {
            0 => "no lifecycle rule".to_string(),
            n => format!("{n} lifecycle rules, none expiring noncurrent versions"),
        }
    } else {
        format!(
            "noncurrent versions expire only under {}, which does not cover {:?}",
            partial.join(", "),
            req.prefix
        )
    };
    Check::warn(
        NAME,
        format!("{found} on {}: {}", req.bucket, extra_cost(req)),
        lifecycle_fix(req),
    )
}

/// Object Lock keeps originals until their retention ends (and while a legal hold is on):
/// the savings come only then.
pub async fn object_lock(s3: &aws_sdk_s3::Client, req: &DoctorRequest) -> Vec<Check> {
    const NAME: &str = "object-lock";
    let conf = match s3
        .get_object_lock_configuration()
        .bucket(&req.bucket)
        .send()
        .await
    {
        Ok(out) => out.object_lock_configuration().cloned(),
        Err(e) => {
            let e = CallError::from_sdk(&e);
            if e.is(&["ObjectLockConfigurationNotFoundError"]) {
                None
            } else if e.not_implemented() {
                return vec![Check::pass(
                    NAME,
                    "this S3 has no Object Lock (NotImplemented): no retention holds originals",
                )];
            } else {
                return vec![not_checked(
                    NAME,
                    "GetObjectLockConfiguration",
                    "s3:GetBucketObjectLockConfiguration",
                    &e,
                )];
            }
        }
    };
    let enabled =
        conf.as_ref().and_then(|c| c.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled);
    if !enabled {
        return vec![Check::pass(
            NAME,
            format!(
                "no Object Lock on {}: nothing holds the originals",
                req.bucket
            ),
        )];
    }
    let retention = conf
        .as_ref()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention());
    let default = match retention {
        Some(r) => {
            let span = match (r.days(), r.years()) {
                (Some(d), _) => format!("{d} days"),
                (_, Some(y)) => format!("{y} years"),
                _ => "a period".into(),
            };
            let mode = r.mode().map(|m| m.as_str().to_string()).unwrap_or_default();
            format!(
                "default retention {mode} {span}: each original (and each conversion) can be \
                 deleted only {span} after it was written"
            )
        }
        None => "no default retention (objects may carry their own)".to_string(),
    };
    // A sample of the selection: retention dates and legal holds of the versions the job replaces.
    let mut held = 0usize;
    let mut latest: Option<aws_smithy_types::DateTime> = None;
    let mut sampled = 0usize;
    let mut unreadable: Option<CallError> = None;
    if let Some(f) = &req.facts {
        for o in &f.sample {
            sampled += 1;
            let mut r = s3.get_object_retention().bucket(&req.bucket).key(&o.key);
            let mut h = s3.get_object_legal_hold().bucket(&req.bucket).key(&o.key);
            if let Some(v) = &o.version_id {
                r = r.version_id(v);
                h = h.version_id(v);
            }
            match r.send().await {
                Ok(out) => {
                    if let Some(until) = out.retention().and_then(|r| r.retain_until_date())
                        && latest.is_none_or(|l| until.secs() > l.secs())
                    {
                        latest = Some(*until);
                    }
                }
                Err(e) => {
                    let e = CallError::from_sdk(&e);
                    if !e.is(&["NoSuchObjectLockConfiguration", "InvalidRequest"]) {
                        unreadable = Some(e);
                    }
                }
            }
            match h.send().await {
                Ok(out) => {
                    if out.legal_hold().and_then(|l| l.status())
                        == Some(&ObjectLockLegalHoldStatus::On)
                    {
                        held += 1;
                    }
                }
                Err(e) => {
                    let e = CallError::from_sdk(&e);
                    if !e.is(&["NoSuchObjectLockConfiguration", "InvalidRequest"]) {
                        unreadable = Some(e);
                    }
                }
            }
        }
    }
    let mut why = format!("Object Lock is on for {}: {default}", req.bucket);
    if sampled > 0 {
        why += &format!(
            "; of {sampled} sampled recordings {held} have a legal hold (kept until released)"
        );
        if let Some(l) = latest {
            let when = chrono::DateTime::from_timestamp(l.secs(), 0)
                .map(|d| d.date_naive().to_string())
                .unwrap_or_default();
            why += &format!(
                "; the last retention in the sample ends {when}: originals can go from then"
            );
        }
    }
    let mut checks = vec![Check::warn(
        NAME,
        why,
        "nothing to change for the job to run; plan the savings from the retention's end \
         (`estimate --noncurrent-days` with the retention in days)",
    )];
    if let Some(e) = unreadable {
        checks.push(not_checked(
            "legal-holds",
            "GetObjectRetention/GetObjectLegalHold",
            "s3:GetObjectRetention and s3:GetObjectLegalHold",
            &e,
        ));
    }
    checks
}

/// The bucket's default encryption and a sample's: the KMS keys the handler must use.
pub async fn encryption(s3: &aws_sdk_s3::Client, req: &DoctorRequest) -> (Check, Vec<String>) {
    const NAME: &str = "encryption";
    let mut keys: Vec<String> = Vec::new();
    let mut default = String::from("no default encryption");
    match s3.get_bucket_encryption().bucket(&req.bucket).send().await {
        Ok(out) => {
            for r in out
                .server_side_encryption_configuration()
                .map(|c| c.rules())
                .unwrap_or_default()
            {
                if let Some(d) = r.apply_server_side_encryption_by_default() {
                    default = format!("default {}", d.sse_algorithm().as_str());
                    if let Some(k) = d.kms_master_key_id() {
                        default += &format!(" with {k}");
                        keys.push(k.to_string());
                    }
                }
            }
        }
        Err(e) => {
            let e = CallError::from_sdk(&e);
            if !(e.is(&["ServerSideEncryptionConfigurationNotFoundError"]) || e.not_implemented()) {
                return (
                    not_checked(
                        NAME,
                        "GetBucketEncryption",
                        "s3:GetEncryptionConfiguration",
                        &e,
                    ),
                    keys,
                );
            }
        }
    }
    let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
    let mut sampled = 0;
    if let Some(f) = &req.facts {
        for o in &f.sample {
            let mut h = s3.head_object().bucket(&req.bucket).key(&o.key);
            if let Some(v) = &o.version_id {
                h = h.version_id(v);
            }
            match h.send().await {
                Ok(out) => {
                    sampled += 1;
                    let kind = out
                        .server_side_encryption()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "none".into());
                    *by_kind.entry(kind).or_default() += 1;
                    if let Some(k) = out.ssekms_key_id()
                        && !keys.iter().any(|x| x == k)
                    {
                        keys.push(k.to_string());
                    }
                }
                Err(e) => {
                    let e = CallError::from_sdk(&e);
                    return (
                        not_checked(
                            NAME,
                            &format!("HeadObject of {}", o.key),
                            "s3:GetObject (and s3:GetObjectVersion)",
                            &e,
                        ),
                        keys,
                    );
                }
            }
        }
    }
    let sample = if sampled > 0 {
        format!(
            "; {sampled} sampled recordings: {}",
            by_kind
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        String::new()
    };
    let why = if keys.is_empty() {
        format!("{default} on {}{sample}: no KMS key to use", req.bucket)
    } else {
        format!(
            "{default} on {}{sample}: the handler must use KMS key {} (checked below)",
            req.bucket,
            keys.join(", ")
        )
    };
    (Check::pass(NAME, why), keys)
}

/// Conversions are new versions: a replication rule on the prefix copies every one of them.
pub async fn replication(s3: &aws_sdk_s3::Client, req: &DoctorRequest) -> Check {
    const NAME: &str = "replication";
    match s3.get_bucket_replication().bucket(&req.bucket).send().await {
        Ok(out) => {
            let Some(conf) = out.replication_configuration() else {
                return Check::pass(NAME, "no replication configured");
            };
            let mut to = Vec::new();
            for r in conf.rules() {
                if r.status() != &ReplicationRuleStatus::Enabled {
                    continue;
                }
                #[allow(deprecated)]
                let legacy = r.prefix().unwrap_or("");
                let prefix = r
                    .filter()
                    .and_then(|f| f.prefix().or_else(|| f.and().and_then(|a| a.prefix())))
                    .unwrap_or(legacy);
                if covers(prefix, &req.prefix)
                    || req.prefix.is_empty()
                    || prefix.starts_with(&req.prefix)
                {
                    let dest = r
                        .destination()
                        .map(|d| d.bucket().trim_start_matches("arn:aws:s3:::").to_string())
                        .unwrap_or_default();
                    to.push(dest);
                }
            }
            if to.is_empty() {
                Check::pass(
                    NAME,
                    format!("replication on {} does not cover the prefix", req.bucket),
                )
            } else {
                Check::warn(
                    NAME,
                    format!(
                        "replication copies the prefix to {}: every conversion will replicate as a \
                         new version there (a PUT and storage per recording), and the replicas of \
                         the originals stay unless that bucket expires noncurrent versions too",
                        to.join(", ")
                    ),
                    format!(
                        "expect the replication cost; add the NoncurrentVersionExpiration rule to {} \
                         as well",
                        to.join(", ")
                    ),
                )
            }
        }
        Err(e) => {
            let e = CallError::from_sdk(&e);
            if e.is(&["ReplicationConfigurationNotFoundError"]) {
                Check::pass(NAME, format!("no replication on {}", req.bucket))
            } else if e.not_implemented() {
                Check::pass(NAME, "this S3 has no replication (NotImplemented)")
            } else {
                not_checked(
                    NAME,
                    "GetBucketReplication",
                    "s3:GetReplicationConfiguration",
                    &e,
                )
            }
        }
    }
}

/// Recordings in archive classes are left out of the selection: they need a restore first.
pub fn archived(req: &DoctorRequest, f: &Facts) -> Check {
    const NAME: &str = "archive-classes";
    if f.archived.objects == 0 {
        return Check::pass(
            NAME,
            "no selected-looking recording is in GLACIER or DEEP_ARCHIVE",
        );
    }
    Check::warn(
        NAME,
        format!(
            "{} recordings ({}) under {:?} are in GLACIER or DEEP_ARCHIVE: not selected, they \
             cannot be read without a restore",
            f.archived.objects,
            gb(f.archived.bytes),
            req.prefix
        ),
        format!(
            "restore them first (aws s3api restore-object --bucket {} --key KEY --restore-request \
             Days=7, or a Batch Operations restore job), then select them again",
            req.bucket
        ),
    )
}

/// The report bucket must exist and belong to the job's account (Batch Operations writes the
/// report as that account).
pub async fn report_bucket(
    s3: &aws_sdk_s3::Client,
    req: &DoctorRequest,
    account: Option<&str>,
) -> Check {
    const NAME: &str = "report-bucket";
    let Some(Location::S3 { bucket, .. }) = &req.report else {
        return match &req.report {
            Some(Location::Local(p)) => Check::fail(
                NAME,
                format!("the report location {} is not in S3", p.display()),
                "give --report s3://bucket/prefix",
            ),
            _ => Check::warn(
                NAME,
                "no completion report location: the job's per-recording results would not be kept",
                "give --report s3://bucket/prefix (template: OpsBucket and ReportPrefix)",
            ),
        };
    };
    let mut head = s3.head_bucket().bucket(bucket);
    if let Some(a) = account {
        head = head.expected_bucket_owner(a);
    }
    match head.send().await {
        Ok(_) => Check::pass(
            NAME,
            match account {
                Some(a) => format!("{bucket} exists and belongs to account {a}"),
                None => format!("{bucket} exists (its owner was not compared: no account id)"),
            },
        ),
        Err(e) => {
            let e = CallError::from_sdk(&e);
            if e.status == Some(404) {
                Check::fail(
                    NAME,
                    format!("report bucket {bucket} does not exist"),
                    format!("aws s3 mb s3://{bucket}, or give another --report"),
                )
            } else if e.denied() {
                Check::fail(
                    NAME,
                    format!(
                        "report bucket {bucket} is not owned by account {} (or HeadBucket is \
                         refused): Batch Operations writes reports only to the job account's \
                         buckets",
                        account.unwrap_or("?")
                    ),
                    "give --report s3://<a bucket of the job's account>/prefix",
                )
            } else {
                not_checked(NAME, "HeadBucket", "s3:ListBucket", &e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_covers_its_prefix_and_below_only() {
        assert!(covers("", "connect/acme/CallRecordings/"));
        assert!(covers("connect/", "connect/acme/CallRecordings/"));
        assert!(covers(
            "connect/acme/CallRecordings/",
            "connect/acme/CallRecordings/"
        ));
        assert!(!covers("connect/other/", "connect/acme/CallRecordings/"));
        assert!(!covers(
            "connect/acme/CallRecordings/2025/",
            "connect/acme/CallRecordings/"
        ));
    }
}
