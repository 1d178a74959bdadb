#!/usr/bin/env bash
# One device call of the paper run (docs/gpu-session.md). Run on the GPU machine from the
# repository root, with .whl, .carry/data and .carry/run carried:
#
#   bash tools/gpu_call.sh [BUDGET_S] [--bench] [paper-run options...]
#
# 1. installs the wheelhouse into /tmp/site (offline, no dependency resolution);
# 2. points freqlib at the carried data; prints the GPU;
# 3. with --bench (anywhere in the options), first runs bench/bench_paper.py's airbench, heat-map,
#    mask and adversarial sections (3 to 5 minutes at full size, at most BENCH_MAX; --bench-all adds
#    ResNet-18 and CIFAR-10-C);
# 4. runs `python -m freqlib paper-run --device cuda` until START + BUDGET_S (default 530 s);
# 5. packs .carry/run, bench/results.json and failed notebooks into $OUT (<= 8 files of 15 MiB),
#    also when paper-run was stopped by its timeout (the pack itself is bounded at 45 s).
set -u
START=$(date +%s)
BUDGET=530
BENCH_MAX=330     # the bench stops here at the latest, so paper-run keeps most of call 1
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then BUDGET=$1; shift; fi
BENCH=""
REST=()
for arg in "$@"; do   # --bench / --bench-all anywhere; everything else goes to paper-run
  case $arg in
    --bench) BENCH="--only airbench heatmap masks adversarial --compile" ;;
    --bench-all) BENCH="--compile" ;;
    *) REST+=("$arg") ;;
  esac
done
set -- ${REST[@]+"${REST[@]}"}
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
# versions the CPU machine did not test with: a new warning on a page's stderr fails the site check
python3 - <<'PY' || true
from importlib import metadata
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"
names = ("numpy", "pandas", "matplotlib", "seaborn", "scipy", "tqdm", "papermill", "myst-nb", "torchattacks")
print("packages:", ", ".join(f"{n} {version(n)}" for n in names))
PY

DEADLINE=$((START + BUDGET))
LOG=.carry/run/log-$START.txt
bench_s=$(( DEADLINE - $(date +%s) - 60 ))
(( bench_s > BENCH_MAX )) && bench_s=$BENCH_MAX
if [[ -n $BENCH ]] && (( bench_s > 0 )); then   # timeout 0 would mean no limit
  timeout $bench_s python3 bench/bench_paper.py $BENCH --device cuda --out bench/results.json 2>&1 | tee -a "$LOG"
fi
left=$((DEADLINE - $(date +%s)))
if (( left > 60 )); then
  # --device cuda: without a visible GPU paper-run stops at once instead of running on the CPU
  timeout $((left + 15)) python3 -m freqlib paper-run --device cuda --deadline "$DEADLINE" --out .carry/run "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
else
  echo "no time left for paper-run in this call"; rc=3
fi
timeout 45 python3 -m freqlib paper-run --out .carry/run --pack "$OUT" --extra bench/results.json _build/failed 2>&1 | tail -3
echo "paper-run exit code $rc (0 done, 3 chapters left, 1 a chapter failed, 124 timeout); $(( $(date +%s) - START )) s"
exit 0
