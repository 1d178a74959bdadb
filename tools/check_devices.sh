#!/usr/bin/env bash
# Device discipline of the whole book without a GPU: executes the smoke book with
# tools/device_shadow on PYTHONPATH (every bootstrap statistic re-run on meta tensors,
# refusing meta/CPU mixes) and prints the findings. Exit 1 if a statistic mixes devices.
#
#   bash tools/check_devices.sh [chapter prefixes...]
set -eu
cd "$(dirname "$0")/.."
REPORT=$(mktemp /tmp/device-report.XXXXXX.jsonl)
export FREQLIB_DEVICE_REPORT=$REPORT PYTHONPATH=$PWD/tools/device_shadow${PYTHONPATH:+:$PYTHONPATH}
LOG=$(mktemp /tmp/device-check.XXXXXX.log)
python -m freqlib run "$@" --profile smoke --force > "$LOG" 2>&1 || { tail -20 "$LOG"; exit 2; }
python - "$REPORT" <<'PY'
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
kinds = collections.Counter(r["kind"] for r in rows)
print(f"bootstrap statistics checked: {kinds['ok']} ok, {kinds['MIXED']} mixing devices, "
      f"{kinds['unchecked']} not checkable on meta")
seen = set()
for r in rows:
    key = (r["kind"], r["statistic"], r["error"][:80])
    if r["kind"] != "ok" and key not in seen:
        seen.add(key)
        print(f"- {r['kind']}: {r['statistic']}: {r['error'][:160]}\n    " + "\n    ".join(r["where"]))
sys.exit(1 if kinds["MIXED"] else 0)
PY
