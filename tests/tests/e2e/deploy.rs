//! The CloudFormation template (`template.yaml`), read the way a security review reads it: every
//! IAM statement is collected and checked for wildcards; and rendered the way CloudFormation
//! renders it (conditions, `Fn::If`, `AWS::NoValue`) to show that the optional parameters change
//! nothing when left empty. cfn-lint and checkov (in `.ci/run`) check the rest.

use std::collections::BTreeMap;

use yaml_rust2::{Yaml, YamlLoader};

fn template_text() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(text: &str) -> Yaml {
    YamlLoader::load_from_str(text)
        .expect("template.yaml is YAML")
        .remove(0)
}

fn items(y: &Yaml) -> Vec<Yaml> {
    match y {
        Yaml::Array(v) => v.clone(),
        Yaml::BadValue => Vec::new(),
        other => vec![other.clone()],
    }
}

/// (role, statement) for every statement of every inline policy (both branches of an Fn::If).
fn statements(t: &Yaml) -> Vec<(String, Yaml)> {
    let mut out = Vec::new();
    let Some(resources) = t["Resources"].as_hash() else {
        return out;
    };
    for (name, r) in resources {
        let name = name.as_str().unwrap_or("?").to_string();
        let mut docs = Vec::new();
        for p in items(&r["Properties"]["Policies"]) {
            match &p["Fn::If"] {
                Yaml::Array(branches) => {
                    docs.extend(branches.iter().skip(1).map(|b| b["PolicyDocument"].clone()))
                }
                _ => docs.push(p["PolicyDocument"].clone()),
            }
        }
        docs.push(r["Properties"]["PolicyDocument"].clone());
        for d in docs {
            for s in items(&d["Statement"]) {
                out.push((name.clone(), s));
            }
        }
    }
    out
}

/// Every grant a reviewer would refuse.
fn problems(t: &Yaml) -> Vec<String> {
    let mut p = Vec::new();
    let all = statements(t);
    if all.len() < 10 {
        p.push(format!(
            "only {} IAM statements found: the checker reads the wrong shape",
            all.len()
        ));
    }
    for (role, s) in &all {
        let actions: Vec<String> = items(&s["Action"])
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        let resources = items(&s["Resource"]);
        if s["Effect"].as_str() != Some("Allow") {
            p.push(format!("{role}: only Allow statements are expected"));
        }
        for a in &actions {
            if a.contains('*') {
                p.push(format!("{role}: wildcard action {a}"));
            }
        }
        let star = resources.iter().any(|r| r.as_str() == Some("*"));
        // EC2's Describe actions have no resource-level permissions; nothing else may use "*".
        let describe_only = !actions.is_empty()
            && actions
                .iter()
                .all(|a| a == "ec2:DescribeNetworkInterfaces" || a == "ec2:DescribeSubnets");
        let ec2 = actions.iter().any(|a| a.starts_with("ec2:"));
        if ec2 && !star {
            for r in &resources {
                let arn = r["Fn::Sub"].as_str().unwrap_or("");
                if !arn.starts_with("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:") {
                    p.push(format!(
                        "{role}: EC2 resource {r:?} outside this account and region"
                    ));
                }
            }
        }
        if actions.iter().any(|a| a.starts_with("sqs:"))
            && !(resources.len() == 1
                && items(&resources[0]["Fn::GetAtt"])
                    .first()
                    .and_then(Yaml::as_str)
                    == Some("FailedRunsQueue"))
        {
            p.push(format!(
                "{role}: {actions:?} on {resources:?}, not only the failed-runs queue"
            ));
        }
        let s3 = actions.iter().any(|a| a.starts_with("s3:"));
        let create_job_only = actions == ["s3:CreateJob"]
            && s["Condition"]["StringEquals"]["s3:RequestJobOperation"].as_str()
                == Some("LambdaInvoke");
        if star && !create_job_only && !describe_only {
            p.push(format!("{role}: {actions:?} on every resource (\"*\")"));
        }
        if s3 && !star {
            for r in &resources {
                let arn = r["Fn::Sub"].as_str().unwrap_or("");
                let named = arn.contains("${RecordingsBucket}") || arn.contains("${OpsBucket}");
                if !arn.starts_with("arn:${AWS::Partition}:s3:::") || !named {
                    p.push(format!(
                        "{role}: S3 resource {r:?} is not a named bucket or prefix"
                    ));
                }
            }
        }
        if actions.iter().any(|a| a == "iam:PassRole")
            && !(resources.len() == 1
                && items(&resources[0]["Fn::GetAtt"])
                    .first()
                    .and_then(Yaml::as_str)
                    == Some("BatchJobRole"))
        {
            p.push(format!(
                "{role}: iam:PassRole on {resources:?}, not only the job role"
            ));
        }
        if actions.iter().any(|a| a == "lambda:InvokeFunction") {
            for r in &resources {
                let target = items(&r["Fn::GetAtt"])
                    .first()
                    .and_then(Yaml::as_str)
                    .map(str::to_string)
                    .or_else(|| {
                        r["Fn::Sub"].as_str().map(|s| {
                            s.split('.')
                                .next()
                                .unwrap_or("")
                                .trim_start_matches("${")
                                .to_string()
                        })
                    });
                if !matches!(
                    target.as_deref(),
                    Some("HandlerFunction" | "ManifestFunction")
                ) {
                    p.push(format!("{role}: lambda:InvokeFunction on {r:?}"));
                }
            }
        }
    }
    let resources = t["Resources"].as_hash().cloned().unwrap_or_default();
    for (name, r) in &resources {
        let kind = r["Type"].as_str().unwrap_or("");
        if kind.starts_with("AWS::S3::") {
            p.push(format!(
                "{}: the stack must not create or change buckets ({kind})",
                name.as_str().unwrap_or("?")
            ));
        }
    }
    let trust =
        &t["Resources"]["BatchJobRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"];
    if items(trust)
        .iter()
        .map(|s| s["Principal"]["Service"].as_str())
        .collect::<Vec<_>>()
        != [Some("batchoperations.s3.amazonaws.com")]
    {
        p.push("BatchJobRole must trust batchoperations.s3.amazonaws.com only".into());
    }
    p
}

#[test]
fn the_template_grants_no_wildcards() {
    let t = parse(&template_text());
    let found = problems(&t);
    assert!(found.is_empty(), "{found:#?}");
    // The roles the issue asks for, each with its own policy.
    for role in ["HandlerRole", "BatchJobRole", "ManifestRole"] {
        assert!(
            statements(&t).iter().any(|(r, _)| r == role),
            "{role} missing"
        );
    }
}

#[test]
fn the_checker_catches_what_it_must() {
    let text = template_text();
    let cases = [
        ("s3:GetBucketVersioning", "s3:*", "wildcard action"),
        (
            "Fn::GetAtt: [BatchJobRole, Arn]\n                Condition:",
            "\"*\"\n                Condition:",
            "iam:PassRole",
        ),
        (
            "Action: s3:PutObject\n                Resource:\n                  Fn::Sub: arn:${AWS::Partition}:s3:::${OpsBucket}/${ReportPrefix}/*",
            "Action: s3:PutObject\n                Resource: \"*\"",
            "on every resource",
        ),
        (
            "arn:${AWS::Partition}:s3:::${OpsBucket}/${ReportPrefix}/*",
            "arn:${AWS::Partition}:s3:::*",
            "not a named bucket",
        ),
        (
            "s3:RequestJobOperation: LambdaInvoke",
            "s3:RequestJobOperation: S3PutObjectCopy",
            "on every resource",
        ),
        (
            "Action: [ec2:DescribeNetworkInterfaces, ec2:DescribeSubnets]",
            "Action: [ec2:DescribeNetworkInterfaces, ec2:CreateNetworkInterface]",
            "on every resource",
        ),
        (
            "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:subnet/*",
            "arn:${AWS::Partition}:ec2:*:*:subnet/*",
            "outside this account and region",
        ),
        (
            "Action: sqs:SendMessage\n                    Resource:\n                      Fn::GetAtt: [FailedRunsQueue, Arn]",
            "Action: sqs:SendMessage\n                    Resource: \"*\"",
            "not only the failed-runs queue",
        ),
    ];
    for (from, to, expect) in cases {
        assert!(text.contains(from), "the template no longer holds {from:?}");
        let bad = parse(&text.replacen(from, to, 1));
        let found = problems(&bad);
        assert!(
            found.iter().any(|p| p.contains(expect)),
            "{from} -> {to}: {found:#?}"
        );
    }
}

/// What CloudFormation deploys for these parameter values: each resource's type, condition-free
/// properties (`Fn::If` resolved, `AWS::NoValue` dropped) and `DependsOn`; `Metadata` is left
/// out, as it deploys nothing (it holds the scanner's suppressions).
fn rendered(t: &Yaml, overrides: &[(&str, &str)]) -> BTreeMap<String, Yaml> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (name, p) in t["Parameters"].as_hash().cloned().unwrap_or_default() {
        let default = match &p["Default"] {
            Yaml::String(s) => s.clone(),
            Yaml::Integer(i) => i.to_string(),
            Yaml::BadValue => "required".into(),
            other => format!("{other:?}"),
        };
        params.insert(name.as_str().unwrap().to_string(), default);
    }
    for (k, v) in overrides {
        assert!(params.contains_key(*k), "no parameter {k}");
        params.insert(k.to_string(), v.to_string());
    }
    let conditions = t["Conditions"].as_hash().cloned().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (name, r) in t["Resources"].as_hash().cloned().unwrap_or_default() {
        if let Some(c) = r["Condition"].as_str()
            && !condition(&conditions, &params, &Yaml::String(c.into()))
        {
            continue;
        }
        let mut kept = yaml_rust2::yaml::Hash::new();
        for key in ["Type", "Properties", "DependsOn"] {
            if let Some(v) = resolve(&conditions, &params, &r[key]) {
                kept.insert(Yaml::String(key.into()), v);
            }
        }
        out.insert(name.as_str().unwrap().to_string(), Yaml::Hash(kept));
    }
    out
}

/// A condition's value: `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`, over
/// parameter values (`Ref`, and `Fn::Join` of a list parameter, which is its text).
fn condition(all: &yaml_rust2::yaml::Hash, params: &BTreeMap<String, String>, c: &Yaml) -> bool {
    let value = |v: &Yaml| -> String {
        if let Some(r) = v["Ref"].as_str() {
            return params[r].clone();
        }
        if let Some(j) = v["Fn::Join"].as_vec() {
            return params[j[1]["Ref"].as_str().expect("Fn::Join of a Ref")].clone();
        }
        v.as_str().expect("a string").to_string()
    };
    if let Some(name) = c.as_str() {
        return condition(all, params, &all[&Yaml::String(name.into())]);
    }
    if let Some(name) = c["Condition"].as_str() {
        return condition(all, params, &all[&Yaml::String(name.into())]);
    }
    if let Some(v) = c["Fn::Equals"].as_vec() {
        return value(&v[0]) == value(&v[1]);
    }
    if let Some(v) = c["Fn::Not"].as_vec() {
        return !condition(all, params, &v[0]);
    }
    if let Some(v) = c["Fn::And"].as_vec() {
        return v.iter().all(|c| condition(all, params, c));
    }
    if let Some(v) = c["Fn::Or"].as_vec() {
        return v.iter().any(|c| condition(all, params, c));
    }
    panic!("unknown condition {c:?}")
}

/// `y` with every `Fn::If` resolved; `None` where it is `AWS::NoValue` (or absent).
fn resolve(
    all: &yaml_rust2::yaml::Hash,
    params: &BTreeMap<String, String>,
    y: &Yaml,
) -> Option<Yaml> {
    match y {
        Yaml::BadValue => None,
        Yaml::Hash(h) => {
            if h.len() == 1 && y["Ref"].as_str() == Some("AWS::NoValue") {
                return None;
            }
            if let (1, Some(v)) = (h.len(), y["Fn::If"].as_vec()) {
                let chosen = if condition(all, params, &v[0]) {
                    &v[1]
                } else {
                    &v[2]
                };
                return resolve(all, params, chosen);
            }
            let mut out = yaml_rust2::yaml::Hash::new();
            for (k, v) in h {
                if let Some(v) = resolve(all, params, v) {
                    out.insert(k.clone(), v);
                }
            }
            Some(Yaml::Hash(out))
        }
        Yaml::Array(a) => Some(Yaml::Array(
            a.iter().filter_map(|v| resolve(all, params, v)).collect(),
        )),
        other => Some(other.clone()),
    }
}

#[test]
fn left_empty_the_new_parameters_deploy_the_same_stack_as_before() {
    let before = parse(include_str!("../../data/template-0.1.yaml"));
    let now = parse(&template_text());
    let (old, mut new) = (rendered(&before, &[]), rendered(&now, &[]));
    // What the scheduled function's catch-up added since (on by default, not a regulated-account
    // option): its settings and the stuck-window metric and alarm. Everything else is as before.
    for added in ["StuckWindowsMetricFilter", "StuckWindowsAlarm"] {
        assert!(new.remove(added).is_some(), "{added} missing");
    }
    let Yaml::Hash(vars) =
        &mut new.get_mut("ManifestFunction").unwrap()["Properties"]["Environment"]["Variables"]
    else {
        panic!("no variables")
    };
    for setting in ["CATCH_UP_WINDOWS", "START_DATE", "STUCK_AFTER_DAYS"] {
        assert!(
            vars.remove(&Yaml::String(setting.into())).is_some(),
            "{setting} missing"
        );
    }
    assert_eq!(
        old.keys().collect::<Vec<_>>(),
        new.keys().collect::<Vec<_>>(),
        "the same resources"
    );
    for (name, r) in &old {
        assert_eq!(Some(r), new.get(name), "{name} changed");
    }
}

#[test]
fn the_optional_parameters_add_the_vpc_the_log_key_and_the_failed_runs_queue() {
    let now = parse(&template_text());
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let all = rendered(
        &now,
        &[
            ("LogKmsKeyArn", key),
            ("SubnetIds", "subnet-1,subnet-2"),
            ("SecurityGroupIds", "sg-1"),
            ("FailureRetentionDays", "14"),
            ("AlarmTopicArn", "arn:aws:sns:us-east-1:123456789012:ops"),
        ],
    );
    for lg in ["HandlerLogGroup", "ManifestLogGroup"] {
        assert_eq!(
            all[lg]["Properties"]["KmsKeyId"]["Ref"].as_str(),
            Some("LogKmsKeyArn"),
            "{lg}"
        );
    }
    for f in ["HandlerFunction", "ManifestFunction"] {
        let vpc = &all[f]["Properties"]["VpcConfig"];
        assert_eq!(vpc["SubnetIds"]["Ref"].as_str(), Some("SubnetIds"), "{f}");
        assert_eq!(
            vpc["SecurityGroupIds"]["Ref"].as_str(),
            Some("SecurityGroupIds"),
            "{f}"
        );
    }
    for role in ["HandlerRole", "ManifestRole"] {
        let policies = items(&all[role]["Properties"]["Policies"]);
        assert!(
            policies
                .iter()
                .any(|p| p["PolicyName"].as_str() == Some("vpc")),
            "{role} may create its network interfaces"
        );
    }
    assert_eq!(
        items(
            &all["ManifestFunction"]["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"]
        )
        .first()
        .and_then(Yaml::as_str),
        Some("FailedRunsQueue")
    );
    assert!(
        all["Schedule"]["Properties"]["Target"]["DeadLetterConfig"]["Arn"]
            .as_hash()
            .is_some()
    );
    assert_eq!(
        all["FailedRunsQueue"]["Properties"]["MessageRetentionPeriod"]["Fn::Select"][1][14]
            .as_i64(),
        Some(14 * 86400),
        "the 14th entry is 14 days"
    );
    assert_eq!(
        all["FailedRunsAlarm"]["Properties"]["AlarmActions"][0]["Ref"].as_str(),
        Some("AlarmTopicArn")
    );
    // Without a topic the alarm still exists, with no action.
    let no_topic = rendered(&now, &[("FailureRetentionDays", "3")]);
    assert!(no_topic.contains_key("FailedRunsAlarm"));
    assert!(no_topic["FailedRunsAlarm"]["Properties"]["AlarmActions"].is_badvalue());
    assert!(
        !no_topic["HandlerFunction"]["Properties"]
            .as_hash()
            .unwrap()
            .contains_key(&Yaml::String("VpcConfig".into()))
    );
}

#[test]
fn build_lambda_for_arm64_builds_or_says_exactly_what_to_install() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/build-lambda.sh");
    let sysroot = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let wrong = std::process::Command::new(&script)
        .env("ARCH", "ppc64")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("ARCH must be x86_64 or arm64"));
    if std::path::Path::new(&sysroot)
        .join("lib/rustlib/aarch64-unknown-linux-gnu/lib")
        .is_dir()
    {
        eprintln!(
            "aarch64-unknown-linux-gnu is installed here: ARCH=arm64 builds (not run by the tests)"
        );
        return;
    }
    let out = std::process::Command::new(&script)
        .env("ARCH", "arm64")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for part in [
        "no standard library for\naarch64-unknown-linux-gnu",
        "rustup target add aarch64-unknown-linux-gnu",
        "rust-std",
        "No cross gcc is needed",
    ] {
        assert!(err.contains(part), "{part:?} not in:\n{err}");
    }
    assert!(
        !err.contains("installing cargo-lambda"),
        "refused before installing or building anything:\n{err}"
    );
}
