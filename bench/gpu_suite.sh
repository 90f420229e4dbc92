#!/usr/bin/env bash
# Every GPU claim of lway-engine measured in one command, for a lent GPU machine (at most ~9 minutes):
#
#     bench/gpu_suite.sh [OUT]             # on the GPU machine (the device tool sets $OUT); carry .gpu-suite
#                                          # (make gpu-carry), with bench/training's resume files moved aside
#     bench/gpu_suite.sh --dry-run [OUT]   # here, on the CPU: the same steps at tiny sizes, CUDA-only parts skip
#
# (python -P: the repository root must not shadow the installed package, whose lway_engine.kernels and _C exist.)
#
# Steps, each under its own time cap so that one slow step cannot eat the others' time (a capped step is recorded
# as timed out, and the suite goes on): install (GPU only: the project against the machine's torch, CUDA kernels
# for this GPU only, plus carried wheels), the CUDA tests, bench/kernels.py, bench/reconstructor.py,
# bench/adapt_speed.py, bench/deploy.py, bench/quality.py (City100 only, when its data is present). Every bench
# JSON lands in OUT (LWAY_BENCH_RESULTS), with each step's log; bench/gpu_summary.py then writes OUT/summary.json
# and OUT/summary.md (device, versions, every figure, every test result).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
OUT=${1:-${OUT:-outputs/gpu_suite}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export LWAY_BENCH_RESULTS=$OUT LWAY_OFFLINE=1
: > "$OUT/steps.tsv"

if (( DRY )); then
    PY=${PYTHON:-.venv/bin/python}
    DEVICE=cpu
else
    PY=${PYTHON:-python3}
    DEVICE=cuda
fi

step() {  # step NAME CAP_SECONDS COMMAND...: run with a time cap, log to OUT/NAME.log, record rc and seconds
    local name=$1 cap=$2; shift 2
    local started=$SECONDS
    echo "== $name (cap ${cap}s): $*"
    timeout --kill-after=10 "$cap" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    printf '%s\t%d\t%d\t%s\n' "$name" "$rc" $((SECONDS - started)) "$*" >> "$OUT/steps.tsv"
    echo "   rc=$rc in $((SECONDS - started)) s"
}

if (( ! DRY )); then
    # The machine's torch, CUDA kernels for this GPU only (fast build); wheels, weights and City100 pairs 031-040
    # carried in .gpu-suite (make gpu-carry here; the device call names it in `carry`).
    CARRY=${LWAY_GPU_CARRY:-.gpu-suite}
    export LWAY_HOME=${LWAY_HOME:-$PWD/$CARRY/lway-home} LWAY_DATA=${LWAY_DATA:-$PWD/$CARRY/data}
    step install 240 bash -c "CMAKE_ARGS='-DCMAKE_CUDA_ARCHITECTURES=native' $PY -m pip install --no-deps \
        --no-build-isolation --no-index $CARRY/wheels/*.whl . && $PY -P -c 'import lway_engine._C' \
        && $PY bench/gpu_carry.py unpack --home '$LWAY_HOME'"
fi

# The dry run leaves out the CPU compile tests: `make test` runs them, and they take minutes on 2 cores.
SELECT=$( (( DRY )) && echo "cuda or self_check" || echo "cuda or compile or self_check")
step tests 150 "$PY" -P -m pytest -q -rs -p no:cacheprovider --junitxml="$OUT/tests.xml" \
    tests/test_kernels.py tests/test_fused_conv.py tests/test_adaptation.py -k "$SELECT"
step kernels 60 "$PY" bench/kernels.py $( (( DRY )) && echo --runs 2)
if (( DRY )); then
    step reconstructor 120 "$PY" bench/reconstructor.py --device cpu --rounds 1
    step adapt_speed 240 "$PY" bench/adapt_speed.py --device cpu --profile cpu --models rrdb-small --breakdown \
        --repeats 1
    step deploy 240 "$PY" bench/deploy.py --device cpu --sizes 32 --repeats 1 --no-compile --base-only
    QUALITY=(--quick --no-select --iterations 2 --limit 1)
else
    step reconstructor 60 "$PY" bench/reconstructor.py --device cuda --step
    step adapt_speed 200 "$PY" bench/adapt_speed.py --device cuda --profile gpu
    step deploy 90 "$PY" bench/deploy.py --device cuda --quick --sizes 128 256 --base-only
    QUALITY=(--full --limit 10)
fi
if [[ -d "${LWAY_DATA:-../shared/data}/City100_NikonD5500_crop768" ]]; then
    step quality 150 "$PY" bench/quality.py "${QUALITY[@]}" --device "$DEVICE" --only city100
else
    printf 'quality\t-1\t0\tskipped: no City100 data\n' >> "$OUT/steps.tsv"
fi
"$PY" bench/gpu_summary.py "$OUT"
