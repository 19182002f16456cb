#!/usr/bin/env bash
# The README's test command: every test of the workspace against a real S3 server on loopback.
#
# It starts moto on a free 127.0.0.1 port (on first use it installs moto, cargo-lambda for the
# test that runs the built function under `cargo lambda watch`, and pesq for the Opus quality
# floor, from PyPI into ./.venv, and the
# AWS CLI v1 into ./.venv-awscli; nothing else is installed), builds the binaries the end-to-end tests drive, runs
# `cargo test --workspace`, and stops moto on exit. Static credentials and an explicit region:
# the AWS SDK never looks for instance metadata. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/ensure-cmake.sh   # libopus builds with cmake: from PyPI when the machine has none
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 || true
export E2E_REQUIRE=1   # a missing moto fails the tests instead of skipping them

export MOTO_LOG="$PWD/target/moto.log"   # its access log: a test counts the handler's requests
eval "$(scripts/start-moto.sh)"
if [ ! -x .venv/bin/cargo-lambda ]; then
  echo "installing cargo-lambda (PyPI) into .venv ..." >&2
  .venv/bin/pip install -q --disable-pip-version-check 'cargo-lambda==1.9.2' >&2
fi
# PESQ (ITU-T P.862, from PyPI) for the speech-quality floor of the Opus test (scripts/quality.py).
if ! .venv/bin/python -c 'import pesq, numpy' 2>/dev/null; then
  echo "installing pesq and numpy (PyPI) into .venv ..." >&2
  .venv/bin/pip install -q --disable-pip-version-check 'numpy==2.4.6' 'pesq==0.0.4' >&2
fi
# The AWS CLI v1 for the stock-client test, in its own venv: it pins its own botocore.
if [ ! -x .venv-awscli/bin/aws ]; then
  echo "installing the AWS CLI v1 (PyPI) into .venv-awscli ..." >&2
  python3 -m venv .venv-awscli
  .venv-awscli/bin/pip install -q --disable-pip-version-check 'awscli==1.46.3' >&2
fi
export PATH="$PWD/.venv/bin:$PATH"
export MOTO_ENDPOINT
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
echo "moto: $MOTO_ENDPOINT (pid $MOTO_PID)" >&2

cargo build --workspace --bins --locked
# The handler alone, as `cargo lambda watch` builds it (its features unified for that package
# only), so the test that runs it there does not wait for a build on its first invocation.
cargo build --locked -p batch-handler --bin batch-handler
log=target/test-output.log
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
# The handler's, engine's, fault and listing tests again, against the embedded S3 instead of moto
# (one `serve --embedded-s3` with the tests' static keys): the store the demo runs on must answer
# them as moto does.
# The request-counting test reads moto's access log, so it runs on moto only.
if [ "$status" -eq 0 ]; then
  store=$(mktemp -d)
  EMBEDDED_S3_ACCESS_KEY_ID=test EMBEDDED_S3_SECRET_ACCESS_KEY=test \
    target/debug/manifest-builder serve --embedded-s3 "$store/s3" --engine-dir "$store/engine" \
    > "$store/endpoints.json" 2>"$store/serve.log" &
  serve_pid=$!
  trap 'kill "$MOTO_PID" "$serve_pid" 2>/dev/null || true; rm -rf "$store"' EXIT
  for _ in $(seq 1 100); do grep -q s3_endpoint_url "$store/endpoints.json" 2>/dev/null && break; sleep 0.1; done
  embedded=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["s3_endpoint_url"])' "$store/endpoints.json")
  echo "embedded S3: $embedded (pid $serve_pid): the handler, engine, fault and listing tests again" >&2
  MOTO_ENDPOINT="$embedded" MOTO_LOG= cargo test --locked -p e2e-tests --test e2e -- \
    s3_task:: engine:: faults:: manifest_listing:: \
    --skip a_converted_object_costs_two_requests 2>&1 | tee -a "$log" || status=$?
fi
# One closing line with the totals of every test binary.
passed=$(grep -oE '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -oE '^test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{s += $6} END {print s + 0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
