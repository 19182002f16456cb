//! Source A: ListObjectsV2 (or ListObjectVersions on versioned buckets) over day prefixes,
//! several days at once, in order, so the same window always gives the same manifest.

use anyhow::Context;
use aws_sdk_s3::Client;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::select::Recording;

/// Listing settings.
#[derive(Debug, Clone)]
pub struct Lister {
    /// S3 client.
    pub s3: Client,
    /// Bucket to list.
    pub bucket: String,
    /// List current versions with their ids (versioned buckets).
    pub versions: bool,
}

fn epoch(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<i64> {
    t.map(|d| d.secs())
}

impl Lister {
    /// The `(year, month)` folders under `base` (`base/YYYY/MM/`), found with two delimiter listings.
    pub async fn existing_months(&self, base: &str) -> anyhow::Result<Vec<(i32, u32)>> {
        let mut months = Vec::new();
        for year_prefix in self.common_prefixes(base).await? {
            let Some(year) = year_prefix[base.len()..]
                .trim_end_matches('/')
                .parse::<i32>()
                .ok()
            else {
                continue;
            };
            for month_prefix in self.common_prefixes(&year_prefix).await? {
                if let Ok(month) = month_prefix[year_prefix.len()..]
                    .trim_end_matches('/')
                    .parse::<u32>()
                {
                    months.push((year, month));
                }
            }
        }
        Ok(months)
    }

    async fn common_prefixes(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let pages: Vec<_> = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(aws_sdk_s3::Error::from)
            .with_context(|| format!("listing folders of s3://{}/{prefix}", self.bucket))?;
        Ok(pages
            .iter()
            .flat_map(|p| {
                p.common_prefixes()
                    .iter()
                    .filter_map(|c| c.prefix().map(str::to_string))
            })
            .collect())
    }

    /// Every object (current version) under `prefix`, a page at a time.
    pub fn pages(
        &self,
        prefix: String,
    ) -> impl Stream<Item = anyhow::Result<Vec<Recording>>> + Send + 'static + use<> {
        let this = self.clone();
        if !this.versions {
            let bucket = this.bucket.clone();
            let context = format!("listing s3://{bucket}/{prefix}");
            let paginator = this
                .s3
                .list_objects_v2()
                .bucket(&this.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            // The SDK's PaginationStream is not a futures Stream: adapt it.
            return futures::stream::unfold(paginator, |mut p| async move {
                p.next().await.map(|page| (page, p))
            })
            .map(move |page| {
                let page = page
                    .map_err(aws_sdk_s3::Error::from)
                    .with_context(|| context.clone())?;
                Ok(page
                    .contents()
                    .iter()
                    .map(|o| Recording {
                        bucket: bucket.clone(),
                        key: o.key().unwrap_or_default().to_string(),
                        version_id: None,
                        size: o.size().unwrap_or(0).max(0) as u64,
                        last_modified: epoch(o.last_modified()),
                        storage_class: o
                            .storage_class()
                            .map(|c| c.as_str().to_string())
                            .unwrap_or_else(|| "STANDARD".into()),
                    })
                    .collect())
            })
            .boxed();
        }
        // ListObjectVersions has no SDK paginator (two markers): page by hand.
        futures::stream::try_unfold(Some((None::<String>, None::<String>)), move |state| {
            let this = this.clone();
            let prefix = prefix.clone();
            async move {
                let Some((key_marker, version_marker)) = state else {
                    return Ok(None);
                };
                let out = this
                    .s3
                    .list_object_versions()
                    .bucket(&this.bucket)
                    .prefix(&prefix)
                    .set_key_marker(key_marker)
                    .set_version_id_marker(version_marker)
                    .send()
                    .await
                    .map_err(aws_sdk_s3::Error::from)
                    .with_context(|| {
                        format!("listing versions of s3://{}/{prefix}", this.bucket)
                    })?;
                let page: Vec<Recording> = out
                    .versions()
                    .iter()
                    .filter(|v| v.is_latest() == Some(true))
                    .map(|v| Recording {
                        bucket: this.bucket.clone(),
                        key: v.key().unwrap_or_default().to_string(),
                        version_id: Some(v.version_id().unwrap_or("null").to_string()),
                        size: v.size().unwrap_or(0).max(0) as u64,
                        last_modified: epoch(v.last_modified()),
                        storage_class: v
                            .storage_class()
                            .map(|c| c.as_str().to_string())
                            .unwrap_or_else(|| "STANDARD".into()),
                    })
                    .collect();
                let next = (out.is_truncated() == Some(true)).then(|| {
                    (
                        out.next_key_marker().map(str::to_string),
                        out.next_version_id_marker().map(str::to_string),
                    )
                });
                Ok(Some((page, next)))
            }
        })
        .boxed()
    }

    /// Lists several prefixes `concurrency` at a time; each prefix's objects come out together, in prefix order.
    pub fn prefixes(
        &self,
        prefixes: Vec<String>,
        concurrency: usize,
    ) -> impl Stream<Item = anyhow::Result<Vec<Recording>>> + Send + 'static + use<> {
        let this = self.clone();
        futures::stream::iter(prefixes)
            .map(move |p| {
                let pages = this.pages(p);
                async move {
                    let all: Vec<Vec<Recording>> = pages.try_collect().await?;
                    Ok(all.into_iter().flatten().collect::<Vec<_>>())
                }
            })
            .buffered(concurrency.max(1))
    }
}
