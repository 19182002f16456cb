//! The job role (it must trust Batch Operations, invoke the function, read the manifest and write
//! the report) and the handler role's use of the recordings' KMS keys.
//!
//! Permissions are asked of IAM's policy simulator (`SimulatePrincipalPolicy`) where the caller
//! may use it. Where it is refused or not implemented (moto), the role's own inline and attached
//! policies are read and evaluated here, Allow and Deny with wildcards; a statement with a
//! condition, `NotAction` or `NotResource` is not guessed at: the check then says it was not
//! checked. Permission boundaries, SCPs and resource policies (a KMS key policy) are left to the
//! simulator, and the answer says so.

use serde_json::Value;

use super::function::Function;
use super::{CallError, Check, DoctorRequest, not_checked};
use crate::location::Location;

/// The service principal of S3 Batch Operations.
pub const BATCH_PRINCIPAL: &str = "batchoperations.s3.amazonaws.com";

/// What a role may do, as far as it could be found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Allowed (by the simulator, or by the role's policies).
    Allowed,
    /// Denied: explicitly, or nothing allows it. The text says which.
    Denied(String),
    /// Could not be decided; why.
    Unknown(String),
}

/// A policy document from IAM: JSON, URL-encoded as the API returns it (moto returns it plain).
pub fn parse_document(raw: &str) -> Option<Value> {
    serde_json::from_str(raw).ok().or_else(|| {
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?;
        serde_json::from_str(&decoded).ok()
    })
}

fn list(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        v @ Value::Object(_) => vec![v],
        _ => Vec::new(),
    }
}

/// IAM's wildcard match: `*` any run, `?` one character.
pub fn glob(pattern: &str, s: &str, case_insensitive: bool) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            s.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), s.chars().collect())
    };
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether a trust policy lets Batch Operations assume the role.
pub fn trusts_batch_operations(doc: &Value) -> bool {
    statements(doc).iter().any(|s| {
        s["Effect"].as_str() == Some("Allow")
            && list(&s["Action"])
                .iter()
                .any(|a| glob(a, "sts:AssumeRole", true))
            && match &s["Principal"] {
                Value::String(p) => p == "*",
                p => list(&p["Service"]).contains(&BATCH_PRINCIPAL),
            }
    })
}

/// Evaluates `action` on `resource` against identity policies (no conditions guessed at).
pub fn evaluate(docs: &[(String, Value)], action: &str, resource: &str) -> Access {
    let mut allowed_by = None;
    let mut conditional = None;
    for (name, doc) in docs {
        for s in statements(doc) {
            if s.get("NotAction").is_some() || s.get("NotResource").is_some() {
                if s["Effect"].as_str() == Some("Deny") || allowed_by.is_none() {
                    conditional.get_or_insert_with(|| {
                        format!("{name} has a NotAction/NotResource statement")
                    });
                }
                continue;
            }
            let acts = list(&s["Action"]).iter().any(|a| glob(a, action, true));
            let res = list(&s["Resource"])
                .iter()
                .any(|r| glob(r, resource, false));
            if !(acts && res) {
                continue;
            }
            let has_condition = s.get("Condition").is_some_and(|c| !c.is_null());
            match (s["Effect"].as_str(), has_condition) {
                (Some("Deny"), false) => {
                    return Access::Denied(format!("{name} denies {action} on {resource}"));
                }
                (Some("Deny"), true) => {
                    conditional
                        .get_or_insert_with(|| format!("{name} denies it under a condition"));
                }
                (Some("Allow"), false) => {
                    allowed_by.get_or_insert_with(|| name.clone());
                }
                (Some("Allow"), true) => {
                    conditional
                        .get_or_insert_with(|| format!("{name} allows it only under a condition"));
                }
                _ => {}
            }
        }
    }
    match (allowed_by, conditional) {
        (Some(_), None) => Access::Allowed,
        (_, Some(c)) => Access::Unknown(c),
        (None, None) => Access::Denied(format!(
            "no policy of the role allows {action} on {resource}"
        )),
    }
}

fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// A failed IAM call: its name, the permission it needs, and the error.
type Failed = (String, String, CallError);

fn failed<E>(
    call: &'static str,
    permission: &'static str,
) -> impl FnOnce(aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>) -> Failed
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| (call.into(), permission.into(), CallError::from_sdk(&e))
}

/// The role's inline and attached policies, by name.
async fn role_policies(
    iam: &aws_sdk_iam::Client,
    role: &str,
) -> Result<Vec<(String, Value)>, Failed> {
    let name = role_name(role);
    let mut docs = Vec::new();
    let inline = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(failed("ListRolePolicies", "iam:ListRolePolicies"))?;
    for p in inline.policy_names() {
        let out = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
            .map_err(failed("GetRolePolicy", "iam:GetRolePolicy"))?;
        if let Some(doc) = parse_document(out.policy_document()) {
            docs.push((format!("inline policy {p}"), doc));
        }
    }
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(failed(
            "ListAttachedRolePolicies",
            "iam:ListAttachedRolePolicies",
        ))?;
    for p in attached.attached_policies() {
        let Some(arn) = p.policy_arn() else { continue };
        let policy = iam
            .get_policy()
            .policy_arn(arn)
            .send()
            .await
            .map_err(failed("GetPolicy", "iam:GetPolicy"))?;
        let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else {
            continue;
        };
        let out = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
            .map_err(failed("GetPolicyVersion", "iam:GetPolicyVersion"))?;
        if let Some(doc) = out
            .policy_version()
            .and_then(|v| v.document())
            .and_then(parse_document)
        {
            docs.push((format!("policy {}", p.policy_name().unwrap_or(arn)), doc));
        }
    }
    Ok(docs)
}

/// Asks the simulator; on refusal, evaluates the role's policies. Returns each action's access
/// and how it was found out.
async fn access(
    iam: &aws_sdk_iam::Client,
    role: &str,
    wanted: &[(&str, String)],
) -> (Vec<Access>, String) {
    let mut simulated = Vec::new();
    let mut refused = None;
    for (action, resource) in wanted {
        match iam
            .simulate_principal_policy()
            .policy_source_arn(role)
            .action_names(*action)
            .resource_arns(resource)
            .send()
            .await
        {
            Ok(out) => {
                let decision = out
                    .evaluation_results()
                    .first()
                    .map(|r| r.eval_decision().as_str().to_string())
                    .unwrap_or_default();
                simulated.push(match decision.as_str() {
                    "allowed" => Access::Allowed,
                    "explicitDeny" => {
                        Access::Denied(format!("{action} on {resource} is explicitly denied"))
                    }
                    _ => Access::Denied(format!("nothing allows {action} on {resource}")),
                });
            }
            Err(e) => {
                refused = Some(CallError::from_sdk(&e));
                break;
            }
        }
    }
    let Some(refused) = refused else {
        return (simulated, "by IAM's policy simulator".into());
    };
    let how = format!(
        "from the role's own policies (SimulatePrincipalPolicy: {}; permission boundaries, SCPs \
         and resource policies not considered)",
        if refused.denied() {
            "refused, needs iam:SimulatePrincipalPolicy".to_string()
        } else {
            let d = refused.describe();
            d.chars().take(120).collect::<String>()
        }
    );
    match role_policies(iam, role).await {
        Ok(docs) => (
            wanted.iter().map(|(a, r)| evaluate(&docs, a, r)).collect(),
            how,
        ),
        Err((call, permission, e)) => {
            let why = if e.denied() {
                format!("{call} refused: needs {permission}, or iam:SimulatePrincipalPolicy")
            } else {
                format!("{call} failed: {}", e.describe())
            };
            (
                wanted
                    .iter()
                    .map(|_| Access::Unknown(why.clone()))
                    .collect(),
                how,
            )
        }
    }
}

fn s3_object_arn(loc: &Location, below: &str) -> Option<String> {
    match loc {
        Location::S3 { bucket, key } => Some(format!(
            "arn:aws:s3:::{bucket}/{}{below}",
            key.trim_end_matches('/')
        )),
        Location::Local(_) => None,
    }
}

/// The job role: exists, trusts Batch Operations, may invoke the function, read the manifest and
/// write the report.
pub async fn job_role(iam: &aws_sdk_iam::Client, role: &str, req: &DoctorRequest) -> Vec<Check> {
    const NAME: &str = "job-role";
    let name = role_name(role);
    let trust_fix = format!(
        "aws iam update-assume-role-policy --role-name {name} --policy-document \
         '{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":\
         {{\"Service\":\"{BATCH_PRINCIPAL}\"}},\"Action\":\"sts:AssumeRole\"}}]}}' (the stack's \
         BatchJobRole has it)"
    );
    let got = match iam.get_role().role_name(name).send().await {
        Ok(out) => out,
        Err(e) => {
            let e = CallError::from_sdk(&e);
            return vec![if e.is(&["NoSuchEntity"]) || e.status == Some(404) {
                Check::fail(
                    NAME,
                    format!("role {role} does not exist"),
                    "deploy the stack and give its BatchJobRoleArn output as --role-arn",
                )
            } else {
                not_checked(NAME, "GetRole", "iam:GetRole", &e)
            }];
        }
    };
    let trust = got
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .and_then(parse_document);
    let mut checks = vec![match trust {
        Some(doc) if trusts_batch_operations(&doc) => {
            Check::pass(NAME, format!("{name} trusts {BATCH_PRINCIPAL}"))
        }
        Some(_) => Check::fail(
            NAME,
            format!("{name} does not trust {BATCH_PRINCIPAL}: the job cannot assume it"),
            trust_fix,
        ),
        None => Check::warn(
            NAME,
            format!("{name}'s trust policy could not be read"),
            trust_fix,
        ),
    }];
    let mut wanted: Vec<(&str, String, &str)> = Vec::new();
    if let Some(f) = &req.function_arn {
        wanted.push(("lambda:InvokeFunction", f.clone(), "invoke the function"));
    }
    if let Some(m) = req.manifest.as_ref().and_then(|m| s3_object_arn(m, "")) {
        wanted.push(("s3:GetObject", m, "read the manifest"));
    }
    if let Some(r) = req
        .report
        .as_ref()
        .and_then(|r| s3_object_arn(r, "/job-doctor/results/check.csv"))
    {
        wanted.push(("s3:PutObject", r, "write the report"));
    }
    if wanted.is_empty() {
        return checks;
    }
    let pairs: Vec<(&str, String)> = wanted.iter().map(|(a, r, _)| (*a, r.clone())).collect();
    let (answers, how) = access(iam, role, &pairs).await;
    let policy_fix = format!(
        "allow {} in a policy of {name} (the stack's BatchJobRole has them)",
        wanted
            .iter()
            .map(|(a, r, _)| format!("{a} on {r}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut denied = Vec::new();
    let mut unknown = Vec::new();
    for ((_, _, what), a) in wanted.iter().zip(&answers) {
        match a {
            Access::Allowed => {}
            Access::Denied(why) => denied.push(format!("may not {what} ({why})")),
            Access::Unknown(why) => unknown.push(format!("{what}: not checked ({why})")),
        }
    }
    let may = wanted
        .iter()
        .map(|(_, _, w)| *w)
        .collect::<Vec<_>>()
        .join(", ");
    checks.push(if !denied.is_empty() {
        Check::fail(
            "job-role-permissions",
            format!("{name} {}; evaluated {how}", denied.join("; ")),
            policy_fix,
        )
    } else if !unknown.is_empty() {
        Check::warn(
            "job-role-permissions",
            format!("{name}: {}", unknown.join("; ")),
            policy_fix,
        )
    } else {
        Check::pass(
            "job-role-permissions",
            format!("{name} may {may}; evaluated {how}"),
        )
    });
    checks
}

/// The handler's execution role must decrypt the originals and encrypt the conversions with the
/// recordings' KMS keys.
pub async fn kms_use(iam: &aws_sdk_iam::Client, func: Option<&Function>, keys: &[String]) -> Check {
    const NAME: &str = "kms";
    let Some(role) = func.and_then(|f| f.role.clone()) else {
        return Check::warn(
            NAME,
            format!(
                "recordings use KMS key {}; the handler's role is unknown (no function read): \
                 not checked",
                keys.join(", ")
            ),
            "give --function-arn, or template parameter KmsKeyArn",
        );
    };
    let mut wanted = Vec::new();
    for k in keys {
        // A key id or alias in the bucket's default: the simulator wants an ARN; say so.
        for action in ["kms:Decrypt", "kms:GenerateDataKey"] {
            wanted.push((action, k.clone()));
        }
    }
    let (answers, how) = access(iam, &role, &wanted).await;
    let fix = format!(
        "template parameter KmsKeyArn={} (grants the handler role kms:Decrypt and \
         kms:GenerateDataKey), and allow the role in the key policy",
        keys[0]
    );
    let denied: Vec<String> = answers
        .iter()
        .filter_map(|a| match a {
            Access::Denied(w) => Some(w.clone()),
            _ => None,
        })
        .collect();
    let unknown: Vec<String> = answers
        .iter()
        .filter_map(|a| match a {
            Access::Unknown(w) => Some(w.clone()),
            _ => None,
        })
        .collect();
    let role_name = role_name(&role);
    if !denied.is_empty() {
        Check::fail(
            NAME,
            format!(
                "the handler role {role_name} may not use {}: {}; tasks would fail with \
                 AccessDenied (evaluated {how})",
                keys.join(", "),
                denied.join("; ")
            ),
            fix,
        )
    } else if !unknown.is_empty() {
        Check::warn(
            NAME,
            format!(
                "the handler role {role_name}'s use of {}: not checked ({})",
                keys.join(", "),
                unknown.join("; ")
            ),
            fix,
        )
    } else {
        Check::pass(
            NAME,
            format!(
                "the handler role {role_name} may decrypt with and generate data keys of {} \
                 (evaluated {how}; the key policy must allow it too)",
                keys.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("s3:*", "s3:GetObject", true));
        assert!(glob("S3:getobject", "s3:GetObject", true));
        assert!(glob("arn:aws:s3:::b/*", "arn:aws:s3:::b/k/x.csv", false));
        assert!(!glob("arn:aws:s3:::b/*", "arn:aws:s3:::c/k", false));
        assert!(glob("arn:aws:s3:::b/?.csv", "arn:aws:s3:::b/1.csv", false));
        assert!(!glob("arn:aws:s3:::B/*", "arn:aws:s3:::b/k", false));
        assert!(glob("*", "", false));
    }

    #[test]
    fn trust_needs_the_batch_principal_and_assume_role() {
        let ok = json!({"Statement":[{"Effect":"Allow","Principal":{"Service":[BATCH_PRINCIPAL]},"Action":"sts:AssumeRole"}]});
        assert!(trusts_batch_operations(&ok));
        let lambda = json!({"Statement":{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}});
        assert!(!trusts_batch_operations(&lambda));
        let deny = json!({"Statement":[{"Effect":"Deny","Principal":{"Service":BATCH_PRINCIPAL},"Action":"sts:AssumeRole"}]});
        assert!(!trusts_batch_operations(&deny));
        let encoded = "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22batchoperations.s3.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";
        assert!(trusts_batch_operations(&parse_document(encoded).unwrap()));
    }

    #[test]
    fn explicit_deny_wins_and_conditions_are_not_guessed() {
        let allow = json!({"Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::b/*"}]});
        let deny = json!({"Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]});
        let cond = json!({"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]});
        let r = "arn:aws:s3:::b/m.csv";
        assert_eq!(
            evaluate(&[("a".into(), allow.clone())], "s3:GetObject", r),
            Access::Allowed
        );
        assert!(matches!(
            evaluate(
                &[("a".into(), allow.clone()), ("d".into(), deny)],
                "s3:GetObject",
                r
            ),
            Access::Denied(_)
        ));
        assert!(matches!(
            evaluate(&[("a".into(), allow.clone())], "s3:PutObject", r),
            Access::Denied(_)
        ));
        assert!(matches!(
            evaluate(&[("c".into(), cond)], "s3:GetObject", r),
            Access::Unknown(_)
        ));
    }
}
