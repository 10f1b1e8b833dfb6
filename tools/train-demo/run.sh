#!/bin/sh
# Rebuild the swserve demo model from scratch and measure its super weight (about 60 minutes: training 41 on one free core, evaluate.py about 20).
#   sh tools/train-demo/run.sh [OUT_DIR]
set -e
cd "$(dirname "$0")/../.."
OUT="${1:-models/demo}"
nice -n 10 /usr/bin/python3 tools/train-demo/train.py --out "$OUT"
nice -n 10 /usr/bin/python3 tools/train-demo/evaluate.py "$OUT" --val
/usr/bin/python3 tools/train-demo/dump_ids.py "$OUT" /tmp/swserve-demo-py-ids.json
node tools/train-demo/check-tokenizer.mjs "$OUT" --ids /tmp/swserve-demo-py-ids.json
