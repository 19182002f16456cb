//! Value parsers that refuse a malformed flag before any request is made: clap prints the flag's
//! name, the value and the expected form, and exits 2, where the network would otherwise answer
//! first (a `submit --function-arn nope` used to read the manifest from S3 before being refused).

use std::collections::BTreeMap;

/// `--function-arn`: `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
pub fn function_arn(s: &str) -> Result<String, String> {
    batch_contract::job::check_function_arn(s).map(|()| s.to_string())
}

/// `--role-arn`: `arn:aws:iam::<account>:role/<name>`.
pub fn role_arn(s: &str) -> Result<String, String> {
    batch_contract::job::check_role_arn(s).map(|()| s.to_string())
}

/// A bucket name: 3 to 63 characters of lowercase letters, digits, `.` and `-`, starting and
/// ending with a letter or digit (S3's rules; legacy us-east-1 names with capitals or `_` are
/// accepted too, up to 255 characters, since such buckets still exist).
pub fn bucket_name(s: &str) -> Result<String, String> {
    let expected = "expected a bucket name (3-63 characters: a-z, 0-9, '.', '-')";
    if let Some(rest) = s.strip_prefix("s3://") {
        return Err(format!(
            "{s:?}: give the bucket's name without s3:// ({:?}); {expected}",
            rest.trim_end_matches('/')
        ));
    }
    let legal = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if s.len() < 3
        || s.len() > 255
        || !s.bytes().all(legal)
        || !edge(s.as_bytes().first())
        || !edge(s.as_bytes().last())
        || s.contains("..")
    {
        return Err(format!("{s:?} is not a bucket name: {expected}"));
    }
    Ok(s.to_string())
}

/// A key prefix: at most 1,024 bytes (S3's key limit), not an `s3://` URL.
pub fn key_prefix(s: &str) -> Result<String, String> {
    if s.starts_with("s3://") {
        return Err(format!(
            "{s:?}: give the prefix inside the bucket (e.g. connect/<alias>/CallRecordings/), not an s3:// URL"
        ));
    }
    if s.len() > 1024 {
        return Err(format!(
            "a prefix of {} bytes: S3 keys are at most 1,024 bytes",
            s.len()
        ));
    }
    Ok(s.to_string())
}

/// `--older-than`: an age such as `7d`, `2w`, `3m` or `1y`.
pub fn age(s: &str) -> Result<String, String> {
    manifest_builder::select::filter::parse_age(s).map(|_| s.to_string())
}

/// A day: `YYYY-MM-DD`, a real calendar date.
pub fn date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("{s:?} is not a day: {e} (expected YYYY-MM-DD, e.g. 2024-01-31)"))
}

/// `--user-arg key=value`: a name the handler accepts and a value it can use, checked with the
/// handler's own settings parser, within the service's length limits.
pub fn user_arg(s: &str) -> Result<(String, String), String> {
    let (k, v) = super::global::key_value(s)?;
    let one = BTreeMap::from([(k.clone(), v.clone())]);
    batch_contract::job::check_user_arguments(&one)?;
    batch_handler::settings::Settings::default()
        .with_user_arguments(&one)
        .map_err(|e| e.to_string())?;
    Ok((k, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_checked_by_their_shape() {
        assert!(function_arn("arn:aws:lambda:us-east-1:123456789012:function:h").is_ok());
        assert!(function_arn("arn:aws:lambda:us-east-1:123456789012:function:h:live").is_ok());
        let e = function_arn("nope").unwrap_err();
        assert!(e.contains("arn:aws:lambda:<region>"), "{e}");
        assert!(role_arn("arn:aws:iam::123456789012:role/batch").is_ok());
        assert!(role_arn("arn:aws:iam::12345:role/batch").is_err());
        assert!(role_arn("arn:aws:lambda:us-east-1:123456789012:function:h").is_err());
    }

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for ok in [
            "amazon-connect-0123456789ab",
            "a.b-c",
            "abc",
            "Legacy_Bucket",
        ] {
            assert!(bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "-abc", "abc-", "a..b", "a b", "a/b", ""] {
            assert!(bucket_name(bad).is_err(), "{bad}");
        }
        let e = bucket_name("s3://my-bucket/").unwrap_err();
        assert!(
            e.contains("without s3://") && e.contains("\"my-bucket\""),
            "{e}"
        );
    }

    #[test]
    fn prefixes_ages_and_user_arguments() {
        assert!(key_prefix("connect/acme/CallRecordings/").is_ok());
        assert!(key_prefix("s3://b/p/").is_err());
        assert!(key_prefix(&"k".repeat(1025)).is_err());
        assert!(age("7d").is_ok() && age("2w").is_ok());
        assert!(age("7x").is_err());
        assert!(date("2024-02-29").is_ok());
        assert!(date("2023-02-29").unwrap_err().contains("YYYY-MM-DD"));
        assert!(user_arg("codec=mulaw").is_ok());
        assert!(user_arg("destPrefix=converted/").is_ok());
        let e = user_arg("codec=mp3").unwrap_err();
        assert!(e.contains("codec"), "{e}");
        assert!(user_arg("nope=1").unwrap_err().contains("unknown"));
        assert!(user_arg("codec").unwrap_err().contains("key=value"));
    }
}
