//! Where a manifest, report or summary lives: `s3://bucket/key` or a local path, read and
//! written the same way.

use std::path::PathBuf;

use anyhow::{Context, bail};
use aws_sdk_s3::primitives::ByteStream;

/// An S3 object or a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `s3://bucket/key` (the key may be empty or a prefix).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key or prefix.
        key: String,
    },
    /// A path on this machine.
    Local(PathBuf),
}

impl std::str::FromStr for Location {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("{s:?}: no bucket after s3://");
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        if s.is_empty() {
            bail!("empty location");
        }
        Ok(Location::Local(PathBuf::from(s)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Location::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Location {
    /// A sibling: the same folder, another file name.
    pub fn sibling(&self, name: &str) -> Location {
        match self {
            Location::S3 { bucket, key } => {
                let dir = key
                    .rsplit_once('/')
                    .map(|(d, _)| format!("{d}/"))
                    .unwrap_or_default();
                Location::S3 {
                    bucket: bucket.clone(),
                    key: format!("{dir}{name}"),
                }
            }
            Location::Local(p) => Location::Local(p.with_file_name(name)),
        }
    }

    /// A child: `self` taken as a folder.
    pub fn child(&self, name: &str) -> Location {
        match self {
            Location::S3 { bucket, key } => {
                let dir = if key.is_empty() || key.ends_with('/') {
                    key.clone()
                } else {
                    format!("{key}/")
                };
                Location::S3 {
                    bucket: bucket.clone(),
                    key: format!("{dir}{name}"),
                }
            }
            Location::Local(p) => Location::Local(p.join(name)),
        }
    }

    /// The body of an S3 object (`bucket`, `key` of `self`), to stream.
    pub async fn body(&self, s3: &aws_sdk_s3::Client) -> anyhow::Result<ByteStream> {
        let Location::S3 { bucket, key } = self else {
            bail!("{self} is not in S3");
        };
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(aws_sdk_s3::Error::from)
            .with_context(|| format!("reading {self}"))?;
        Ok(out.body)
    }

    /// The whole content. A body cut short is read again (the SDK retries the call itself, not
    /// a body that stops halfway), up to [`crate::aws::BODY_ATTEMPTS`] times.
    pub async fn read(&self, s3: &aws_sdk_s3::Client) -> anyhow::Result<Vec<u8>> {
        match self {
            Location::S3 { .. } => {
                let mut attempt = 1;
                loop {
                    match self.body(s3).await?.collect().await {
                        Ok(b) => return Ok(b.into_bytes().to_vec()),
                        Err(e) if attempt < crate::aws::BODY_ATTEMPTS => {
                            tracing::debug!(%e, attempt, "body cut; reading {self} again");
                            attempt += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(100 << attempt))
                                .await;
                        }
                        Err(e) => {
                            return Err(anyhow::Error::new(e)).with_context(|| {
                                format!("reading {self} (body cut, attempt {attempt})")
                            });
                        }
                    }
                }
            }
            Location::Local(p) => tokio::fs::read(p)
                .await
                .with_context(|| format!("reading {}", p.display())),
        }
    }

    async fn put(
        &self,
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        body: ByteStream,
        content_type: &str,
    ) -> anyhow::Result<Option<String>> {
        let out = s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(aws_sdk_s3::Error::from)
            .with_context(|| format!("writing {self}"))?;
        Ok(out.e_tag().map(|e| e.trim_matches('"').to_string()))
    }

    async fn local_dir(p: &std::path::Path) -> anyhow::Result<()> {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(())
    }

    /// Puts a temporary local file here (moving it when both are local); returns the ETag for S3.
    pub async fn put_file(
        &self,
        s3: &aws_sdk_s3::Client,
        file: &std::path::Path,
        content_type: &str,
    ) -> anyhow::Result<Option<String>> {
        match self {
            Location::S3 { bucket, key } => {
                let body = ByteStream::from_path(file)
                    .await
                    .with_context(|| format!("reading {}", file.display()))?;
                self.put(s3, bucket, key, body, content_type).await
            }
            Location::Local(p) => {
                if p != file {
                    Self::local_dir(p).await?;
                    // The file is a temporary part: moved when on the same filesystem (no second
                    // pass over hundreds of MB), copied when not.
                    if tokio::fs::rename(file, p).await.is_err() {
                        tokio::fs::copy(file, p)
                            .await
                            .with_context(|| format!("writing {}", p.display()))?;
                    }
                }
                Ok(None)
            }
        }
    }

    /// Writes bytes here; returns the ETag (without quotes) for S3.
    pub async fn write(
        &self,
        s3: &aws_sdk_s3::Client,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<Option<String>> {
        match self {
            Location::S3 { bucket, key } => {
                self.put(s3, bucket, key, ByteStream::from(bytes), content_type)
                    .await
            }
            Location::Local(p) => {
                Self::local_dir(p).await?;
                tokio::fs::write(p, bytes)
                    .await
                    .with_context(|| format!("writing {}", p.display()))?;
                Ok(None)
            }
        }
    }

    /// `arn:aws:s3:::bucket/key`, for CreateJob.
    pub fn object_arn(&self) -> anyhow::Result<String> {
        match self {
            Location::S3 { bucket, key } if !key.is_empty() => {
                Ok(format!("arn:aws:s3:::{bucket}/{key}"))
            }
            _ => bail!("{self} is not an S3 object (s3://bucket/key)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_derives_neighbours() {
        let l: Location = "s3://b/jobs/2024/manifest.csv".parse().unwrap();
        assert_eq!(
            l,
            Location::S3 {
                bucket: "b".into(),
                key: "jobs/2024/manifest.csv".into()
            }
        );
        assert_eq!(
            l.sibling("summary.json").to_string(),
            "s3://b/jobs/2024/summary.json"
        );
        assert_eq!(
            l.object_arn().unwrap(),
            "arn:aws:s3:::b/jobs/2024/manifest.csv"
        );
        let root: Location = "s3://b".parse().unwrap();
        assert_eq!(root.child("x").to_string(), "s3://b/x");
        assert!(root.object_arn().is_err());
        assert!("s3:///k".parse::<Location>().is_err());
        let local: Location = "out/m.csv".parse().unwrap();
        assert_eq!(
            local.sibling("s.json"),
            Location::Local("out/s.json".into())
        );
    }
}
