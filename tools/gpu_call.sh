#!/usr/bin/env bash
# One device call of the paper run (docs/gpu-session.md). Run on the GPU machine from the
# repository root, with .whl, .carry/data and .carry/run carried:
#
#   bash tools/gpu_call.sh [BUDGET_S] [--bench] [paper-run options...]
#
# 1. installs the wheelhouse into /tmp/site (offline, no dependency resolution);
# 2. points freqlib at the carried data; prints the GPU;
# 3. with --bench, first runs bench/bench_paper.py's airbench, adversarial, heat-map and mask sections
#    (about 3 minutes at full size; --bench-all adds ResNet-18 and CIFAR-10-C);
# 4. runs `python -m freqlib paper-run` until START + BUDGET_S (default 530 s);
# 5. packs .carry/run, bench/results.json and failed notebooks into $OUT (<= 8 files of 15 MiB),
#    also when paper-run was stopped by its timeout.
set -u
START=$(date +%s)
BUDGET=530
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then BUDGET=$1; shift; fi
BENCH=""
if [[ $# -gt 0 && $1 == --bench ]]; then BENCH="--only airbench adversarial heatmap masks --compile"; shift; fi
if [[ $# -gt 0 && $1 == --bench-all ]]; then BENCH="--compile"; shift; fi
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" .carry/run

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed: is .whl carried (make wheelhouse)?"; exit 3; }
# TQDM_DISABLE: progress bars would fill the 12,000 characters of output the reply shows
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FREQLIB_CALL_START=$START TQDM_DISABLE=1
export FREQLIB_CIFAR10_MIRROR=$PWD/.carry/data/cifar10-jpeg.npz
export FREQLIB_CIFAR10_SOURCE=mirror   # the device reaches nothing outside: no probe, the carried mirror
export FREQLIB_CIFAR10_LOSSLESS_HEAD=$PWD/.carry/data/cifar10-test-head-lossless.npz
export FREQLIB_FROST=$PWD/.carry/data/frost
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

DEADLINE=$((START + BUDGET))
LOG=.carry/run/log-$START.txt
if [[ -n $BENCH ]]; then
  timeout $((DEADLINE - $(date +%s) - 60)) python3 bench/bench_paper.py $BENCH --out bench/results.json 2>&1 | tee -a "$LOG"
fi
left=$((DEADLINE - $(date +%s)))
if (( left > 60 )); then
  timeout $((left + 15)) python3 -m freqlib paper-run --deadline "$DEADLINE" --out .carry/run "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
else
  echo "no time left for paper-run in this call"; rc=3
fi
python3 -m freqlib paper-run --out .carry/run --pack "$OUT" --extra bench/results.json _build/failed 2>&1 | tail -3
echo "paper-run exit code $rc (0 done, 3 chapters left, 1 a chapter failed, 124 timeout); $(( $(date +%s) - START )) s"
exit 0
