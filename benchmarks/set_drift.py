"""How far distillation moved a set from its start: RMS of (set - start) over RMS of the start,
in normalised pixel units, one JSON line per set. The start is the same seed distilled with
``--iterations 0`` (the images the loop began from).

  synthset distill --dataset mhist --image-size 224 --model ConvNetD7 --method dm --ipc 10 \\
      --iterations 0 --batch-real 16 --out /tmp/start224
  python benchmarks/set_drift.py --start /tmp/start224 benchmarks/results/mhist224_study/*-ipc10
"""
import argparse
import json

from synthset.synthetic import SyntheticSet
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", required=True, help="run directory of the --iterations 0 set")
    ap.add_argument("sets", nargs="+", help="run directories of distilled sets from the same start")
    args = ap.parse_args()
    start = SyntheticSet.load(args.start)
    for path in args.sets:
        s = SyntheticSet.load(path)
        if s.images.shape != start.images.shape or not s.labels.equal(start.labels):
            raise SystemExit(f"{path}: images/labels do not match the start {args.start} "
                             f"({tuple(s.images.shape)} vs {tuple(start.images.shape)})")
        drift = (s.images - start.images).pow(2).mean().sqrt() / start.images.pow(2).mean().sqrt()
        print(json.dumps({**header(sys.argv), "set": path, "iterations": s.metadata.get("iterations"),
                          "relative_rms_drift": round(drift.item(), 5)}))


if __name__ == "__main__":
    main()
