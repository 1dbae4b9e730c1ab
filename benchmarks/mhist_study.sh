#!/usr/bin/env bash
# MHIST study: random, herding, k-center, DM and DataDAM at IPC 1/10/50 at one
# resolution, ConvNet deep enough for it (64: ConvNetD4, 128: ConvNetD5, 224: ConvNetD7),
# each a run directory under benchmarks/results/mhist${RES}_study/; every step skips what is
# done (evaluate resumes per run). Accuracy, balanced accuracy and ROC-AUC land in eval.json.
#
#   RES=64 IPCS="10" bash benchmarks/mhist_study.sh dm datadam   # matching methods
#   RES=64 IPCS="1 10 50" bash benchmarks/mhist_study.sh coresets
#   RES=64 bash benchmarks/mhist_study.sh full report
#   RES=64 FULL=full-batch32 FULL_BATCH=32 FULL_EPOCHS=10 FULL_RUNS=3 bash benchmarks/mhist_study.sh full report
#
# Env: RES (64), IPCS ("1 10 50"), ITERS (DM/DataDAM iterations, 1000), RUNS (3),
# EPOCHS (evaluation epochs, 1000), FULL_EPOCHS (100), DEVICE (cpu | cuda), FEATURES (herding /
# k-center feature space: trained | random | pixels; default trained: a ConvNet trained 23
# epochs on MHIST, ~14 min on the 2-core CPU at 64 px, so the CPU study uses random), FACTOR
# (DM/DataDAM multi-formation factor, 1; a factor F > 1 writes to $stage-ipc$ipc-fF),
# BATCH_REAL (DM/DataDAM real images per class per iteration, 64), FULL (the full-data run
# directory under the study, also the report's reference; full), FULL_BATCH (its batch size;
# unset: the CLI's default, the protocol's 256), FULL_RUNS (1), BATCH_TEST (test images per
# forward; unset: the CLI's 512; 224 px with two workers on a 24 GiB machine: 64).
set -euo pipefail
RES=${RES:-64}
case $RES in 64) MODEL=ConvNetD4 ;; 128) MODEL=ConvNetD5 ;; 224) MODEL=ConvNetD7 ;; *) MODEL=${MODEL:?set MODEL} ;; esac
S=${STUDY:-benchmarks/results/mhist${RES}_study}
mkdir -p "$S" && python "$(dirname "$0")/header.py" bash "$0" "$@" >> "$S/headers.jsonl"  # what ran, where
IPCS=${IPCS:-1 10 50}
DATA=(--dataset mhist --image-size "$RES")
if [ "${DEVICE:-cpu}" = cpu ]; then
  EVAL=(--compile --workers 2 --device cpu); DEV=(--device cpu)
else
  EVAL=(--device "$DEVICE"); DEV=(--device "$DEVICE")
fi
EVAL+=(--models "$MODEL" --runs "${RUNS:-3}" --epochs "${EPOCHS:-1000}" ${BATCH_TEST:+--batch-test "$BATCH_TEST"})
FULL=${FULL:-full}
mkdir -p "$S"

distill() {
  local dir=$1; shift
  [ -f "$dir/synthetic.json" ] || synthset distill "${DATA[@]}" --model "$MODEL" --out "$dir" "${DEV[@]}" "$@"
}

for stage in "$@"; do
  case $stage in
    coresets)
      for ipc in $IPCS; do for m in random herding kcenter; do
        distill "$S/$m-ipc$ipc" --method $m --ipc "$ipc" --features "${FEATURES:-trained}"
        synthset evaluate "$S/$m-ipc$ipc" "${EVAL[@]}"
      done; done ;;
    dm|datadam)
      F=${FACTOR:-1}; SUF=$( [ "$F" = 1 ] || echo "-f$F" )
      for ipc in $IPCS; do
        distill "$S/$stage-ipc$ipc$SUF" --method "$stage" --ipc "$ipc" --iterations "${ITERS:-1000}" \
          --batch-real "${BATCH_REAL:-64}" --factor "$F" --compile --checkpoint-every 100 --resume
        synthset evaluate "$S/$stage-ipc$ipc$SUF" "${EVAL[@]}"
      done ;;
    full)  # resumes per run (eval_runs.jsonl); a run logged before train resumed has eval.json only
      [ -f "$S/$FULL/eval.json" ] && [ ! -f "$S/$FULL/eval_runs.jsonl" ] || synthset train "${DATA[@]}" \
        --model "$MODEL" --epochs "${FULL_EPOCHS:-100}" ${FULL_BATCH:+--batch "$FULL_BATCH"} \
        ${BATCH_TEST:+--batch-test "$BATCH_TEST"} --runs "${FULL_RUNS:-1}" --out "$S/$FULL" "${DEV[@]}" \
        $( [ "${DEVICE:-cpu}" = cpu ] && echo --compile --workers 2 ) ;;
    report)
      synthset report "$S"/*-ipc* $( [ -d "$S/$FULL" ] && echo "$S/$FULL" ) --out "$S/report" \
        --title "synthset MHIST ${RES}px study" ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
