//! The CloudFormation template (`template.yaml`), read the way a security review reads it: every
//! IAM statement is collected and checked for wildcards. cfn-lint (in `.ci/run`) checks the rest.

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
        let s3 = actions.iter().any(|a| a.starts_with("s3:"));
        let create_job_only = actions == ["s3:CreateJob"]
            && s["Condition"]["StringEquals"]["s3:RequestJobOperation"].as_str()
                == Some("LambdaInvoke");
        if star && !create_job_only {
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
