#!/usr/bin/env python3
"""Benchmarks side by side with the reference tools, interleaved in one run; writes BENCHMARKS.md.

Called by scripts/bench.sh, which installs the tools and builds the release binaries. Each round
runs every command of a comparison once, in turn, so load on the machine hits all of them alike;
the table gives median, min and max wall time and the ratio of the other tool's median to ours.
"""
import argparse
import shutil
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
WORK = os.path.join(ROOT, "target", "bench")
ANCHORS = os.path.join(os.path.dirname(ROOT), "shared", "anchors")
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
           AWS_EC2_METADATA_DISABLED="true")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, **kw)


def timed(cmd):
    t = time.perf_counter()
    run(cmd)
    return time.perf_counter() - t


def compare(title, commands, rounds, note="", remove_first=False):
    """commands: [(name, argv)], ours first. Returns a markdown section.

    remove_first: delete each command's last argument (its output file) before it runs, untimed.
    """
    times = {name: [] for name, _ in commands}
    for _ in range(rounds):
        for name, cmd in commands:
            if remove_first and os.path.exists(cmd[-1]):
                os.remove(cmd[-1])
            times[name].append(timed(cmd))
    ours = statistics.median(times[commands[0][0]])
    lines = [f"### {title}", "", note, "", "| command | median s | min s | max s | vs ours |", "|---|---|---|---|---|"]
    for name, cmd in commands:
        med = statistics.median(times[name])
        ratio = "1.00" if name == commands[0][0] else f"{med / ours:.2f}x slower" if med >= ours else f"{ours / med:.2f}x faster"
        lines.append(f"| {name} | {med:.3f} | {min(times[name]):.3f} | {max(times[name]):.3f} | {ratio} |")
    shown = lambda cmd: " ".join(cmd).replace(ROOT + "/", "").replace(os.path.dirname(ROOT) + "/", "../")
    lines += ["", "Commands (from the repository root):", ""] + [f"- {name}: `{shown(cmd)}`" for name, cmd in commands] + [""]
    print("\n".join(lines), flush=True)
    return "\n".join(lines), {name: statistics.median(v) for name, v in times.items()}


def peak_rss(argv):
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=dict(ENV, REPORT_PEAK_RSS="1"))
    for line in out.stderr.splitlines():
        if line.startswith("peak_rss_kib="):
            return int(line.split("=", 1)[1])
    raise SystemExit(f"no peak_rss_kib from {argv}")


def skip(title, why):
    """A section that could not run, said loudly in BENCHMARKS.md and on the terminal."""
    text = f"### {title}\n\n**SKIP: {why}.**\n"
    print(f"*** SKIP {title}: {why} ***", file=sys.stderr, flush=True)
    return text


def cpu_rss(argv):
    """(CPU seconds, peak RSS in KiB) of one run of argv, by GNU time (Debian package `time`):
    the kernel's accounting of the command alone (a Python fork would count the interpreter's
    memory as the child's peak)."""
    report = os.path.join(WORK, "time.txt")
    run(["/usr/bin/time", "-f", "%U %S %M", "-o", report] + argv)
    user, system, rss = open(report).read().split()[-3:]
    return float(user) + float(system), int(rss)


def codec_rows(bh, wav, out):
    """(codec, encoder, argv, output path, channels) for every codec x mono/stereo, ours and the
    reference encoders', on `wav`; outputs named by `out`."""
    ff = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", wav]
    opus_ff = ["-c:a", "libopus", "-application", "voip", "-frame_duration", "20"]
    return [
        ("A-law mono", "ours", [bh, "transcode", wav, out("a1.wav")], 1),
        ("A-law mono", "ffmpeg pcm_alaw", ff + ["-ac", "1", "-c:a", "pcm_alaw", out("a1-ff.wav")], 1),
        ("A-law stereo", "ours", [bh, "transcode", "--downmix", "stereo", wav, out("a2.wav")], 2),
        ("A-law stereo", "ffmpeg pcm_alaw", ff + ["-c:a", "pcm_alaw", out("a2-ff.wav")], 2),
        ("FLAC mono", "ours", [bh, "transcode", "--codec", "flac", wav, out("f1.flac")], 1),
        ("FLAC mono", "ffmpeg flac", ff + ["-ac", "1", "-c:a", "flac", out("f1-ff.flac")], 1),
        ("FLAC stereo", "ours", [bh, "transcode", "--codec", "flac", "--downmix", "stereo", wav, out("f2.flac")], 2),
        ("FLAC stereo", "ffmpeg flac", ff + ["-c:a", "flac", out("f2-ff.flac")], 2),
        ("FLAC stereo", "flac -5", ["flac", "-5", "-s", "-f", "-o", out("f2-ref.flac"), wav], 2),
        ("Opus mono 16 kb/s", "ours", [bh, "transcode", "--codec", "opus", wav, out("o1.ogg")], 1),
        ("Opus mono 16 kb/s", "ffmpeg libopus", ff + ["-ac", "1"] + opus_ff + ["-b:a", "16k", out("o1-ff.ogg")], 1),
        ("Opus mono 16 kb/s", "opusenc", ["opusenc", "--quiet", "--speech", "--bitrate", "16", "--downmix-mono", wav, out("o1-ref.ogg")], 1),
        ("Opus stereo 2x16 kb/s", "ours", [bh, "transcode", "--codec", "opus", "--downmix", "stereo", wav, out("o2.ogg")], 2),
        ("Opus stereo 2x16 kb/s", "ffmpeg libopus", ff + opus_ff + ["-b:a", "32k", out("o2-ff.ogg")], 2),
        ("Opus stereo 2x16 kb/s", "opusenc", ["opusenc", "--quiet", "--speech", "--bitrate", "32", wav, out("o2-ref.ogg")], 2),
    ]


def quality(bh, sample, codec, who, argv, path, channels):
    """PESQ narrowband per channel (and crosstalk) of one encoder's output for the 18-s speech
    call, decoded to 8 kHz PCM16, against the call (or ffmpeg's average of it, for mono)."""
    if os.path.exists(path):
        os.remove(path)
    run(argv)
    dec = path + ".pcm.wav"
    if path.endswith(".ogg"):
        run(["opusdec", "--quiet", "--rate", "8000", path, dec])
    else:
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", path, "-c:a", "pcm_s16le", dec])
    ref = sample if channels == 2 else os.path.join(WORK, "speech-18-mono.wav")
    if channels == 1 and not os.path.exists(ref):
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", sample, "-ac", "1", "-c:a", "pcm_s16le", ref])
    venv_py = os.path.join(ROOT, ".venv", "bin", "python")
    q = json.loads(subprocess.run([venv_py, os.path.join(ROOT, "scripts", "quality.py"), ref, dec],
                                  check=True, capture_output=True, text=True).stdout)
    pesq = " / ".join(f"{v:.2f}" for v in q["pesq_nb"])
    leak = " / ".join(f"{v:.0f}" for v in q["crosstalk_db"]) if q["crosstalk_db"] else ""
    return pesq, leak


def codecs(bh, synthetic, minutes):
    """Each codec x mono/stereo: ours against ffmpeg, flac and opusenc, on the same recording."""
    hours = minutes / 60
    # Lambda at 512 MB gets 512/1769 of a vCPU; $ per GB-second (x86, us-east-1).
    share, gb_s = 512 / 1769, 0.0000166667
    if not os.path.exists("/usr/bin/time"):
        return skip("Codecs", "GNU time is not installed (apt-get install time)")
    speech = shutil.which("espeak-ng") and shutil.which("sox")
    sample = os.path.join(WORK, "speech-18.wav")
    if speech:
        wav = os.path.join(WORK, f"speech-{minutes}.wav")
        if not os.path.exists(wav):
            run([os.path.join(ROOT, "scripts", "speech-call.sh"), wav, str(minutes * 60)])
        if not os.path.exists(sample):
            run([os.path.join(ROOT, "scripts", "speech-call.sh"), sample])
        what = (f"the {minutes}-minute two-talker speech call of `scripts/speech-call.sh` (espeak-ng voices, "
                "agent left, customer right, 8 kHz 16-bit stereo)")
    else:
        wav = synthetic
        what = f"the {minutes}-minute synthetic call"
        print("*** SKIP the speech call and the quality column: espeak-ng or sox is not installed "
              "(apt-get install espeak-ng sox); the synthetic call is used ***", file=sys.stderr, flush=True)
    venv_py = os.path.join(ROOT, ".venv", "bin", "python")
    have_pesq = speech and subprocess.run([venv_py, "-c", "import pesq, numpy"], capture_output=True).returncode == 0
    lines = [f"### Codecs on {what}, mono and stereo", "",
             "CPU seconds (user + system, from the kernel) and peak RSS of one run each; output MB per hour of "
             "audio; Lambda $ per 1,000 audio minutes is the CPU time alone at 512 MB (512/1769 of a vCPU, "
             "$0.0000166667 per GB-second), the S3 transfer not counted. Quality: PESQ narrowband (ITU-T P.862 "
             "MOS-LQO, 1.0 to 4.5, `pesq` from PyPI, `scripts/quality.py`) of each channel of the 18-s call "
             "encoded by that row's command and decoded to 8 kHz (opusdec for Ogg, ffmpeg otherwise), against the "
             "call (mono rows: against ffmpeg's `-ac 1` average of it); crosstalk is each decoded channel's "
             "energy where only the other talker speaks, relative to where its own does (dB, lower is apart; a "
             "mono fold-down is about 0). FLAC decodes bit-exactly (tested), so its PESQ is the PCM's own "
             "(4.5 is the scale's top; PESQ of a signal against itself gives 4.55).", "",
             "| codec | encoder | MB per hour | CPU s per audio hour | CPU vs ours | peak RSS MiB | Lambda $ / 1,000 min | PESQ NB (L / R) | crosstalk dB (L / R) |",
             "|---|---|---|---|---|---|---|---|---|"]
    if not have_pesq:
        print("*** SKIP the quality column: no .venv/bin/python with pesq and numpy, or no speech call ***",
              file=sys.stderr, flush=True)
    ours = {}
    out = lambda n: os.path.join(WORK, f"codec-{n}")
    qout = lambda n: os.path.join(WORK, f"quality-{n}")
    for (codec, who, argv, channels), (_, _, qargv, _) in zip(codec_rows(bh, wav, out), codec_rows(bh, sample, qout)):
        path = argv[5] if argv[0] == "flac" else argv[-1]
        if shutil.which(argv[0]) is None and not os.path.isabs(argv[0]):
            lines.append(f"| {codec} | {who} | **SKIP: {argv[0]} not installed** | | | | | | |")
            continue
        if os.path.exists(path):
            os.remove(path)
        cpu, rss = cpu_rss(argv)
        mb = os.path.getsize(path) / 1e6 / hours
        per_hour = cpu / hours
        if who == "ours":
            ours[codec] = per_hour
            vs = "1.00"
        else:
            r = per_hour / ours[codec] if ours[codec] > 0 else float("inf")
            vs = f"{r:.2f}x" if r != float("inf") else "n/a"
        lam = per_hour / 60 / share * 0.5 * gb_s * 1000
        if have_pesq:
            qpath = qargv[5] if qargv[0] == "flac" else qargv[-1]
            pesq, leak = quality(bh, sample, codec, who, qargv, qpath, channels)
        else:
            pesq, leak = "**SKIP**", ""
        lines.append(f"| {codec} | {who} | {mb:.1f} | {per_hour:.2f} | {vs} | {rss / 1024:.1f} | ${lam:.5f} | {pesq} | {leak} |")
    lines.append("")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--moto", default=os.environ.get("MOTO_ENDPOINT"))
    ap.add_argument("--kernel", action="store_true", help="add the criterion kernel results (bench.sh ran cargo bench)")
    ap.add_argument("--bin-dir", default=REL, help="where the binaries are (CI's smoke run: target/debug)")
    ap.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    a = ap.parse_args()
    rounds = 3 if a.quick else 7
    minutes = 10 if a.quick else 60
    rows_per_file = 100_000 if a.quick else 1_000_000
    os.makedirs(WORK, exist_ok=True)
    mb, bh = os.path.join(a.bin_dir, "manifest-builder"), os.path.join(a.bin_dir, "batch-handler")
    sections = []

    # 1. Transcode, file to file.
    wav = os.path.join(WORK, f"call-{minutes}.wav")
    if not os.path.exists(wav):
        run([mb, "sample-recording", wav, "--minutes", str(minutes)])
    out = lambda n: os.path.join(WORK, f"out-{n}.wav")
    size = os.path.getsize(wav)
    commands = [("ours: batch-handler transcode", [bh, "transcode", wav, out("ours")]),
                ("ffmpeg -ac 1 -c:a pcm_alaw", ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", wav, "-ac", "1", "-c:a", "pcm_alaw", out("ffmpeg")]),
                ("sox -D -c 1 -e a-law", ["sox", "-D", wav, "-c", "1", "-e", "a-law", out("sox")]),
                ("cp (floor)", ["cp", wav, out("cp")])]
    text, _ = compare(
        f"{minutes}-min Connect WAV ({size / 1e6:.1f} MB) to A-law mono, file to file, new output file",
        commands, rounds, "Target (issue 6): at least 6x faster than ffmpeg and 8x than sox. Each output is deleted "
        "before its command runs (untimed), as when a batch converts into new files.", remove_first=True)
    sections.append(text)
    text, _ = compare(
        "The same, replacing an existing output file",
        commands, rounds, "Each command overwrites its output of the previous round. ext4 (this machine's /) then flushes "
        "the new file's blocks when it replaces the old one (`auto_da_alloc`: on our rename, on the others' "
        "truncate and close), which costs every tool about the same 20-30 ms.")
    sections.append(text)

    # 1b. Per codec, mono and stereo, against the reference encoders, on the same recording.
    sections.append(codecs(bh, wav, minutes))

    # 2. Inventory to manifest, against DuckDB.
    gen = os.path.join(ANCHORS, "gen_inventory.py")
    if not os.path.exists(gen):
        sections.append(skip("Inventory to manifest", f"{gen} is absent (../shared is not beside this clone)"))
    if os.path.exists(gen):
        inv = os.path.join(WORK, f"inventory-{rows_per_file}")
        if not os.path.exists(os.path.join(inv, "manifest.json")):
            os.makedirs(inv, exist_ok=True)
            run([sys.executable, gen, inv, "--files", "5", "--rows-per-file", str(rows_per_file)])
            files = []
            for i in range(5):
                p = os.path.join(inv, f"inventory-{i}.csv")
                run(["gzip", "-f", p])
                data = open(p + ".gz", "rb").read()
                files.append({"key": f"inventory-{i}.csv.gz", "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
            json.dump({"sourceBucket": "amazon-connect-0123456789ab", "destinationBucket": "arn:aws:s3:::inv", "version": "2016-11-30",
                       "creationTimestamp": "0", "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass",
                       "files": files}, open(os.path.join(inv, "manifest.json"), "w"))
        gz = [os.path.join(inv, f"inventory-{i}.csv.gz") for i in range(5)]
        venv_py = os.path.join(ROOT, ".venv", "bin", "python")
        text, med = compare(
            f"S3 Inventory, {5 * rows_per_file:,} rows in 5 CSV.gz files, to a filtered manifest",
            [("ours: manifest-builder manifest --inventory", [mb, "manifest", "--inventory", os.path.join(inv, "manifest.json"), "--skip-storage-class", "NONE",
                                                            "--modified-before", "2024-10-01", "--output", os.path.join(WORK, "inv-ours.csv")]),
             ("DuckDB, threads=2 (duckdb_filter.py)", [venv_py, os.path.join(ANCHORS, "duckdb_filter.py"), os.path.join(WORK, "inv-duck.csv")] + gz + ["--threads", "2"])],
            rounds, "Same selection on both sides (.wav case-insensitive, >= 512 KiB, modified before 2024-10-01), both written as plain CSV. Target: 1.5x DuckDB.")
        rate = 5 * rows_per_file / med["ours: manifest-builder manifest --inventory"]
        sections.append(text + f"\nOurs: {rate:,.0f} rows/s.\n")

    # 3. Handler peak RSS, 2-min vs long objects, on a local S3 server (moto).
    if a.moto:
        import boto3  # from the project's .venv (moto brings it)
        s3 = boto3.client("s3", endpoint_url=a.moto, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        bucket = f"bench-rss-{int(time.time())}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        lines = ["### Handler peak RSS on a local S3 server (moto)", "", "| object | bytes | peak RSS MiB |", "|---|---|---|"]
        for mins in ([2, 60] if a.quick else [2, 60, 240]):
            path = os.path.join(WORK, f"call-{mins}.wav")
            if not os.path.exists(path):
                run([mb, "sample-recording", path, "--minutes", str(mins)])
            s3.upload_file(path, bucket, f"{mins}.wav")
            ev = os.path.join(WORK, f"event-{mins}.json")
            json.dump({"invocationSchemaVersion": "1.0", "invocationId": "b", "job": {"id": "bench"},
                       "tasks": [{"taskId": "t", "s3Key": f"{mins}.wav", "s3VersionId": None, "s3BucketArn": f"arn:aws:s3:::{bucket}"}]}, open(ev, "w"))
            kib = peak_rss([bh, "invoke", "--event", ev, "--endpoint-url", a.moto])
            lines.append(f"| {mins} min | {os.path.getsize(path):,} | {kib / 1024:.1f} |")
        lines += ["", f"Command: `REPORT_PEAK_RSS=1 batch-handler invoke --event EVENT.json --endpoint-url {a.moto}`. Target: flat, <= 48 MiB.", ""]
        print("\n".join(lines), flush=True)
        sections.append("\n".join(lines))

    # 3b. S3 requests per converted object, counted in moto's access log (werkzeug, one line per request).
    log = os.path.join(ROOT, "target", "moto.log")
    if a.moto and os.path.exists(log):
        import boto3
        import re
        from collections import Counter
        from urllib.parse import quote
        s3 = boto3.client("s3", endpoint_url=a.moto, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        bucket = f"bench-requests-{int(time.time())}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        path = os.path.join(WORK, "call-2.wav")
        if not os.path.exists(path):
            run([mb, "sample-recording", path, "--minutes", "2"])
        per = 10
        lines = ["### S3 requests per converted object, counted at the server", "",
                 "| objects | requests per object | by kind (whole invocation) |", "|---|---|---|"]
        for label, tagging in (("untagged", None), ("tagged (2 tags)", "team=a&case=b")):
            keys = [f"{label.split()[0]}/{i} +%.wav" for i in range(per)]
            for k in keys:
                extra = {"Tagging": tagging} if tagging else {}
                s3.upload_file(path, bucket, k, ExtraArgs=extra)
            ev = os.path.join(WORK, f"event-requests-{label.split()[0]}.json")
            json.dump({"invocationSchemaVersion": "2.0", "invocationId": "r", "job": {"id": "bench", "userArguments": {}},
                       "tasks": [{"taskId": str(i), "s3Bucket": bucket, "s3Key": quote(k, safe="/"), "s3VersionId": None}
                                 for i, k in enumerate(keys)]}, open(ev, "w"))
            before = os.path.getsize(log)
            out = run([bh, "invoke", "--event", ev, "--endpoint-url", a.moto]).stdout
            results = json.loads(out)["results"]
            assert all(r["resultCode"] == "Succeeded" for r in results), out
            time.sleep(0.5)
            with open(log, "rb") as f:
                f.seek(before)
                new_lines = f.read().decode(errors="replace").splitlines()
            kinds = Counter()
            for line in new_lines:
                m = re.search(r'"(GET|PUT|HEAD|POST|DELETE) /[^ ?]*(\?[^ ]*)? HTTP', line)
                if m:
                    q = m.group(2) or ""
                    sub = next((x for x in ("versioning", "tagging", "x-id=GetObject", "x-id=PutObject") if x in q), q[:20])
                    kinds[f"{m.group(1)} {sub}".strip()] += 1
            total = sum(kinds.values())
            bucket_level = kinds.get("GET versioning", 0)
            lines.append(f"| {per} {label} | {(total - bucket_level) / per:.1f} (+{bucket_level} GetBucketVersioning per invocation) | "
                         + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) + " |")
        lines += ["", "Command: `batch-handler invoke --event EVENT.json --endpoint-url MOTO` with 10 tasks, versioned bucket, "
                  "converted in place; lines counted in moto's access log. Target: <= 3 untagged, <= 4 tagged. "
                  "Reference design: 7 (anchors.md).", ""]
        print("\n".join(lines), flush=True)
        sections.append("\n".join(lines))

    # 3c. The kernel alone, from criterion's results of `cargo bench` (run by bench.sh without --quick).
    crit = os.path.join(ROOT, "target", "criterion", "kernel")
    if a.kernel and os.path.isdir(crit):
        lines = ["### Conversion kernel alone, in memory (criterion)", "",
                 "| bench | median time per 8 MiB | GB/s of input | vs memcpy |", "|---|---|---|---|"]
        rates = {}
        for name in ("alaw_average", "alaw_sum", "alaw_left", "memcpy_floor"):
            d = os.path.join(crit, name, "new")
            if not os.path.exists(d):
                continue
            ns = json.load(open(os.path.join(d, "estimates.json")))["median"]["point_estimate"]
            nbytes = json.load(open(os.path.join(d, "benchmark.json")))["throughput"]["Bytes"]
            rates[name] = (ns, nbytes / ns)
        for name, (ns, gbs) in rates.items():
            floor = rates.get("memcpy_floor", (0, 0))[1]
            lines.append(f"| {name} | {ns / 1e3:.0f} us | {gbs:.2f} | {gbs / floor:.2f}x |" if floor else f"| {name} | {ns / 1e3:.0f} us | {gbs:.2f} | |")
        lines += ["", "Command: `cargo bench -p batch-handler --bench kernel -- --measurement-time 3` (one thread). "
                  "Target: >= 4 GB/s of input per core.", ""]
        print("\n".join(lines), flush=True)
        sections.append("\n".join(lines))

    # 4. End to end: N two-minute recordings, concurrency 8, through the local engine, against
    #    the reference design's per-object pipeline (anchor 1) on the same machine.
    n = 40 if a.quick else 200
    wavs = os.path.join(WORK, f"e2e-wavs-{n}")
    gen_wavs = os.path.join(ANCHORS, "gen_wavs.sh")
    if not (os.path.exists(gen_wavs) and a.moto):
        why = f"{gen_wavs} is absent (../shared is not beside this clone)" if a.moto else "no moto (--moto)"
        sections.append(skip("End to end against the reference pipeline", why))
    if os.path.exists(gen_wavs) and a.moto:
        run(["bash", gen_wavs, wavs, str(n), "120"])
        rows = []
        def rate(out):
            v = json.loads(out)
            return v["selected"] / v["seconds"], v
        import boto3
        def upload(s3, bucket):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            for i, f in enumerate(sorted(os.listdir(wavs))):
                s3.upload_file(os.path.join(wavs, f), bucket, f"connect/bench/CallRecordings/2024/01/{1 + i % 28:02d}/{f}")
        for r in range(1 if a.quick else 3):
            # (a) and (b): ours and the reference pipeline against one embedded S3 (`serve
            # --embedded-s3`, its own process), each on its own versioned bucket, in place.
            store = os.path.join(WORK, f"embedded-{r}-{int(time.time())}")
            serve = subprocess.Popen([mb, "serve", "--embedded-s3", os.path.join(store, "s3"), "--engine-dir",
                                      os.path.join(store, "serve-engine")], stdout=subprocess.PIPE, env=ENV, text=True)
            try:
                ep = json.loads(serve.stdout.readline())
                url = ep["s3_endpoint_url"]
                env = dict(ENV, AWS_ACCESS_KEY_ID=ep["aws_access_key_id"], AWS_SECRET_ACCESS_KEY=ep["aws_secret_access_key"])
                s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                  aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
                upload(s3, "ours")
                upload(s3, "reference")
                out = subprocess.run([mb, "--endpoint-url", url, "--json", "run", "--local", "--bucket", "ours",
                                      "--prefix", "connect/bench/", "--task-concurrency", "8", "--engine-dir",
                                      os.path.join(store, "engine")], check=True, stdout=subprocess.PIPE, env=env).stdout
                ours_embedded, _ = rate(out)
                ref = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "reference_pipeline.py"), "--endpoint", url,
                                      "--bucket", "reference", "--prefix", "connect/bench/", "--concurrency", "8",
                                      "--workdir", store], check=True, stdout=subprocess.PIPE, env=env).stdout
                ref_embedded = json.loads(ref)["objects_per_s"]
            finally:
                serve.kill()
                serve.wait()
                subprocess.run(["rm", "-rf", store])
            # (c) ours on moto, versioned, in place
            s3 = boto3.client("s3", endpoint_url=a.moto, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
            bucket = f"bench-e2e-{int(time.time())}-{r}"
            upload(s3, bucket)
            out = run([mb, "--endpoint-url", a.moto, "--json", "run", "--local", "--bucket", bucket, "--prefix", "connect/bench/",
                       "--task-concurrency", "8", "--engine-dir", os.path.join(WORK, f"engine-{bucket}")]).stdout
            ours_moto, _ = rate(out)
            # (d) the reference design's pipeline as the anchor runs it (its own fresh moto, versioned)
            ref = run([sys.executable, os.path.join(ANCHORS, "s3_pipeline_bench.py"), "--wav-dir", wavs, "--n", str(n),
                       "--concurrency", "8", "--workdir", os.path.join(WORK, "anchor1")]).stdout
            ref_moto = json.loads(ref)["main"]["objects_per_s"]
            rows.append((ours_embedded, ref_embedded, ours_moto, ref_moto))
        med = lambda i: statistics.median(x[i] for x in rows if x[i])
        lines = [f"### End to end: {n} two-minute recordings (3.84 MB), concurrency 8, versioned, in place", "",
                 "| what | server | objects/s (median) | vs the reference on the same server |", "|---|---|---|---|",
                 f"| ours: local engine + in-process handler (`run --local`) | embedded S3 (`serve --embedded-s3`) | {med(0):.1f} | {med(0) / med(1):.1f}x |",
                 f"| reference design's pipeline (`scripts/reference_pipeline.py`: boto3 + ffmpeg, 7 requests) | the same embedded S3 | {med(1):.1f} | 1.0x |",
                 f"| ours: local engine + in-process handler (`run --local`) | moto | {med(2):.1f} | {med(2) / med(3):.1f}x |",
                 f"| reference design's pipeline (anchor 1, `s3_pipeline_bench.py --mode pipeline`) | its own moto | {med(3):.1f} | 1.0x |", "",
                 "Target: 10x the reference on the same server. On moto the figure measures moto (about 35-45 objects/s of "
                 "3.84 MB GET+PUT on this machine, anchors.md).", ""]
        print("\n".join(lines), flush=True)
        sections.append("\n".join(lines))

    header = [
        "# Benchmarks",
        "",
        f"Generated by `scripts/bench.sh{' --quick' if a.quick else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{os.cpu_count()} cores, {platform.machine()}, {rounds} interleaved rounds per comparison. "
        "Wall times of whole processes; ratios are of medians measured in the same run."
        + ("" if a.bin_dir == REL else f" Binaries from {a.bin_dir} (a smoke run: the figures mean nothing)."),
        "",
        "The conversion kernel alone is measured by `cargo bench -p batch-handler --bench kernel` (criterion, against a memcpy floor); "
        "`scripts/bench.sh` runs it and adds its table, `--quick` leaves it out.",
        "",
    ]
    with open(a.output, "w") as f:
        f.write("\n".join(header + sections))
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
