//! The operator's side: select recordings, write manifests, submit and follow Batch Operations
//! jobs, read their reports. Data flows one way: select → manifest → job → report.

pub mod aws;
pub mod control;
pub mod demo;
pub mod embedded_s3;
pub mod engine;
pub mod estimate;
pub mod inventory;
pub mod job;
pub mod job_cmd;
pub mod listing;
pub mod location;
pub mod manifest;
pub mod report;
pub mod report_cmd;
pub mod run_cmd;
pub mod schedule;
pub mod select;
pub mod select_cmd;
pub mod synth;
