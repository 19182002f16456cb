"""boto3 against `manifest-builder serve --embedded-s3`, configured only by the environment that
`serve` prints (the README's recipe): no endpoint code, no event hooks. Run by
tests/e2e/stock_clients.rs; exits non-zero with the first failed check."""

import gzip
import hashlib
import io
import json
import os
import struct
import sys
import time

import boto3
from botocore.exceptions import ClientError

ACCOUNT = os.environ["ACCOUNT_ID"]
FUNCTION = "arn:aws:lambda:us-east-1:000000000000:function:batch-handler"
ROLE = "arn:aws:iam::000000000000:role/batch-operations-local"
BUCKET = "stock-clients"

s3 = boto3.client("s3")
control = boto3.client("s3control")


def wav(seconds=1.0):
    """PCM s16le 8 kHz stereo, as Connect writes it."""
    frames = int(8000 * seconds)
    data = b"".join(struct.pack("<hh", (i * 37) % 2000 - 1000, (i * 53) % 3000 - 1500) for i in range(frames))
    fmt = struct.pack("<HHIIHH", 1, 2, 8000, 8000 * 4, 4, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def put(key, body, content_type="application/octet-stream"):
    return s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)["ETag"]


def job(manifest=None, generator=None, tags=None, confirm=False, token=None, operation=None):
    args = dict(
        AccountId=ACCOUNT,
        ConfirmationRequired=confirm,
        # The embedded S3 is unversioned: the handler writes beside the originals there.
        Operation=operation or {"LambdaInvoke": {"FunctionArn": FUNCTION, "InvocationSchemaVersion": "2.0",
                                                 "UserArguments": {"destPrefix": "converted/"}}},
        Report={"Bucket": f"arn:aws:s3:::{BUCKET}", "Format": "Report_CSV_20180820", "Enabled": True,
                "Prefix": "reports", "ReportScope": "AllTasks"},
        Priority=10,
        RoleArn=ROLE,
        ClientRequestToken=token or os.urandom(8).hex(),
    )
    if manifest:
        args["Manifest"] = manifest
    if generator:
        args["ManifestGenerator"] = generator
    if tags is not None:
        args["Tags"] = tags
    return control.create_job(**args)["JobId"]


def csv_manifest(key, etag, fields=("Bucket", "Key")):
    return {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": list(fields)},
            "Location": {"ObjectArn": f"arn:aws:s3:::{BUCKET}/{key}", "ETag": etag}}


def until(job_id, statuses, timeout=120):
    started = time.time()
    while True:
        j = control.describe_job(AccountId=ACCOUNT, JobId=job_id)["Job"]
        if j["Status"] in statuses:
            return j
        assert time.time() - started < timeout, f"job {job_id} stuck in {j['Status']}"
        time.sleep(0.2)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


s3.create_bucket(Bucket=BUCKET)
recordings = [f"calls/2024/01/0{i}/c{i}_20240101T03:07_UTC.wav" for i in range(1, 4)]
for k in recordings:
    put(k, wav(), "audio/wav")
listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="calls/")["Contents"]
check(len(listed) == 3 and all(o.get("ETag", "").strip('"') for o in listed), f"listing has ETags: {listed}")

# CSV manifest, pinned by the ETag boto3 returns (quoted), with tags, waiting for confirmation.
rows = "".join(f"{BUCKET},{k.replace(':', '%3A')}\n" for k in recordings)
etag = put("manifests/m.csv", rows.encode(), "text/csv")
check(etag.startswith('"'), "boto3 returns a quoted ETag")
csv_job = job(csv_manifest("manifests/m.csv", etag), tags=[{"Key": "team", "Value": "contact-center"}], confirm=True)
until(csv_job, {"Suspended"})
check(control.get_job_tagging(AccountId=ACCOUNT, JobId=csv_job)["Tags"] == [{"Key": "team", "Value": "contact-center"}],
      "CreateJob's tags are kept")
control.put_job_tagging(AccountId=ACCOUNT, JobId=csv_job, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}])
check(control.get_job_tagging(AccountId=ACCOUNT, JobId=csv_job)["Tags"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}],
      "PutJobTagging replaces them")
try:
    control.put_job_tagging(AccountId=ACCOUNT, JobId=csv_job, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    check(False, "51 tags refused")
except ClientError as e:
    check(e.response["Error"]["Code"] == "TooManyTagsException", f"51 tags: {e.response['Error']}")
try:
    control.put_job_tagging(AccountId=ACCOUNT, JobId=csv_job, Tags=[{"Key": "k" * 129, "Value": "v"}])
    check(False, "a 129-character key refused")
except ClientError as e:
    check(e.response["Error"]["Code"] == "InvalidTag", f"long key: {e.response['Error']}")
control.delete_job_tagging(AccountId=ACCOUNT, JobId=csv_job)
check(control.get_job_tagging(AccountId=ACCOUNT, JobId=csv_job)["Tags"] == [], "DeleteJobTagging removes them")
control.update_job_priority(AccountId=ACCOUNT, JobId=csv_job, Priority=42)
check(control.describe_job(AccountId=ACCOUNT, JobId=csv_job)["Job"]["Priority"] == 42, "priority updated")
control.update_job_status(AccountId=ACCOUNT, JobId=csv_job, RequestedJobStatus="Ready")
done = until(csv_job, {"Complete", "Failed"})
check(done["Status"] == "Complete" and done["ProgressSummary"]["NumberOfTasksSucceeded"] == 3, f"CSV job: {done}")

# The service's manifest generator, and an S3 Inventory report.
gen_job = job(generator={"S3JobManifestGenerator": {
    "SourceBucket": f"arn:aws:s3:::{BUCKET}", "EnableManifestOutput": False,
    "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": ["calls/"], "MatchAnySuffix": [".wav"]}}}})
g = until(gen_job, {"Complete", "Failed"})
check(g["Status"] == "Complete" and g["ProgressSummary"]["TotalNumberOfTasks"] == 3, f"generator job: {g}")
data = gzip.compress("".join(f'"{BUCKET}","{k.replace(":", "%3A")}"\n' for k in recordings).encode())
put("inventory/data/1.csv.gz", data)
inv = {"sourceBucket": BUCKET, "destinationBucket": f"arn:aws:s3:::{BUCKET}", "version": "2016-11-30",
       "creationTimestamp": "1706403600000", "fileFormat": "CSV", "fileSchema": "Bucket, Key",
       "files": [{"key": "inventory/data/1.csv.gz", "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}]}
inv_etag = put("inventory/manifest.json", json.dumps(inv).encode(), "application/json")
inv_job = job({"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
               "Location": {"ObjectArn": f"arn:aws:s3:::{BUCKET}/inventory/manifest.json", "ETag": inv_etag}})
i = until(inv_job, {"Complete", "Failed"})
check(i["Status"] == "Complete" and i["ProgressSummary"]["TotalNumberOfTasks"] == 3, f"inventory job: {i}")

# Manifest problems: the job is created, then Failed with the reason (as on AWS).
bad_inv = dict(inv, files=[dict(inv["files"][0], MD5checksum="0" * 32)])
bad_inv_etag = put("inventory/bad.json", json.dumps(bad_inv).encode())
put("manifests/bad-row.csv", b"a,b,c,d,e\n")
for name, manifest, code in [
    ("wrong ETag", csv_manifest("manifests/m.csv", '"0123456789abcdef0123456789abcdef"'), "ManifestETagMismatch"),
    ("missing manifest", csv_manifest("manifests/none.csv", "0123456789abcdef0123456789abcdef"), "ManifestNotFound"),
    ("malformed row", csv_manifest("manifests/bad-row.csv", s3.head_object(Bucket=BUCKET, Key="manifests/bad-row.csv")["ETag"]), "ManifestMalformed"),
    ("inventory MD5", {"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
                       "Location": {"ObjectArn": f"arn:aws:s3:::{BUCKET}/inventory/bad.json", "ETag": bad_inv_etag}}, "ManifestChecksumMismatch"),
]:
    failed = until(job(manifest), {"Failed", "Complete"})
    reasons = failed.get("FailureReasons", [])
    check(failed["Status"] == "Failed" and reasons and reasons[0]["FailureCode"] == code, f"{name}: {failed}")

# Listing: status filter and pagination.
complete = control.list_jobs(AccountId=ACCOUNT, JobStatuses=["Complete"])["Jobs"]
check({csv_job, gen_job, inv_job} <= {j["JobId"] for j in complete}, f"Complete jobs: {complete}")
check(all(j["Status"] == "Complete" for j in complete), "the filter holds")
pages, token = [], None
while True:
    page = control.list_jobs(AccountId=ACCOUNT, MaxResults=2, **({"NextToken": token} if token else {}))
    pages.append(page["Jobs"])
    token = page.get("NextToken")
    if not token:
        break
check(all(len(p) <= 2 for p in pages) and sum(len(p) for p in pages) == 7, f"pages: {[len(p) for p in pages]}")

# Errors: the codes AWS uses, the RequestId of the response.
try:
    control.describe_job(AccountId=ACCOUNT, JobId="00000000-0000-0000-0000-000000000000")
    check(False, "unknown job refused")
except ClientError as e:
    meta = e.response["ResponseMetadata"]
    check(e.response["Error"]["Code"] == "NotFoundException", f"unknown job: {e.response['Error']}")
    check(meta["RequestId"] == meta["HTTPHeaders"]["x-amz-request-id"], f"RequestId: {meta}")
try:
    job(csv_manifest("manifests/m.csv", etag),
        operation={"S3PutObjectTagging": {"TagSet": [{"Key": "a", "Value": "b"}]}})
    check(False, "another operation refused")
except ClientError as e:
    message = e.response["Error"]["Message"]
    check("S3PutObjectTagging is not supported by the local engine; only LambdaInvoke" in message, message)
print(json.dumps({"csv": csv_job, "generator": gen_job, "inventory": inv_job}))
