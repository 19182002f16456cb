#!/usr/bin/env bash
# The README's run command: the whole main job on this machine with no AWS account and nothing
# but the Rust toolchain. `manifest-builder demo` starts an embedded S3 and the local Batch
# Operations engine, writes a few hundred synthetic Amazon Connect recordings (with broken and
# odd ones among them), selects them, writes the manifest, runs the job through the Lambda's
# own code and prints the completion report. Extra arguments go to `demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-cmake.sh   # libopus builds with cmake: from PyPI when the machine has none
export AWS_EC2_METADATA_DISABLED=true   # never ask instance metadata for anything
exec cargo run --release --locked -p manifest-builder -- demo "$@"
