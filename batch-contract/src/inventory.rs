//! An S3 Inventory report's `manifest.json` and its column names: the selection reads it, and so
//! does the local engine when a job names an inventory as its manifest.
//!
//! Columns are found by name in `fileSchema`, never by position: the optional fields an inventory
//! carries vary per configuration, and only `Bucket, Key` are always first (`s3-batch-ops.md` §4.3).

use serde::{Deserialize, Serialize};

/// An inventory report's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryManifest {
    /// Source bucket name.
    pub source_bucket: String,
    /// Destination bucket ARN.
    pub destination_bucket: String,
    /// `2016-11-30`.
    pub version: String,
    /// Epoch milliseconds, as a string.
    pub creation_timestamp: String,
    /// `CSV`, `ORC` or `Parquet`.
    pub file_format: String,
    /// Column names (CSV), or an ORC/Parquet schema.
    pub file_schema: String,
    /// Data files.
    pub files: Vec<InventoryFile>,
}

/// One data file of an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryFile {
    /// Object key of the data file.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Hex MD5 (note the spelling, unlike the completion report's `MD5Checksum`).
    #[serde(rename = "MD5checksum")]
    pub md5_checksum: String,
}

/// Why an inventory manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Not the documented JSON.
    #[error("{file}: not an S3 Inventory manifest: {reason}")]
    Manifest {
        /// Where it came from.
        file: String,
        /// Why.
        reason: String,
    },
}

/// Positions of the columns the selection reads, looked up by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// `Bucket`.
    pub bucket: usize,
    /// `Key`.
    pub key: usize,
    /// `VersionId` (all-versions inventories).
    pub version_id: Option<usize>,
    /// `IsLatest`.
    pub is_latest: Option<usize>,
    /// `IsDeleteMarker`.
    pub is_delete_marker: Option<usize>,
    /// `Size`.
    pub size: Option<usize>,
    /// `LastModifiedDate`.
    pub last_modified: Option<usize>,
    /// `StorageClass`.
    pub storage_class: Option<usize>,
    /// Number of columns.
    pub count: usize,
}

impl InventoryManifest {
    /// Parses `manifest.json`; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self, InventoryError> {
        serde_json::from_slice(bytes).map_err(|e| InventoryError::Manifest {
            file: file.to_string(),
            reason: e.to_string(),
        })
    }

    /// Column positions of a CSV inventory, from `fileSchema`.
    pub fn csv_columns(&self, file: &str) -> Result<Columns, InventoryError> {
        let names: Vec<&str> = self.file_schema.split(',').map(str::trim).collect();
        let find = |n: &str| names.iter().position(|c| c.eq_ignore_ascii_case(n));
        let (Some(bucket), Some(key)) = (find("Bucket"), find("Key")) else {
            return Err(InventoryError::Manifest {
                file: file.to_string(),
                reason: format!(
                    "fileSchema {:?} has no Bucket and Key columns",
                    self.file_schema
                ),
            });
        };
        Ok(Columns {
            bucket,
            key,
            version_id: find("VersionId"),
            is_latest: find("IsLatest"),
            is_delete_marker: find("IsDeleteMarker"),
            size: find("Size"),
            last_modified: find("LastModifiedDate"),
            storage_class: find("StorageClass"),
            count: names.len(),
        })
    }
}
