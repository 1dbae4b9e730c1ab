"""Wall-clock of `synthset audit` (memorisation, pixel and feature space) on one set: first
with an empty cache (the feature network is trained, then cached), then with that cache.

    python benchmarks/audit_speed.py benchmarks/results/accuracy/test/mnist-ipc10 \
        --out benchmarks/results/audit/speed_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthset.provenance import machine


def timed_audit(run: Path, cache: Path) -> tuple[float, str]:
    env = {**os.environ, "SYNTHSET_CACHE": str(cache)}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "synthset", "audit", str(run)], env=env,
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return time.perf_counter() - t0, res.stdout + res.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run directory holding a set")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        copy, cache = Path(d) / "run", Path(d) / "cache"
        copy.mkdir()
        for name in ("synthetic.json", "synthetic.safetensors", "config.json"):
            shutil.copy(Path(args.run) / name, copy / name)
        cold, log = timed_audit(copy, cache)
        trained = [ln for ln in log.replace("\r", "\n").splitlines() if "feature net: 100%" in ln]
        warm, _ = timed_audit(copy, cache)
    out = {"command": " ".join(["python", *sys.argv]), "machine": machine(), "set": args.run,
           "seconds_empty_cache": round(cold, 1), "seconds_cached_feature_net": round(warm, 1),
           "feature_net_training": trained[-1].strip() if trained else None}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
