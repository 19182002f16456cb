#!/usr/bin/env bash
# The README's run command (no AWS account, nothing to install but the Rust toolchain):
# builds the release binaries, writes a synthetic 60-minute Amazon Connect recording
# (PCM s16le 8 kHz stereo, 115 MB) and converts it with exactly the code the Lambda runs,
# then shows what one Batch Operations event would do with it (--dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_EC2_METADATA_DISABLED=true   # never ask instance metadata for anything
minutes=${MINUTES:-60}
out=${DEMO_DIR:-target/demo}
mkdir -p "$out"
cargo build --release --locked -p batch-handler -p manifest-builder
bin=target/release
key="connect/acme/CallRecordings/2024/01/26/c0ffee00-20ac-472d-8aad-0d848ce7c9b4_20240126T03:07_UTC.wav"
"$bin/manifest-builder" sample-recording "$out/call.wav" --minutes "$minutes"
"$bin/batch-handler" transcode "$out/call.wav" "$out/call-alaw.wav"
in_bytes=$(stat -c %s "$out/call.wav"); out_bytes=$(stat -c %s "$out/call-alaw.wav")
echo "recording: $in_bytes bytes -> A-law mono: $out_bytes bytes ($(( 100 - 100 * out_bytes / in_bytes ))% smaller)"

cat > "$out/event.json" <<JSON
{"invocationSchemaVersion":"2.0","invocationId":"ZGVtbw==","job":{"id":"demo-job","userArguments":{"downmix":"sum"}},
 "tasks":[{"taskId":"t1","s3Bucket":"amazon-connect-0123456789ab","s3VersionId":null,
           "s3Key":"$("$bin/batch-handler" encode-key "$key")"}]}
JSON
echo "what the Lambda would do with a Batch Operations event for it (--dry-run, touches nothing):"
"$bin/batch-handler" invoke --event "$out/event.json" --dry-run
