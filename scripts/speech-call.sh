#!/usr/bin/env bash
# A two-talker call of real (synthetic) speech, as Amazon Connect records it: PCM16 8 kHz stereo,
# the agent on the left, the customer on the right, turns that overlap a little, from espeak-ng
# and sox (Debian). Repeated to SECONDS (default 18) for the benchmark's hour.
#   scripts/speech-call.sh OUT.wav [SECONDS]
# The same text and voices every time: the same input for every codec and every run.
set -euo pipefail
out=$1
seconds=${2:-18}
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "speech-call.sh: $tool not installed (apt-get install $tool)" >&2; exit 3; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v en-us -s 150 -w "$tmp/a.wav" \
  "Thank you for calling. My name is Alex. How can I help you today? I can look up your account and check the order you placed last week."
espeak-ng -v en-gb+f3 -s 140 -w "$tmp/b.wav" \
  "Hi, yes, I ordered a blue kettle on Monday and it still has not arrived. Could you tell me where it is? I need it before the weekend."
sox -D "$tmp/a.wav" -r 8000 "$tmp/a8.wav"
sox -D "$tmp/b.wav" -r 8000 "$tmp/b8.wav"
# Agent from 0 s, customer from 8 s (1.6 s of overlap), 18 s in all.
sox -V1 -D "$tmp/a8.wav" "$tmp/a18.wav" pad 0 9 trim 0 18
sox -V1 -D "$tmp/b8.wav" "$tmp/b18.wav" pad 8 0 trim 0 18
sox -D -M "$tmp/a18.wav" "$tmp/b18.wav" -b 16 "$tmp/call.wav" remix 1 2
if [ "$seconds" = 18 ]; then
  cp "$tmp/call.wav" "$out"
else
  repeats=$(( (seconds + 17) / 18 - 1 ))
  sox -D "$tmp/call.wav" "$out" repeat "$repeats" trim 0 "$seconds"
fi
