//! The operator's side, in the order the data flows (select → manifest → job → report):
//!
//! 1. [`select`]: which recordings are due, by listing the day folders of a window or from an S3
//!    Inventory report, through the filters; [`select::run`] writes the manifest for a
//!    [`select::Selection`];
//! 2. [`manifest`]: the strict CSV rows, split into parts, uploaded with their ETags, and the
//!    summary beside them;
//! 3. [`job`]: the job request ([`job::JobSpec`]) pinned to its manifest, the S3 Control calls
//!    ([`job::control`]), and following it to its end ([`job::follow`]);
//! 4. [`report`]: the completion report read back, summarised, re-driven;
//! 5. [`run`]: all of it in one call; [`local`] starts the local engine and the embedded S3 for it
//!    (feature `local`), and [`demo`] fills that S3 with synthetic recordings first.
//!
//! Beside the flow: [`estimate`] (what it costs and saves), [`schedule`] (the weekly job as a
//! Lambda function), [`location`] (`s3://` or a local path), [`aws`] (the SDK clients), [`progress`]
//! (bars on a terminal), [`synth`] (synthetic Connect recordings). The CLI (`main.rs` and `cli/`) resolves its flags into these
//! request types; nothing here knows about clap.

pub mod aws;
#[cfg(feature = "local")]
pub mod demo;
pub mod doctor;
pub mod estimate;
pub mod job;
#[cfg(feature = "local")]
pub mod local;
pub mod location;
pub mod manifest;
pub mod pictures;
pub mod progress;
pub mod report;
pub mod rollback;
pub mod run;
pub mod schedule;
pub mod select;
pub mod synth;
pub mod verify;
