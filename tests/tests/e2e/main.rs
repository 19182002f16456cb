//! End-to-end tests in one binary (linking the AWS SDK once): the handler against moto, the
//! `batch-handler` binary through the Lambda Runtime API, and the transcoder against ffmpeg,
//! sox and CPython's audioop.

mod audit;
mod cli;
mod deploy;
mod doctor;
mod engine;
mod faults;
pub mod lambda_protocol;
mod load;
mod manifest_listing;
mod memory;
mod pictures;
mod reference_tools;
mod s3_semantics;
mod s3_task;
mod s3control;
mod stock_clients;
