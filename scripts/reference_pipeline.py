#!/usr/bin/env python3
"""The reference design's per-object pipeline (anchors.md, anchor 1), against any S3 endpoint.

The anchor's own script starts a fresh moto for itself; this one runs the same steps against the
server it is given, so `bench.py` can time it and ours on the same embedded S3. Per object, as the
reference Lambda does it (7 requests): GetObjectTagging (skip when tagged), ffmpeg reading a
presigned GET URL into a local WAV, ffmpeg converting that to A-law mono, upload_file of the
result over the key, boto3's managed copy onto itself into GLACIER_IR (HEAD + CopyObject), and
PutObjectTagging. A thread pool of --concurrency workers, one client each; prints one JSON line.
"""
import argparse
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--ffmpeg", default="ffmpeg")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    a = ap.parse_args()

    def client():
        return boto3.client("s3", endpoint_url=a.endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"),
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    setup = client()
    keys = []
    for page in setup.get_paginator("list_objects_v2").paginate(Bucket=a.bucket, Prefix=a.prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    clients = queue.Queue()
    for _ in range(a.concurrency):
        clients.put(client())
    local = threading.local()

    def s3():
        if not hasattr(local, "c"):
            local.c = clients.get_nowait()
        return local.c

    def ffmpeg(src, dst):
        subprocess.run([a.ffmpeg, "-y", "-hide_banner", "-i", src, "-ac", "1", "-ar", "8000", "-c:a", "pcm_alaw", dst],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def convert(key):
        c = s3()
        if any(t["Key"] == "converted" for t in c.get_object_tagging(Bucket=a.bucket, Key=key)["TagSet"]):
            return "skipped"
        work = tempfile.mkdtemp(dir=a.workdir)
        inp, out = os.path.join(work, "in.wav"), os.path.join(work, "out.wav")
        try:
            url = c.generate_presigned_url("get_object", Params={"Bucket": a.bucket, "Key": key}, ExpiresIn=300)
            ffmpeg(url, inp)
            ffmpeg(inp, out)
            if not os.path.exists(out):
                return "failed"
            c.upload_file(out, a.bucket, key)
            c.copy({"Bucket": a.bucket, "Key": key}, a.bucket, key,
                   ExtraArgs={"StorageClass": "GLACIER_IR", "MetadataDirective": "COPY"})
            c.put_object_tagging(Bucket=a.bucket, Key=key, Tagging={"TagSet": [{"Key": "converted", "Value": "true"}]})
            return "converted"
        finally:
            for p in (inp, out):
                if os.path.exists(p):
                    os.remove(p)
            os.rmdir(work)

    t = time.perf_counter()
    with ThreadPoolExecutor(a.concurrency) as pool:
        outcomes = list(pool.map(convert, keys))
    secs = time.perf_counter() - t
    print(json.dumps({"objects": len(keys), "seconds": secs, "objects_per_s": len(keys) / secs,
                      "converted": outcomes.count("converted"), "failed": outcomes.count("failed")}))


if __name__ == "__main__":
    main()
