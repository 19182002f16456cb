#!/usr/bin/env python3
"""Speech quality of a decoded recording against its original, channel by channel.

    quality.py ORIGINAL.wav DECODED.wav  ->  one JSON line:
    {"pesq_nb": [L, R], "crosstalk_db": [L, R], "frames": N, "channels": C}

PESQ narrowband (ITU-T P.862, MOS-LQO 1.0 to 4.5, the `pesq` package from PyPI) needs 8 or
16 kHz: both files must be 8 kHz PCM16 WAV of the same channel count (decode first). Crosstalk is
how much of the other channel's talker leaks into each decoded channel: the energy of the decoded
channel where only the other talker speaks in the original, over its energy where its own talker
speaks, in dB (lower is better; a mono fold-down gives about 0 dB).
"""
import json
import sys
import wave

import numpy as np
from pesq import pesq


def read(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            sys.exit(f"{path}: {8 * w.getsampwidth()}-bit; PCM16 needed (decode it first)")
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return rate, x.reshape(-1, ch)


def active(x, rate):
    """20 ms frames where this signal is speech (above -35 dB of its loudest frame)."""
    n = rate // 50
    frames = x[: len(x) // n * n].reshape(-1, n)
    e = (frames**2).mean(axis=1) + 1e-9
    return e > e.max() * 10 ** (-35 / 10), e


def main():
    (ra, a), (rb, b) = read(sys.argv[1]), read(sys.argv[2])
    if ra != rb or ra not in (8000, 16000):
        sys.exit(f"rates {ra} and {rb}: both must be 8000 or 16000 Hz")
    if a.shape[1] != b.shape[1]:
        sys.exit(f"{a.shape[1]} and {b.shape[1]} channels")
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    scores, leaks = [], []
    for c in range(a.shape[1]):
        scores.append(round(float(pesq(ra, a[:, c], b[:, c], "nb")), 3))
        if a.shape[1] == 2:
            own, _ = active(a[:, c], ra)
            other, _ = active(a[:, 1 - c], ra)
            _, e = active(b[:, c], ra)
            only_other = other & ~own
            if own.any() and only_other.any():
                leaks.append(round(float(10 * np.log10(e[only_other].mean() / e[own].mean())), 1))
    print(json.dumps({"pesq_nb": scores, "crosstalk_db": leaks, "frames": n, "channels": a.shape[1]}))


if __name__ == "__main__":
    main()
