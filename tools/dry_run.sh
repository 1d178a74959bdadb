#!/usr/bin/env bash
# Rehearse the GPU session on this machine: the same paper-run calls, packs and unpacks, at the
# smoke profile on the CPU, each call on a wiped "machine" (a fresh FREQLIB_DATA; the decoded
# CIFAR-10 cache is shared to save its decoding).
#
#   bash tools/dry_run.sh WORKDIR [BUDGET_S=240] [MAX_CALLS=6] [paper-run options...]
#   PAPER=1 bash tools/dry_run.sh ...   # the paper profile's code paths at smoke sizes
#                                       # (FREQLIB_PAPER_DRY=1: airbench/ResNet-18, paper's model
#                                       # lists, branches and 3 seeds; tiny widths, 512 images, 1 epoch)
#
# Leaves WORKDIR/run (the carried folder), WORKDIR/results (executed notebooks), WORKDIR/out-N
# (what each call brought back) and WORKDIR/log.txt.
set -u
WORK=${1:?usage: tools/dry_run.sh WORKDIR [BUDGET_S] [MAX_CALLS]}; shift
BUDGET=${1:-240}; [[ $# -gt 0 ]] && shift
CALLS=${1:-6}; [[ $# -gt 0 ]] && shift
PY=${PY:-python}
PROFILE=smoke
if [[ ${PAPER:-0} == 1 ]]; then PROFILE=paper; export FREQLIB_PAPER_DRY=1; fi
CACHE=${FREQLIB_DATA:-$PWD/data}/cache
mkdir -p "$WORK/run"
echo "$PROFILE dry run: budget $BUDGET s per call, at most $CALLS calls" | tee -a "$WORK/log.txt"
for i in $(seq 1 "$CALLS"); do
  machine="$WORK/machine-$i"; mkdir -p "$machine"; [[ -d $CACHE ]] && ln -sfn "$CACHE" "$machine/cache"
  start=$(date +%s)
  FREQLIB_DATA=$machine FREQLIB_CALL_START=$start TQDM_DISABLE=1 \
    timeout $((BUDGET + 60)) $PY -m freqlib paper-run --profile $PROFILE --device cpu --budget-s "$BUDGET" \
    --out "$WORK/run" "$@" >> "$WORK/log.txt" 2>&1
  rc=$?
  FREQLIB_DATA=$machine $PY -m freqlib paper-run --out "$WORK/run" --pack "$WORK/out-$i" --extra >> "$WORK/log.txt" 2>&1
  $PY -m freqlib paper-run --unpack "$WORK/out-$i" --out "$WORK/run" --results "$WORK/results" \
    --bench "$WORK/bench.json" >> "$WORK/log.txt" 2>&1
  echo "call $i: exit $rc after $(( $(date +%s) - start )) s; brought back: $(ls "$WORK/out-$i" | tr '\n' ' ')" \
    | tee -a "$WORK/log.txt"
  rm -rf "$machine"
  [[ $rc == 0 || $rc == 1 && $(grep -c pending "$WORK/run/status.md") == 0 ]] && break
  now=$(grep -v "s left" "$WORK/run/status.md" | md5sum)
  [[ ${last:-} == "$now" ]] && { echo "no progress in the last call: stopping" | tee -a "$WORK/log.txt"; break; }
  last=$now
done
cat "$WORK/run/status.md"
