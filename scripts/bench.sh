#!/usr/bin/env bash
# Benchmarks side by side with ffmpeg, sox, flac, opusenc and DuckDB in one run; writes
# BENCHMARKS.md. Installs what it compares against (ffmpeg, sox, flac, opus-tools, espeak-ng from
# Debian; DuckDB, PESQ and moto from PyPI into
# ./.venv), builds the release binaries, generates its inputs deterministically, and starts a
# local moto for the memory row. `--quick` uses small inputs and 3 rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v flac >/dev/null 2>&1 || need+=(flac)
command -v opusdec >/dev/null 2>&1 || need+=(opus-tools)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
eval "$(scripts/start-moto.sh)"     # also creates ./.venv with moto
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
.venv/bin/python -c "import duckdb" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check duckdb
# PESQ for the codec table's speech-quality column (scripts/quality.py).
.venv/bin/python -c "import pesq, numpy" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check 'numpy==2.4.6' 'pesq==0.0.4'
. scripts/ensure-cmake.sh   # libopus builds with cmake: from PyPI when the machine has none
cargo build --release --locked -p batch-handler -p manifest-builder
kernel=()
case " $* " in
  *" --quick "*) ;;
  *) cargo bench --locked -p batch-handler --bench kernel -- --measurement-time 3 && kernel=(--kernel) ;;
esac
.venv/bin/python scripts/bench.py --moto "$MOTO_ENDPOINT" "${kernel[@]}" "$@"
