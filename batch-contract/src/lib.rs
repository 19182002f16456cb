//! The S3 Batch Operations contract, in one place and with no SDK clients, so that the side that
//! builds a message and the side that reads it cannot drift apart:
//!
//! - [`key`]: manifest key encoding (written by the manifest, decoded by the handler);
//! - [`job`]: the CreateJob request and its checks (sent by the CLI, served by the local engine);
//! - [`inventory`]: an S3 Inventory `manifest.json` (read by the selection and the engine);
//! - [`event`]: the Lambda invocation and its response, schema 1.0 and 2.0 (built by the engine,
//!   parsed and answered by the handler);
//! - [`result`]: what a succeeded task did, the handler's `resultString` (written by the handler,
//!   read back by `report`);
//! - [`report`]: completion reports, `manifest.json` and result rows (written by the engine, read
//!   by `report`), with [`md5`] for their checksums;
//! - [`text`]: one-line, bounded text for report cells and logs.

pub mod event;
pub mod inventory;
pub mod job;
pub mod key;
pub mod md5;
pub mod report;
pub mod result;
pub mod text;
