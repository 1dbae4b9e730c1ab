#!/usr/bin/env bash
# Feeds the CLI each bad input a user can give and records what a user sees.
#   bash benchmarks/bad_inputs.sh > benchmarks/results/bad_inputs.txt
set -u
python "$(dirname "$0")/header.py" bash "$0" "$@"  # the shared benchmark header, first line
SHARED=${SHARED:-../shared/data}
T=$(mktemp -d)
export SYNTHSET_CACHE=$T/cache
try() { echo "\$ $*"; "$@" > $T/log 2>&1; rc=$?; tail -n 3 $T/log; echo "(exit $rc)"; echo; }

mkdir -p $T/bad/MNIST/raw && cp $SHARED/MNIST/raw/*.gz $T/bad/MNIST/raw/
python - "$T/bad/MNIST/raw/t10k-labels-idx1-ubyte.gz" <<'PY'
import gzip, sys; p = sys.argv[1]; d = bytearray(gzip.decompress(open(p, 'rb').read())); d[100] ^= 1
open(p, 'wb').write(gzip.compress(bytes(d)))
PY
echo "## wrong checksum (one label byte flipped in t10k-labels)"; try synthset distill --data-root $T/bad --out $T/o
mkdir -p $T/trunc/MNIST/raw && cp $SHARED/MNIST/raw/*.gz $T/trunc/MNIST/raw/
head -c 100000 $SHARED/MNIST/raw/train-images-idx3-ubyte.gz > $T/trunc/MNIST/raw/train-images-idx3-ubyte.gz
echo "## truncated file"; try synthset distill --data-root $T/trunc --out $T/o

mkdir -p $T/mh/mhist/images && cp $SHARED/mhist/annotations.csv $T/mh/mhist/
for f in $SHARED/mhist/images/*; do ln -s "$(realpath $f)" $T/mh/mhist/images/; done
rm $T/mh/mhist/images/MHIST_abc.webp
echo "## missing MHIST image"; try synthset distill --dataset mhist --image-size 32 --data-root $T/mh --out $T/o
cp -r $T/mh $T/mh2 && sed -i 's/^MHIST_aab.png,HP,0,train/MHIST_aab.png,HP,zero,train/' $T/mh2/mhist/annotations.csv
echo "## malformed annotations row (checksum first, then with --no-verify)"
try synthset distill --dataset mhist --image-size 32 --data-root $T/mh2 --out $T/o
try synthset distill --dataset mhist --image-size 32 --data-root $T/mh2 --no-verify --out $T/o

echo "## unknown method / model / dataset"
try synthset distill --method dm2 --data-root $SHARED --out $T/o
try synthset train --model ResNet50 --data-root $SHARED
try synthset distill --dataset cifar10 --out $T/o
echo "## IPC larger than a class"; try synthset distill --dataset mhist --image-size 32 --ipc 1000 --data-root $SHARED --out $T/o
echo "## --device cuda without a GPU"; try synthset distill --device cuda --data-root $SHARED --out $T/o
echo "## evaluate a folder that is not a run"; try synthset evaluate $T
rm -rf $T
