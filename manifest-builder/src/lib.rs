//! The operator's side: select recordings, write manifests, submit and follow Batch Operations
//! jobs, read their reports. This first version carries the synthetic recordings used by the
//! run command, the tests and benchmarks.

pub mod synth;
