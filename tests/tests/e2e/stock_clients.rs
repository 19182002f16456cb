//! boto3 and the AWS CLI (v1, from PyPI) against `manifest-builder serve --embedded-s3`, set up
//! only with the environment `serve` prints (the README's recipe): no endpoint code, no hooks.
//! The boto3 half is `tests/python/stock_clients.py`; the AWS CLI half runs `aws` here.

use std::path::PathBuf;
use std::process::Command;

use e2e_tests::served::Served;
use e2e_tests::*;
use serde_json::Value;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tool installed by `scripts/test.sh` into the workspace: the python with boto3 (moto's venv),
/// or the AWS CLI (its own venv: it pins its own botocore).
fn tool(path: &str, test: &str) -> Option<PathBuf> {
    let p = workspace().join(path);
    if p.is_file() {
        Some(p)
    } else {
        missing(&format!("{path} (scripts/test.sh installs it)"), test);
        None
    }
}

/// `cmd` with nothing of the caller's AWS setup, and the recipe's environment.
fn with_recipe(mut cmd: Command, served: &Served) -> Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in served.endpoints["environment"]
        .as_object()
        .expect("serve prints the environment")
    {
        cmd.env(k, v.as_str().unwrap());
    }
    cmd.env(
        "ACCOUNT_ID",
        served.endpoints["account_id"].as_str().unwrap(),
    );
    cmd
}

#[test]
fn boto3_and_the_aws_cli_drive_the_engine_with_the_printed_recipe_only() {
    let test = "stock_clients";
    let Some(bin) = require_binary("manifest-builder", test) else {
        return;
    };
    let (Some(python), Some(aws)) = (
        tool(".venv/bin/python", test),
        tool(".venv-awscli/bin/aws", test),
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("e2e-stock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = aws_command(&bin);
    cmd.args(["serve", "--embedded-s3"])
        .arg(dir.join("s3"))
        .arg("--engine-dir")
        .arg(dir.join("engine"));
    let served = Served::start(cmd);
    let env = &served.endpoints["environment"];
    assert_eq!(
        env["HTTP_PROXY"], served.endpoints["s3control_endpoint_url"],
        "{env}"
    );
    assert_eq!(
        env["AWS_ENDPOINT_URL_S3"], served.endpoints["s3_endpoint_url"],
        "{env}"
    );

    let mut py = with_recipe(Command::new(&python), &served);
    let out = py
        .arg(workspace().join("tests/python/stock_clients.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let jobs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let csv_job = jobs["csv"].as_str().unwrap();

    let account = served.endpoints["account_id"].as_str().unwrap().to_string();
    let cli = |args: &[&str]| -> Value {
        let out = with_recipe(Command::new(&aws), &served)
            .args(args)
            .args(["--output", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let listed = cli(&[
        "s3control",
        "list-jobs",
        "--account-id",
        &account,
        "--job-statuses",
        "Failed",
    ]);
    let failed = listed["Jobs"].as_array().unwrap();
    assert_eq!(failed.len(), 4, "{listed}");
    assert!(failed.iter().all(|j| j["Status"] == "Failed"));
    let described = cli(&[
        "s3control",
        "describe-job",
        "--account-id",
        &account,
        "--job-id",
        csv_job,
    ]);
    assert_eq!(described["Job"]["Status"], "Complete", "{described}");
    assert_eq!(described["Job"]["Priority"], 42);
    cli(&[
        "s3control",
        "put-job-tagging",
        "--account-id",
        &account,
        "--job-id",
        csv_job,
        "--tags",
        "Key=owner,Value=qa",
    ]);
    let tags = cli(&[
        "s3control",
        "get-job-tagging",
        "--account-id",
        &account,
        "--job-id",
        csv_job,
    ]);
    assert_eq!(
        tags["Tags"],
        serde_json::json!([{"Key": "owner", "Value": "qa"}])
    );
    cli(&[
        "s3control",
        "update-job-priority",
        "--account-id",
        &account,
        "--job-id",
        csv_job,
        "--priority",
        "7",
    ]);
    let objects = cli(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "stock-clients",
        "--prefix",
        "calls/",
    ]);
    let contents = objects["Contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{objects}");
    assert!(
        contents
            .iter()
            .all(|o| o["ETag"].as_str().is_some_and(|e| e.len() > 30))
    );
    // The job commands show the tags and the new failure reasons.
    let status = |job: &str| -> String {
        let out = aws_command(&bin)
            .args(["--s3control-endpoint-url", served.control_url()])
            .args(["--account-id", &account, "status", job])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let line = status(csv_job);
    assert!(line.contains("tags: owner=qa"), "{line}");
    let line = status(failed[0]["JobId"].as_str().unwrap());
    assert!(line.contains("failure: Manifest"), "{line}");
    served.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
