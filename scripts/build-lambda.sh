#!/usr/bin/env bash
# Builds both functions as `bootstrap` zips for the provided.al2023 runtime with cargo-lambda
# (installed with zig from PyPI into ./.venv on first use) and prints their sizes:
#   target/lambda/batch-handler/bootstrap.zip      the Batch Operations handler
#   target/lambda/manifest-builder/bootstrap.zip   the scheduled manifest function
# x86_64 by default. ARCH=arm64 builds for Graviton on machines that have the
# aarch64-unknown-linux-gnu target installed (`rustup target add`); this script never fetches one.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${ARCH:-x86_64}
if [ ! -x .venv/bin/cargo-lambda ]; then
  echo "installing cargo-lambda (PyPI) into .venv ..." >&2
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'cargo-lambda==1.9.2' >&2
fi
export PATH="$PWD/.venv/bin:$PATH"
flag=()
if [ "$arch" = arm64 ]; then
  if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    echo "ARCH=arm64 needs the aarch64-unknown-linux-gnu target (rustup target add aarch64-unknown-linux-gnu)" >&2
    exit 2
  fi
  flag=(--arm64)
elif [ "$arch" != x86_64 ]; then
  echo "ARCH must be x86_64 or arm64" >&2
  exit 2
fi
for bin in batch-handler manifest-builder; do
  # The scheduled manifest function does not link the local engine and the embedded S3.
  features=(); [ "$bin" = manifest-builder ] && features=(--no-default-features)
  cargo lambda build --release --locked "${flag[@]}" "${features[@]}" -p "$bin" --bin "$bin" --output-format zip >&2
done
for bin in batch-handler manifest-builder; do
  zip="target/lambda/$bin/bootstrap.zip"
  printf '%s %s bytes (%s)\n' "$zip" "$(stat -c %s "$zip")" "$arch"
done
