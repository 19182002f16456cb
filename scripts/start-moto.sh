#!/usr/bin/env bash
# Starts moto server on 127.0.0.1 (installing it into ./.venv on first use) and prints
# "MOTO_ENDPOINT=http://127.0.0.1:PORT MOTO_PID=PID". Stop it with: kill $MOTO_PID
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "installing moto (PyPI) into $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.2.5' >&2
fi
port=${MOTO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
log=${MOTO_LOG:-"$root/target/moto.log"}
mkdir -p "$(dirname "$log")"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
    echo "MOTO_ENDPOINT=http://127.0.0.1:$port MOTO_PID=$pid"
    exit 0
  fi
  sleep 0.1
done
echo "moto did not start; see $log" >&2
kill "$pid" 2>/dev/null || true
exit 1
