//! The Lambda invocation of S3 Batch Operations, schema 1.0 and 2.0: built by the local engine,
//! parsed by the handler, answered with one result per task.
//!
//! Own types rather than `aws_lambda_events`: its task type has no `s3Bucket` and its job type no
//! `userArguments`, so a 2.0 event would lose the bucket (`s3-batch-ops.md` §8). Parsing starts
//! from a JSON value and never fails as a whole: whatever is wrong becomes a `PermanentFailure`
//! of the task it concerns (or of every task), with the reason, because S3 records a Lambda
//! error as an opaque "Lambda returned function error" and an invocation must answer every task.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::key::decode_key;
use crate::text::one_line;

/// Longest `resultString` we send: the limit is undocumented, the report stores it in a CSV cell.
pub const MAX_RESULT_STRING: usize = 1024;

/// Bucket name from a bucket ARN: the text after the last `:` (both ARN forms AWS sends).
pub fn bucket_from_arn(arn: &str) -> Option<&str> {
    let name = arn.rsplit(':').next()?;
    (!name.is_empty() && arn.starts_with("arn:")).then_some(name)
}

/// The invocation schema versions S3 Batch Operations sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaVersion {
    /// Bucket as `s3BucketArn`; no user arguments.
    V1,
    /// Bucket as `s3Bucket`; `job.userArguments`.
    V2,
}

/// One task, with its key decoded: what the task logic works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Opaque id to echo.
    pub task_id: String,
    /// Bucket name.
    pub bucket: String,
    /// Key as sent (URL-encoded), for logs and reports.
    pub raw_key: String,
    /// Decoded key, as S3 knows it.
    pub key: String,
    /// Version to act on; `None` when the manifest had none.
    pub version_id: Option<String>,
}

/// A task as found in the event: usable, or already failed with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEntry {
    /// Ready to process.
    Ready(Task),
    /// Malformed; answered with `PermanentFailure` and this reason.
    Invalid {
        /// Echoed id (empty when even that was missing).
        task_id: String,
        /// Why.
        reason: String,
    },
}

impl TaskEntry {
    /// The id to echo in the result.
    pub fn task_id(&self) -> &str {
        match self {
            TaskEntry::Ready(t) => &t.task_id,
            TaskEntry::Invalid { task_id, .. } => task_id,
        }
    }
}

/// A parsed invocation; `error` fails every task when the event itself is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The version string as sent, echoed back byte for byte.
    pub raw_version: String,
    /// Parsed version, when known.
    pub version: Option<SchemaVersion>,
    /// Echoed back.
    pub invocation_id: String,
    /// Batch Operations job id (not necessarily a UUID).
    pub job_id: String,
    /// Schema 2.0 `job.userArguments` (absent, `null` and `{}` all mean none).
    pub user_arguments: BTreeMap<String, String>,
    /// Every element of `tasks`, in order.
    pub tasks: Vec<TaskEntry>,
    /// Set when no task can run (unknown version, bad userArguments...).
    pub error: Option<String>,
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// Reads an event; never fails, see the module docs.
pub fn parse(event: &Value) -> Invocation {
    let mut inv = Invocation {
        raw_version: str_field(event, "invocationSchemaVersion")
            .unwrap_or_default()
            .to_string(),
        version: None,
        invocation_id: str_field(event, "invocationId")
            .unwrap_or_default()
            .to_string(),
        job_id: event
            .get("job")
            .and_then(|j| str_field(j, "id"))
            .unwrap_or_default()
            .to_string(),
        user_arguments: BTreeMap::new(),
        tasks: Vec::new(),
        error: None,
    };
    let mut errors = Vec::new();
    if !event.is_object() {
        errors.push("event is not a JSON object".to_string());
    }
    match event.get("invocationSchemaVersion") {
        None | Some(Value::Null) => errors.push("missing invocationSchemaVersion".into()),
        Some(Value::String(s)) if s == "1.0" => inv.version = Some(SchemaVersion::V1),
        Some(Value::String(s)) if s == "2.0" => inv.version = Some(SchemaVersion::V2),
        Some(other) => errors.push(format!(
            "unknown invocationSchemaVersion {other} (expected \"1.0\" or \"2.0\")"
        )),
    }
    if inv.invocation_id.is_empty() {
        errors.push("missing invocationId".into());
    }
    match event.get("job").and_then(|j| j.get("userArguments")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        inv.user_arguments.insert(k.clone(), s.clone());
                    }
                    other => errors.push(format!("userArguments.{k} is not a string: {other}")),
                }
            }
        }
        Some(other) => errors.push(format!("job.userArguments is not an object: {other}")),
    }
    match event.get("tasks") {
        Some(Value::Array(tasks)) => {
            inv.tasks = tasks.iter().map(|t| parse_task(t, inv.version)).collect();
        }
        None | Some(Value::Null) => errors.push("missing tasks".into()),
        Some(_) => errors.push("tasks is not an array".into()),
    }
    if !errors.is_empty() {
        inv.error = Some(errors.join("; "));
    }
    inv
}

fn parse_task(t: &Value, version: Option<SchemaVersion>) -> TaskEntry {
    let task_id = str_field(t, "taskId").unwrap_or_default().to_string();
    let invalid = |reason: String| TaskEntry::Invalid {
        task_id: task_id.clone(),
        reason,
    };
    if task_id.is_empty() {
        return invalid("task has no taskId".into());
    }
    let by_name = str_field(t, "s3Bucket")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let by_arn = match str_field(t, "s3BucketArn") {
        Some(arn) => match bucket_from_arn(arn) {
            Some(b) => Some(b.to_string()),
            None => return invalid(format!("s3BucketArn '{arn}' is not a bucket ARN")),
        },
        None => None,
    };
    // Each version has its own field; the other one is accepted as a fallback.
    let bucket = match version {
        Some(SchemaVersion::V2) => by_name.or(by_arn),
        _ => by_arn.or(by_name),
    };
    let Some(bucket) = bucket else {
        let field = if version == Some(SchemaVersion::V2) {
            "s3Bucket"
        } else {
            "s3BucketArn"
        };
        return invalid(format!("task has no {field}"));
    };
    let Some(raw_key) = str_field(t, "s3Key") else {
        return invalid("task has no s3Key".into());
    };
    let key = match decode_key(raw_key) {
        Ok(k) => k,
        Err(e) => return invalid(format!("{e}: '{raw_key}'")),
    };
    let version_id = match t.get("s3VersionId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return invalid(format!("s3VersionId is not a string: {other}")),
    };
    TaskEntry::Ready(Task {
        task_id,
        bucket,
        raw_key: raw_key.to_string(),
        key,
        version_id,
    })
}

/// The three result codes S3 understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultCode {
    /// Done (converted, or nothing to do).
    Succeeded,
    /// S3 redrives the task later.
    TemporaryFailure,
    /// The task fails; the reason goes to the report.
    PermanentFailure,
}

/// One entry of `results`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// Echoed.
    pub task_id: String,
    /// Outcome.
    pub result_code: ResultCode,
    /// One line, no control characters, at most [`MAX_RESULT_STRING`] bytes.
    pub result_string: String,
}

impl TaskResult {
    /// Builds a result, making the string safe for the report.
    pub fn new(task_id: &str, result_code: ResultCode, result_string: &str) -> Self {
        TaskResult {
            task_id: task_id.to_string(),
            result_code,
            result_string: one_line(result_string, MAX_RESULT_STRING),
        }
    }
}

/// The function's return value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Echoed from the request.
    pub invocation_schema_version: String,
    /// Always sent: the service default is `TemporaryFailure`.
    pub treat_missing_keys_as: ResultCode,
    /// Echoed from the request.
    pub invocation_id: String,
    /// One per task, in request order.
    pub results: Vec<TaskResult>,
}

impl Response {
    /// An empty response for `inv`; results are pushed by the caller.
    pub fn for_invocation(inv: &Invocation) -> Self {
        Response {
            invocation_schema_version: inv.raw_version.clone(),
            treat_missing_keys_as: ResultCode::PermanentFailure,
            invocation_id: inv.invocation_id.clone(),
            results: Vec::with_capacity(inv.tasks.len()),
        }
    }
}

/// One task of an event being built, its key exactly as the manifest spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingTask<'a> {
    /// Opaque id the function echoes.
    pub task_id: &'a str,
    /// Bucket name.
    pub bucket: &'a str,
    /// Key as written in the manifest (URL-encoded).
    pub raw_key: &'a str,
    /// Version, when the manifest has one.
    pub version_id: Option<&'a str>,
}

/// Builds the event Batch Operations sends for one task: schema `"2.0"` (bucket by name, the
/// job's `userArguments`) or anything else as `"1.0"` (bucket ARN, no arguments).
pub fn build(
    schema_version: Option<&str>,
    invocation_id: &str,
    job_id: &str,
    user_arguments: Option<&BTreeMap<String, String>>,
    task: OutgoingTask<'_>,
) -> Value {
    let mut t = serde_json::Map::new();
    t.insert("taskId".into(), task.task_id.into());
    if schema_version == Some("2.0") {
        t.insert("s3Bucket".into(), task.bucket.into());
    } else {
        t.insert(
            "s3BucketArn".into(),
            format!("arn:aws:s3:::{}", task.bucket).into(),
        );
    }
    t.insert("s3Key".into(), task.raw_key.into());
    t.insert("s3VersionId".into(), task.version_id.into());
    let mut job = serde_json::Map::new();
    job.insert("id".into(), job_id.into());
    let version = if schema_version == Some("2.0") {
        if let Some(args) = user_arguments {
            job.insert(
                "userArguments".into(),
                serde_json::to_value(args).expect("string map"),
            );
        }
        "2.0"
    } else {
        "1.0"
    };
    serde_json::json!({
        "invocationSchemaVersion": version,
        "invocationId": invocation_id,
        "job": job,
        "tasks": [t],
    })
}

/// A function's answer for one task, as the service reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `Succeeded`, with the result string.
    Succeeded(String),
    /// `TemporaryFailure`: re-driven.
    Temporary(String),
    /// `PermanentFailure`, or an answer the service cannot read.
    Permanent(String),
}

/// Reads a function's response for `task_id` the way the service does: a missing result takes
/// `treatMissingKeysAs` (default `TemporaryFailure`); an unreadable one fails permanently.
pub fn answer(response: &Value, task_id: &str) -> Answer {
    let Some(results) = response.get("results").and_then(Value::as_array) else {
        return Answer::Permanent("Invalid JSON returned in Lambda payload".into());
    };
    let found = results
        .iter()
        .find(|r| r.get("taskId").and_then(Value::as_str) == Some(task_id));
    let (code, text) = match found {
        Some(r) => (
            r.get("resultCode").and_then(Value::as_str).unwrap_or(""),
            r.get("resultString")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        None => (
            response
                .get("treatMissingKeysAs")
                .and_then(Value::as_str)
                .unwrap_or("TemporaryFailure"),
            "the function's answer has no result for this task".to_string(),
        ),
    };
    match code {
        "Succeeded" => Answer::Succeeded(text),
        "TemporaryFailure" => Answer::Temporary(text),
        "PermanentFailure" => Answer::Permanent(text),
        other => Answer::Permanent(format!(
            "Invalid JSON returned in Lambda payload: resultCode {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn only_task(v: Value) -> (Invocation, Task) {
        let inv = parse(&v);
        assert_eq!(inv.error, None);
        assert_eq!(inv.tasks.len(), 1);
        match &inv.tasks[0] {
            TaskEntry::Ready(t) => {
                let t = t.clone();
                (inv, t)
            }
            other => panic!("{other:?}"),
        }
    }

    fn fixture(name: &str) -> Value {
        match name {
            "F1" => {
                json!({"invocationSchemaVersion":"1.0","invocationId":"YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo","job":{"id":"f3cc4f60-61f6-4a2b-8a21-d07600c373ce"},"tasks":[{"taskId":"dGFza2lkZ29lc2hlcmUK","s3Key":"customerImage1.jpg","s3VersionId":"1","s3BucketArn":"arn:aws:s3:us-east-1:0123456788:amzn-s3-demo-bucket1"}]})
            }
            "F3" => {
                json!({"invocationSchemaVersion":"1.0","invocationId":"YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo","job":{"id":"f3cc4f60-61f6-4a2b-8a21-d07600c373ce"},"tasks":[{"taskId":"dGFza2lkZ29lc2hlcmUK","s3Key":"customerImage1.jpg","s3VersionId":"1","s3BucketArn":"arn:aws:s3:::amzn-s3-demo-bucket"}]})
            }
            "F4" => {
                json!({"invocationSchemaVersion":"2.0","invocationId":"Jr3s8KZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZzatx7Ruy","job":{"id":"ry77cd60-61f6-4a2b-8a21-d07600c874gf","userArguments":{"MyDestinationBucket":"destination-directory-bucket-name","MyDestinationBucketRegion":"us-east-1","MyDestinationPrefix":"copied/","MyDestinationObjectKeySuffix":"_new_suffix"}},"tasks":[{"taskId":"y5R3a2lkZ29lc2hlurcS","s3Key":"s3objectkey","s3VersionId":null,"s3Bucket":"source-directory-bucket-name"}]})
            }
            "F5" => {
                json!({"invocationSchemaVersion":"2.0","invocationId":"YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo","job":{"id":"f3cc4f60-61f6-4a2b-8a21-d07600c373ce","userArguments":{"k1":"v1","k2":"v2"}},"tasks":[{"taskId":"dGFza2lkZ29lc2hlcmUK","s3Key":"customerImage1.jpg","s3VersionId":"jbo9_jhdPEyB4RrmOxWS0kU0EoNrU_oI","s3Bucket":"awsexamplebucket"}]})
            }
            "F6" => {
                json!({"invocationSchemaVersion":"2.0","invocationId":"YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo","job":{"id":"f3cc4f60-61f6-4a2b-8a21-d07600c373ce","userArguments":{"k1":"v1","k2":"v2"}},"tasks":[{"taskId":"dGFza2lkZ29lc2hlcmUK","s3Key":"prefix/dataset/dataset.20231222.json.gz","s3VersionId":null,"s3Bucket":"powertools-dataset"}]})
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn f1_f3_schema_1_0_both_arn_forms() {
        let (inv, t) = only_task(fixture("F1"));
        assert_eq!(inv.version, Some(SchemaVersion::V1));
        assert_eq!(inv.job_id, "f3cc4f60-61f6-4a2b-8a21-d07600c373ce");
        assert_eq!(
            (t.bucket.as_str(), t.key.as_str()),
            ("amzn-s3-demo-bucket1", "customerImage1.jpg")
        );
        assert_eq!(t.version_id.as_deref(), Some("1"));
        let (_, t) = only_task(fixture("F3"));
        assert_eq!(t.bucket, "amzn-s3-demo-bucket");
        assert_eq!(t.version_id.as_deref(), Some("1"));
    }

    #[test]
    fn f4_f5_f6_schema_2_0_with_user_arguments() {
        let (inv, t) = only_task(fixture("F4"));
        assert_eq!(inv.version, Some(SchemaVersion::V2));
        assert_eq!(
            inv.job_id, "ry77cd60-61f6-4a2b-8a21-d07600c874gf",
            "job ids are not UUIDs"
        );
        assert_eq!(inv.user_arguments.len(), 4);
        assert_eq!(inv.user_arguments["MyDestinationPrefix"], "copied/");
        assert_eq!(
            (t.bucket.as_str(), t.key.as_str(), t.version_id.clone()),
            ("source-directory-bucket-name", "s3objectkey", None)
        );
        let (inv, t) = only_task(fixture("F5"));
        assert_eq!(inv.user_arguments.get("k2").map(String::as_str), Some("v2"));
        assert_eq!(t.bucket, "awsexamplebucket");
        assert_eq!(
            t.version_id.as_deref(),
            Some("jbo9_jhdPEyB4RrmOxWS0kU0EoNrU_oI")
        );
        let (_, t) = only_task(fixture("F6"));
        assert_eq!(
            (t.bucket.as_str(), t.key.as_str(), t.version_id.clone()),
            (
                "powertools-dataset",
                "prefix/dataset/dataset.20231222.json.gz",
                None
            )
        );
    }

    #[test]
    fn f2_f3_f7_response_shape() {
        // F2/F3/F7: field names, treatMissingKeysAs always present, escaping valid.
        let inv = parse(&fixture("F1"));
        let mut r = Response::for_invocation(&inv);
        r.results.push(TaskResult::new(
            "dGFza2lkZ29lc2hlcmUK",
            ResultCode::Succeeded,
            "[\"Mary Major\", \"John Stiles\"]",
        ));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"invocationSchemaVersion":"1.0","treatMissingKeysAs":"PermanentFailure","invocationId":"YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo","results":[{"taskId":"dGFza2lkZ29lc2hlcmUK","resultCode":"Succeeded","resultString":"[\"Mary Major\", \"John Stiles\"]"}]})
        );
        let inv2 = parse(&fixture("F4"));
        let r2 = Response::for_invocation(&inv2);
        assert_eq!(
            serde_json::to_value(&r2).unwrap()["invocationSchemaVersion"],
            "2.0"
        );
    }

    #[test]
    fn unknown_version_fails_every_task_but_keeps_ids() {
        let mut e = fixture("F5");
        e["invocationSchemaVersion"] = json!("3.0");
        let inv = parse(&e);
        assert!(
            inv.error
                .as_deref()
                .unwrap()
                .contains("unknown invocationSchemaVersion \"3.0\"")
        );
        assert_eq!(inv.tasks[0].task_id(), "dGFza2lkZ29lc2hlcmUK");
        assert_eq!(
            Response::for_invocation(&inv).invocation_schema_version,
            "3.0"
        );
    }

    #[test]
    fn missing_fields_fail_only_their_task() {
        let e = json!({"invocationSchemaVersion":"1.0","invocationId":"i","job":{"id":"j"},"tasks":[
            {"taskId":"a","s3Key":"k","s3BucketArn":"arn:aws:s3:::b"},
            {"taskId":"b","s3BucketArn":"arn:aws:s3:::b"},
            {"taskId":"c","s3Key":"k"},
            {"s3Key":"k","s3BucketArn":"arn:aws:s3:::b"},
            {"taskId":"e","s3Key":"a%zz","s3BucketArn":"arn:aws:s3:::b"},
            {"taskId":"f","s3Key":"k","s3BucketArn":"not-an-arn"},
            {"taskId":"g","s3Key":"k","s3BucketArn":"arn:aws:s3:::b","s3VersionId":7}
        ]});
        let inv = parse(&e);
        assert_eq!(inv.error, None);
        let reasons: Vec<String> = inv
            .tasks
            .iter()
            .map(|t| match t {
                TaskEntry::Ready(_) => "ok".into(),
                TaskEntry::Invalid { reason, .. } => reason.clone(),
            })
            .collect();
        assert_eq!(reasons[0], "ok");
        assert_eq!(reasons[1], "task has no s3Key");
        assert_eq!(reasons[2], "task has no s3BucketArn");
        assert_eq!(reasons[3], "task has no taskId");
        assert!(
            reasons[4].starts_with("key is not URL-encoded"),
            "{}",
            reasons[4]
        );
        assert!(reasons[5].contains("not a bucket ARN"));
        assert!(reasons[6].contains("s3VersionId is not a string"));
    }

    #[test]
    fn broken_events_are_reported_not_panicked_on() {
        for (e, want) in [
            (json!([1, 2]), "not a JSON object"),
            (
                json!({"invocationSchemaVersion":"1.0","invocationId":"i"}),
                "missing tasks",
            ),
            (
                json!({"invocationId":"i","tasks":[]}),
                "missing invocationSchemaVersion",
            ),
            (
                json!({"invocationSchemaVersion":"2.0","tasks":[]}),
                "missing invocationId",
            ),
            (
                json!({"invocationSchemaVersion":"2.0","invocationId":"i","job":{"userArguments":{"a":1}},"tasks":[]}),
                "userArguments.a is not a string",
            ),
            (
                json!({"invocationSchemaVersion":1.0,"invocationId":"i","tasks":[]}),
                "unknown invocationSchemaVersion 1.0",
            ),
        ] {
            let inv = parse(&e);
            assert!(
                inv.error.as_deref().unwrap_or("").contains(want),
                "{e}: {:?}",
                inv.error
            );
        }
        // null / {} / absent userArguments are all "none".
        for ua in [json!(null), json!({})] {
            let inv = parse(
                &json!({"invocationSchemaVersion":"2.0","invocationId":"i","job":{"id":"j","userArguments":ua},"tasks":[]}),
            );
            assert_eq!(inv.error, None);
            assert!(inv.user_arguments.is_empty());
        }
    }

    #[test]
    fn result_strings_are_one_short_line() {
        let r = TaskResult::new("t", ResultCode::PermanentFailure, "line one\nline\ttwo\r");
        assert_eq!(r.result_string, "line one line two ");
        let long = "é".repeat(2000);
        let r = TaskResult::new("t", ResultCode::Succeeded, &long);
        assert!(r.result_string.len() <= MAX_RESULT_STRING);
        assert!(r.result_string.ends_with("..."));
    }

    #[test]
    fn answers_are_read_like_the_service_reads_them() {
        let ok = json!({"results": [{"taskId": "t", "resultCode": "Succeeded", "resultString": "converted"}]});
        assert_eq!(answer(&ok, "t"), Answer::Succeeded("converted".into()));
        let missing = json!({"treatMissingKeysAs": "PermanentFailure", "results": []});
        assert!(matches!(answer(&missing, "t"), Answer::Permanent(_)));
        let default_missing = json!({"results": []});
        assert!(matches!(
            answer(&default_missing, "t"),
            Answer::Temporary(_)
        ));
        assert!(
            matches!(answer(&json!({"x": 1}), "t"), Answer::Permanent(m) if m.starts_with("Invalid JSON"))
        );
    }

    #[test]
    fn built_events_carry_the_schema_asked_for_and_parse_back() {
        let task = OutgoingTask {
            task_id: "t",
            bucket: "b",
            raw_key: "a%3Ab.wav",
            version_id: None,
        };
        let v1 = build(None, "i", "j", None, task);
        assert_eq!(v1["tasks"][0]["s3BucketArn"], "arn:aws:s3:::b");
        assert_eq!(v1["tasks"][0]["s3VersionId"], Value::Null);
        let args: BTreeMap<String, String> = [("codec".to_string(), "alaw".to_string())].into();
        let v2 = build(Some("2.0"), "i", "j", Some(&args), task);
        assert_eq!(v2["tasks"][0]["s3Bucket"], "b");
        assert_eq!(v2["tasks"][0]["s3Key"], "a%3Ab.wav");
        assert_eq!(v2["job"]["userArguments"]["codec"], "alaw");
        for (v, version) in [(v1, SchemaVersion::V1), (v2, SchemaVersion::V2)] {
            let inv = parse(&v);
            assert_eq!(inv.error, None);
            assert_eq!(inv.version, Some(version));
            let TaskEntry::Ready(t) = &inv.tasks[0] else {
                panic!("{:?}", inv.tasks[0])
            };
            assert_eq!((t.bucket.as_str(), t.key.as_str()), ("b", "a:b.wav"));
        }
    }
}
