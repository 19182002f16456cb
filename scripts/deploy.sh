#!/usr/bin/env bash
# Deploys template.yaml with the AWS CLI: uploads the two zips from scripts/build-lambda.sh to
# CODE_BUCKET under content-addressed keys, then `aws cloudformation deploy` with the parameters.
#
#   RECORDINGS_BUCKET=amazon-connect-0123 RECORDINGS_PREFIX=connect/acme/CallRecordings/ \
#   OPS_BUCKET=ops-bucket CODE_BUCKET=deploy-artifacts scripts/deploy.sh [stack-name] [Key=Value ...]
#
# Extra Key=Value pairs are template parameters (HandlerReservedConcurrency=50, KmsKeyArn=...,
# ScheduleExpression='cron(0 3 * * ? *)', WindowDays=1 ...). Needs the AWS CLI and credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:-call-recording-shrinker}
shift || true
: "${RECORDINGS_BUCKET:?set RECORDINGS_BUCKET}" "${RECORDINGS_PREFIX:?set RECORDINGS_PREFIX (ending in /)}"
: "${OPS_BUCKET:?set OPS_BUCKET (manifests and reports)}" "${CODE_BUCKET:?set CODE_BUCKET (the zips)}"
command -v aws >/dev/null || { echo "the AWS CLI is needed (pip install awscli)" >&2; exit 2; }
versioning=$(aws s3api get-bucket-versioning --bucket "$RECORDINGS_BUCKET" --query Status --output text)
if [ "$versioning" != Enabled ]; then
  echo "warning: versioning is not enabled on $RECORDINGS_BUCKET ($versioning): the handler will refuse to replace recordings in place" >&2
fi
keys=()
for bin in batch-handler manifest-builder; do
  zip="target/lambda/$bin/bootstrap.zip"
  [ -f "$zip" ] || { echo "$zip missing: run scripts/build-lambda.sh first" >&2; exit 2; }
  key="call-recording-shrinker/$bin-$(sha256sum "$zip" | cut -c1-16).zip"
  aws s3 cp --only-show-errors "$zip" "s3://$CODE_BUCKET/$key"
  keys+=("$key")
done
aws cloudformation deploy \
  --stack-name "$stack" \
  --template-file template.yaml \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides \
    "RecordingsBucket=$RECORDINGS_BUCKET" "RecordingsPrefix=$RECORDINGS_PREFIX" \
    "OpsBucket=$OPS_BUCKET" "CodeBucket=$CODE_BUCKET" \
    "HandlerCodeKey=${keys[0]}" "ManifestCodeKey=${keys[1]}" \
    "Architecture=${ARCH:-x86_64}" "$@"
aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].Outputs' --output table
