#!/usr/bin/env bash
# What a lent GPU machine is for, in one run of under 8 minutes, everything written under OUT:
#   1. build xmc with the CUDA kernels (XMC_CUDA=ON), in place;
#   2. every kernel test, the CUDA ones included (they run where torch sees a GPU and xmc._cuda is built);
#   3. the three kernel benchmarks (label-wise attention, GCN propagation, dynamic graph) on the device;
#   4. one training epoch of the EURLEX57K model on the GPU against the CPU (benchmarks/deep_epoch.py).
#
#   benchmarks/gpu_check.sh OUT                  # on the GPU machine: the device tool's $OUT
#   benchmarks/gpu_check.sh OUT --device cpu     # here: CPU only, small sizes (tests/test_gpu_check.py runs it)
#
# PYTHON picks the interpreter (default python3); XMC_DATA the folder holding eurlex57k/. Without the data
# the epoch runs on a generated corpus. Exits non-zero if any step failed; every step runs regardless.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_check.sh OUT [--device cuda|cpu]}
DEVICE=cuda
if [ "${2:-}" = "--device" ]; then DEVICE=${3:?--device needs cuda or cpu}; fi
case "$DEVICE" in cuda|cpu) ;; *) echo "--device: expected cuda or cpu, found $DEVICE" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
DATA=${XMC_DATA:-../shared/data}/eurlex57k
export PYTHONUNBUFFERED=1
failed=0

step() {  # step NAME COMMAND...: run, log to OUT/log with the time it took, remember a failure
  local name=$1; shift
  echo "== $name: $*" | tee -a "$OUT/log"
  local start=$SECONDS
  "$@" 2>&1 | tee -a "$OUT/log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/log"
  [ "$rc" -eq 0 ] || failed=1
}

if [ "$DEVICE" = cuda ]; then
  step "GPU" nvidia-smi
  step "build with CUDA" env XMC_CUDA=ON "$PY" setup.py -q build_ext --inplace
  THREADS=$(nproc)
  KERNEL_SIZES=()
  LABEL_ATTENTION_SIZES=()
  DEVICES=cuda,cpu
  if [ -f "$DATA/train.jsonl.gz" ]; then EPOCH=(--data "$DATA" --docs 12000 --valid-docs 2000); else EPOCH=(--quick); fi
else
  THREADS=2
  KERNEL_SIZES=(--labels 200 --dim 32 --batch 4 --repeats 1)
  LABEL_ATTENTION_SIZES=(--quick --repeats 1)
  DEVICES=cpu
  EPOCH=(--quick --ops fused)
fi

step "kernel tests" "$PY" -m pytest -q -p no:cacheprovider tests/test_ops_label_attention.py tests/test_ops_gcn.py \
  tests/test_ops_dynamic_graph.py -rs
step "label attention" "$PY" benchmarks/label_attention.py --device "$DEVICE" --threads "$THREADS" \
  "${LABEL_ATTENTION_SIZES[@]}" --results "$OUT"
step "GCN propagation" "$PY" benchmarks/gcn_propagate.py --device "$DEVICE" --threads "$THREADS" \
  "${KERNEL_SIZES[@]}" --results "$OUT"
step "dynamic graph" "$PY" benchmarks/dynamic_graph.py --device "$DEVICE" --threads "$THREADS" \
  "${KERNEL_SIZES[@]}" --results "$OUT"
step "one epoch" "$PY" benchmarks/deep_epoch.py --devices "$DEVICES" --threads "$THREADS" "${EPOCH[@]}" --out "$OUT"
echo "== gpu_check on $DEVICE: $([ $failed -eq 0 ] && echo 'every step passed' || echo 'a step FAILED'); files in $OUT" \
  | tee -a "$OUT/log"
exit $failed
