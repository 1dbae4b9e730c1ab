#!/usr/bin/env bash
# Throughput of `synthset evaluate --workers` on CPU: the same 2 runs (IPC 10, 100 epochs,
# --compile) with 1 worker (2 threads) and 2 workers (1 thread each). Writes JSON.
#   bash benchmarks/eval_workers.sh benchmarks/results/eval_workers_cpu.json
set -euo pipefail
OUT=${1:-benchmarks/results/eval_workers_cpu.json}
T=$(mktemp -d)
synthset distill --method random --ipc 10 --out $T/set > /dev/null
head=$(python "$(dirname "$0")/header.py" bash benchmarks/eval_workers.sh "$@")
res="${head%\}}"
for w in 1 2; do
  cp -r $T/set $T/w$w
  s=$(date +%s.%N)
  synthset evaluate $T/w$w --runs 2 --epochs 100 --compile --workers $w > /dev/null 2>&1
  e=$(date +%s.%N)
  acc=$(python -c "import json;print(json.load(open('$T/w$w/eval.json'))['models']['ConvNet']['runs'])")
  res="$res, \"workers_$w\": {\"wall_s\": $(python -c "print(round($e-$s,1))"), \"runs\": $acc}"
  echo "workers=$w: $(python -c "print(round($e-$s,1))") s, runs $acc"
done
echo "$res}" > $OUT
rm -rf $T
