#!/usr/bin/env bash
# Benchmarks side by side with ffmpeg, sox and DuckDB in one run; writes BENCHMARKS.md.
# Installs what it compares against (ffmpeg, sox from Debian; DuckDB and moto from PyPI into
# ./.venv), builds the release binaries, generates its inputs deterministically, and starts a
# local moto for the memory row. `--quick` uses small inputs and 3 rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v flac >/dev/null 2>&1 || need+=(flac)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
eval "$(scripts/start-moto.sh)"     # also creates ./.venv with moto
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
.venv/bin/python -c "import duckdb" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check duckdb
cargo build --release --locked -p batch-handler -p manifest-builder
kernel=()
case " $* " in
  *" --quick "*) ;;
  *) cargo bench --locked -p batch-handler --bench kernel -- --measurement-time 3 && kernel=(--kernel) ;;
esac
.venv/bin/python scripts/bench.py --moto "$MOTO_ENDPOINT" "${kernel[@]}" "$@"
