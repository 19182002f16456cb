//! S3 Batch Operations on this machine, for trying the tool without an AWS account and for
//! S3-compatible stores on premises:
//!
//! - [`engine`]: the S3 Control job API on 127.0.0.1 ([`engine::api`], its wire format in
//!   [`engine::xml`]), jobs kept on disk ([`engine::store`]), their manifests read
//!   ([`engine::source`]), one invocation per task ([`engine::invoke`]: the handler in this
//!   process, or a function behind the Lambda Invoke API), and completion reports written as the
//!   service writes them;
//! - [`embedded_s3`]: an S3 endpoint on loopback over a folder, for the demo and `serve`.
//!
//! The operator CLI builds this crate only with its default `local` feature; the scheduled
//! manifest Lambda is built without it.

pub mod embedded_s3;
pub mod engine;
