//! The operator's side: select recordings, write manifests, submit and follow Batch Operations
//! jobs, read their reports. So far: the formats (completion reports, inventory manifests,
//! CreateJob requests) and the synthetic recordings used by the demo, tests and benchmarks.

pub mod inventory;
pub mod job;
pub mod report;
pub mod synth;
