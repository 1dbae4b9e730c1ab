#!/usr/bin/env bash
# The MNIST study behind `synthset report`: random, herding, k-center, DM and
# DataDAM sets, each a run directory under benchmarks/results/mnist_study/, evaluated with
# the protocol; every step skips what is already done (evaluate resumes per run).
#
#   bash benchmarks/mnist_study.sh ipc1        # all five methods at IPC 1, 5 runs x 1000 epochs
#   bash benchmarks/mnist_study.sh crossarch   # DM and DataDAM IPC 10 on 7 architectures
#   bash benchmarks/mnist_study.sh coresets10  # coresets at IPC 10
#   bash benchmarks/mnist_study.sh ipc50       # all five methods at IPC 50 (stated reduced budget)
#   bash benchmarks/mnist_study.sh full        # full-data ConvNet ($FULL_EPOCHS epochs, default 2)
#   bash benchmarks/mnist_study.sh report      # benchmarks/results/mnist_study/report/
# DEVICE=cuda runs it on a GPU (no worker processes).
#
# Settings for DM / DataDAM on this 2-core CPU: real batch 64, herding (pixel space) start,
# compiled real path; iterations below (the papers: 20,000 / 8,000). The IPC 10 DM and DataDAM
# sets are the 14-minute time-to-accuracy sets (benchmarks/results/{dm,datadam}_tta/t840s).
set -euo pipefail
S=${STUDY:-benchmarks/results/mnist_study}
mkdir -p "$S" && python "$(dirname "$0")/header.py" bash "$0" "$@" >> "$S/headers.jsonl"  # what ran, where
if [ "${DEVICE:-cpu}" = cpu ]; then
  EVAL=(--compile --workers 2 --device cpu); DEV=(--device cpu)
else  # DEVICE=cuda on a GPU machine
  EVAL=(--device "$DEVICE"); DEV=(--device "$DEVICE")
fi
FAST=(--batch-real 64 --init herding --features pixels --compile "${DEV[@]}")
mkdir -p "$S"

distill() {  # distill RUN_DIR ARGS...: skipped if the set exists
  local dir=$1; shift
  [ -f "$dir/synthetic.json" ] || synthset distill --out "$dir" "$@"
}

for stage in "$@"; do
  case $stage in
    ipc1)
      for m in random herding kcenter; do
        distill "$S/$m-ipc1" --method $m --ipc 1 "${DEV[@]}"
        synthset evaluate "$S/$m-ipc1" --runs 5 "${EVAL[@]}"
      done
      distill "$S/dm-ipc1" --method dm --ipc 1 --iterations 300 "${FAST[@]}"
      synthset evaluate "$S/dm-ipc1" --runs 5 "${EVAL[@]}"
      distill "$S/datadam-ipc1" --method datadam --ipc 1 --iterations 300 "${FAST[@]}"
      synthset evaluate "$S/datadam-ipc1" --runs 5 "${EVAL[@]}"
      ;;
    crossarch)
      # 200 epochs by default: 7 architectures x 2 runs x 2 sets at 1000 epochs are ~2.2 PFLOP,
      # ~7 h on the 2-core CPU (ResNet18 alone 273 TFLOP per run); XARCH_EPOCHS=1000 on a GPU.
      # Cheapest architectures first, both sets at each step, so a cut-short run leaves
      # complete columns.
      for m in dm datadam; do
        [ -d "$S/$m-ipc10" ] || cp -r "benchmarks/results/${m}_tta/t840s" "$S/$m-ipc10"
      done
      for group in MLP,LeNet,ConvNet,ConvNetBN VGG11,AlexNet ResNet18; do
        for m in dm datadam; do
          synthset evaluate "$S/$m-ipc10" --models $group --runs 2 --epochs "${XARCH_EPOCHS:-200}" "${EVAL[@]}"
        done
      done
      ;;
    coresets10)
      for m in random herding kcenter; do
        distill "$S/$m-ipc10" --method $m --ipc 10 "${DEV[@]}"
        synthset evaluate "$S/$m-ipc10" --runs 2 --epochs 300 "${EVAL[@]}"
      done
      ;;
    ipc50)
      # On the 2-core CPU one 1000-epoch run on 500 images is 144 TFLOP (~50 min), so the
      # defaults are IPC50_RUNS=2 x IPC50_EPOCHS=300 (as coresets10) and IPC50_ITERS=200
      # matching iterations for DM and DataDAM alike; on a GPU: IPC50_RUNS=5 IPC50_EPOCHS=1000.
      for m in random herding kcenter; do
        distill "$S/$m-ipc50" --method $m --ipc 50 "${DEV[@]}"
      done
      for m in dm datadam; do
        distill "$S/$m-ipc50" --method $m --ipc 50 --iterations "${IPC50_ITERS:-200}" "${FAST[@]}"
      done
      for m in dm datadam random herding kcenter; do
        synthset evaluate "$S/$m-ipc50" --runs "${IPC50_RUNS:-2}" --epochs "${IPC50_EPOCHS:-300}" "${EVAL[@]}"
      done
      ;;
    full)  # full-data reference: the protocol's ConvNet on all 60,000 images, stated epochs
      [ -f "$S/full/eval.json" ] || synthset train --dataset mnist --epochs "${FULL_EPOCHS:-2}" --runs 1 \
        --compile --out "$S/full" "${DEV[@]}"
      ;;
    report)
      synthset report "$S"/*-ipc* $( [ -d "$S/full" ] && echo "$S/full" ) --out "$S/report" \
        --title "synthset MNIST study"
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
