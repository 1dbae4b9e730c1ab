"""No-grad ConvNet embedding of a DM real batch (10 classes x 256 MNIST images) per
backend variant: the cost that dominates a DM iteration. Each variant runs in its own
process (the backend flags are process-wide); writes JSON.

  python benchmarks/embed_speed.py --out benchmarks/results/embed_speed_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys

from child import run_child

CHILD = r"""
import json, os, sys, time, torch
mkldnn, compile_, chunk, layout = json.loads(sys.argv[1])
torch.backends.mkldnn.enabled = mkldnn
import torch._inductor.config as ic
ic.layout_optimization = layout
from synthset.models import build_model
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402
net = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(0))
for p in net.parameters():
    p.requires_grad_(False)
f = torch.compile(net.embed) if compile_ else net.embed
x = torch.randn(2560, 1, 28, 28)
with torch.no_grad():
    run = lambda: [f(x[i:i + chunk]) for i in range(0, 2560, chunk)]
    t0 = time.perf_counter(); run(); warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(3):
        run()
    print(json.dumps({"s_per_2560": (time.perf_counter() - t0) / 3, "warmup_s": warm}))
"""

VARIANTS = [  # (mkldnn, compile, chunk, inductor layout optimisation)
    (True, False, 256, True), (False, False, 256, True), (False, False, 1280, True),
    (True, True, 256, True), (False, True, 256, False), (False, True, 640, False),
    (False, True, 1280, False), (False, True, 2560, False),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    res = {**header(sys.argv), "flops_per_2560": 2560 * 96.8e6, "variants": []}
    for v in VARIANTS:
        rec = {"mkldnn": v[0], "compile": v[1], "chunk": v[2], "layout_optimization": v[3]}
        rec.update(run_child(CHILD, v))
        res["variants"].append(rec)
        print(rec, flush=True)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
