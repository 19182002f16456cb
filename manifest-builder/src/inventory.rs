//! S3 Inventory: the report's `manifest.json` and its columns, read by name from `fileSchema`.
//!
//! Never by position: the optional fields an inventory carries vary per configuration, and only
//! `Bucket, Key` are always first (`s3-batch-ops.md` §4.3).

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

#[cfg(test)]
mod tests {
    use super::*;

    /// F12 (`s3-batch-ops.md` §10).
    const F12: &str = r#"{
      "sourceBucket": "example-source-bucket",
      "destinationBucket": "arn:aws:s3:::example-inventory-destination-bucket",
      "version": "2016-11-30",
      "creationTimestamp": "1514944800000",
      "fileFormat": "CSV",
      "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm",
      "files": [
        {"key": "Inventory/example-source-bucket/2016-11-06T21-32Z/files/939c6d46-85a9-4ba8-87bd-9db705a579ce.csv.gz",
         "size": 2147483647, "MD5checksum": "f11166069f1990abeb9c97ace9cdfabc"}
      ]
    }"#;

    #[test]
    fn f12_inventory_manifest_and_columns_by_name() {
        let m = InventoryManifest::parse(F12.as_bytes(), "manifest.json").unwrap();
        assert_eq!(m.source_bucket, "example-source-bucket");
        assert_eq!(m.file_format, "CSV");
        assert_eq!(m.files[0].size, 2_147_483_647);
        assert_eq!(m.files[0].md5_checksum, "f11166069f1990abeb9c97ace9cdfabc");
        assert!(m.files[0].key.ends_with(".csv.gz"));
        let c = m.csv_columns("manifest.json").unwrap();
        assert_eq!(
            (
                c.bucket,
                c.key,
                c.version_id,
                c.is_latest,
                c.is_delete_marker
            ),
            (0, 1, Some(2), Some(3), Some(4))
        );
        assert_eq!(
            (c.size, c.last_modified, c.storage_class, c.count),
            (Some(5), Some(6), Some(8), 18)
        );
    }

    #[test]
    fn current_version_inventories_have_other_positions() {
        let mut m = InventoryManifest::parse(F12.as_bytes(), "m").unwrap();
        m.file_schema = "Bucket, Key, Size, StorageClass, LastModifiedDate".into();
        let c = m.csv_columns("m").unwrap();
        assert_eq!(
            (c.version_id, c.size, c.storage_class, c.last_modified),
            (None, Some(2), Some(3), Some(4))
        );
        m.file_schema = "Size, StorageClass".into();
        assert!(
            m.csv_columns("inv/manifest.json")
                .unwrap_err()
                .to_string()
                .contains("no Bucket and Key")
        );
        let e = InventoryManifest::parse(b"{\"files\": 3}", "inv/manifest.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("inv/manifest.json: not an S3 Inventory manifest"),
            "{e}"
        );
    }
}
