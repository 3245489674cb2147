#!/usr/bin/env bash
# LocalStack runs this once it is ready (an init hook, ready.d): it creates
# the Kinesis stream the app writes to, as `cargo xtask dev` does on moto.
# KINESIS_STREAM and KINESIS_SHARDS come from docker-compose.yml.
set -euo pipefail

stream="${KINESIS_STREAM:?}"
shards="${KINESIS_SHARDS:?}"
if awslocal kinesis describe-stream-summary --stream-name "$stream" >/dev/null 2>&1; then
  echo "kinesis stream $stream already exists"
else
  awslocal kinesis create-stream --stream-name "$stream" --shard-count "$shards"
fi
awslocal kinesis wait stream-exists --stream-name "$stream"
echo "kinesis stream $stream is active ($shards shards)"
