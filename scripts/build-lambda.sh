#!/usr/bin/env bash
# Builds both functions as `bootstrap` zips for the provided.al2023 runtime with cargo-lambda
# (installed with zig from PyPI into ./.venv on first use) and prints their sizes:
#   target/lambda/batch-handler/bootstrap.zip      the Batch Operations handler
#   target/lambda/manifest-builder/bootstrap.zip   the scheduled manifest function
# x86_64 by default. ARCH=arm64 builds for Graviton where the toolchain has the
# aarch64-unknown-linux-gnu standard library; elsewhere it says what to install and exits 2
# (it never fetches a target itself).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-cmake.sh   # libopus builds with cmake: from PyPI when the machine has none
arch=${ARCH:-x86_64}
flag=()
if [ "$arch" = arm64 ]; then
  # The standard library for the target is all that is needed: cargo-lambda links with zig
  # (from PyPI, with cargo-lambda), so no cross gcc. Looked up in the toolchain's sysroot, which
  # works with or without rustup.
  sysroot=$(rustc --print sysroot)
  if [ ! -d "$sysroot/lib/rustlib/aarch64-unknown-linux-gnu/lib" ]; then
    {
      echo "ARCH=arm64: this Rust toolchain ($(rustc --version)) has no standard library for"
      echo "aarch64-unknown-linux-gnu (looked in $sysroot/lib/rustlib/)."
      echo "Install it, then run ARCH=arm64 scripts/build-lambda.sh again:"
      echo "  rustup target add aarch64-unknown-linux-gnu      (a rustup toolchain)"
      echo "  or the rust-std component for aarch64-unknown-linux-gnu of this exact release"
      echo "  (https://static.rust-lang.org/dist/rust-std-$(rustc --version | cut -d' ' -f2)-aarch64-unknown-linux-gnu.tar.xz, its install.sh --prefix=$sysroot)"
      echo "No cross gcc is needed: cargo-lambda links with zig."
    } >&2
    exit 2
  fi
  flag=(--arm64)
elif [ "$arch" != x86_64 ]; then
  echo "ARCH must be x86_64 or arm64, not $arch" >&2
  exit 2
fi
if [ ! -x .venv/bin/cargo-lambda ]; then
  echo "installing cargo-lambda (PyPI) into .venv ..." >&2
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'cargo-lambda==1.9.2' >&2
fi
export PATH="$PWD/.venv/bin:$PATH"
for bin in batch-handler manifest-builder; do
  # The scheduled manifest function does not link the local engine and the embedded S3.
  features=(); [ "$bin" = manifest-builder ] && features=(--no-default-features)
  cargo lambda build --release --locked "${flag[@]}" "${features[@]}" -p "$bin" --bin "$bin" --output-format zip >&2
done
for bin in batch-handler manifest-builder; do
  zip="target/lambda/$bin/bootstrap.zip"
  printf '%s %s bytes (%s)\n' "$zip" "$(stat -c %s "$zip")" "$arch"
done
