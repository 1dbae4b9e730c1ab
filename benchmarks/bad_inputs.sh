#!/usr/bin/env bash
# Feeds the CLI each bad input a user can give and records what a user sees.
#   bash benchmarks/bad_inputs.sh > benchmarks/results/bad_inputs.txt
set -u
python "$(dirname "$0")/header.py" bash "$0" "$@"  # the shared benchmark header, first line
SHARED=${SHARED:-../shared/data}
T=$(mktemp -d)
export SYNTHSET_CACHE=$T/cache
try() { echo "\$ $*"; "$@" > $T/log 2>&1; rc=$?; grep -m 3 "^warning:" $T/log; tail -n 3 $T/log; echo "(exit $rc)"; echo; }

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
try synthset distill --dataset cifar11 --out $T/o
echo "## a dataset to download with no network"; try synthset distill --dataset cifar10 --data-root $T/net --out $T/o
mkdir -p $T/pk/cifar10 && python - "$T/pk/cifar10/cifar-10-python.tar.gz" <<'PY'
import io, pickle, sys, tarfile
blob = pickle.dumps({"data": 0})
with tarfile.open(sys.argv[1], "w:gz") as tar:
    ti = tarfile.TarInfo("cifar-10-batches-py/data_batch_1"); ti.size = len(blob); tar.addfile(ti, io.BytesIO(blob))
PY
echo "## CIFAR-10's Python (pickle) archive where the binary one belongs"
try synthset distill --dataset cifar10 --data-root $T/pk --no-download --out $T/o
echo "## a write past a file-size limit (ulimit -f 16: 16 KiB)"
try bash -c "ulimit -f 16; exec synthset distill --data-root $SHARED --iterations 3 --checkpoint-every 1 --out $T/fsize"
echo "## IPC larger than a class"; try synthset distill --dataset mhist --image-size 32 --ipc 1000 --data-root $SHARED --out $T/o
echo "## --device cuda without a GPU"; try synthset distill --device cuda --data-root $SHARED --out $T/o
echo "## evaluate a folder that is not a run"; try synthset evaluate $T
echo "## --resume where there is nothing to resume"; try synthset distill --resume --data-root $SHARED --out $T/none
python - "$T" <<'PY'
import sys, torch
from pathlib import Path
t = Path(sys.argv[1])
torch.save({"data": [[torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)]]}, t / "empty.pt")
x = (torch.rand(30, 1, 28, 28) - 0.1307) / 0.3081  # normalised noise, classes 0..2 only
torch.save({"data": [[x, torch.arange(3).repeat_interleave(10)]]}, t / "three.pt")
for d in ("layout1/train/cat", "layout1/train/dog", "layout2/cat", "layout3/cat/a", "layout3/dog/b"):
    (t / d).mkdir(parents=True)
    from PIL import Image; Image.new("L", (8, 8)).save(t / d / "0.png")
PY
echo "## an official .pt holding zero images"; try synthset evaluate $T/empty.pt --dataset mnist --data-root $SHARED
echo "## a set holding 3 of the 10 classes"; try synthset evaluate $T/three.pt --dataset mnist --data-root $SHARED --runs 1 --epochs 1
echo "## image folders laid out wrong: train/ without test/, one class, nested class folders"
for l in layout1 layout2 layout3; do try synthset distill --dataset folder --data-path $T/$l --out $T/o; done
rm -rf $T
