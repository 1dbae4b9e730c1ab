"""Time the parts of one matching iteration (fresh network, DSA draw, no-grad real class
means, synthetic forward + backward + image step) for DM and DataDAM on MNIST-shaped data,
per variant of the synthetic path: eager or ``CompiledSynLoss``, each with oneDNN
convolutions on or off (``-noonednn``: forward and backward). Each variant runs in its own process (backend flags are process-wide); writes JSON.

  python benchmarks/syn_speed.py --out benchmarks/results/syn_speed_cpu.json --ipc 10 50
"""
from __future__ import annotations

import argparse
import json
import sys

from child import run_child

CHILD = r"""
import contextlib, json, sys, time, torch
method_name, ipc, n_real, variant, iters = json.loads(sys.argv[1])
import sys as _sys; _sys.path.insert(0, __import__('os').path.dirname(__file__))  # legacy_api
from legacy_api import DistillConfig, MatchConfig
from synthset import augment

from synthset.device import onednn_off
from synthset.methods import METHODS
from synthset.engine.fast import CompiledEmbed, CompiledSynLoss
from synthset.methods.matching import class_means
from synthset.models import build_model
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
classes, size = 10, (28, 28)
cfg = DistillConfig(method=method_name, ipc=ipc, match=MatchConfig(batch_real=n_real, compile=True))
method = METHODS.get(method_name)
opts = method.options(cfg.options)
template = build_model("ConvNet", 1, classes, size)
embed_real = CompiledEmbed(template, torch.device("cpu"), features=lambda n, x: method.features(n, x, opts))
syn_fn = None if variant == "eager" else CompiledSynLoss(
    template, lambda n, x: method.features(n, x, opts),
    lambda feats, means: method.match(means, tuple(class_means(f.float(), classes) for f in feats), opts))
bwd_ctx = onednn_off if variant in ("compile-noonednn", "eager-noonednn") else contextlib.nullcontext
images = torch.randn(classes * ipc, 1, *size, requires_grad=True)
opt = torch.optim.SGD([images], lr=1.0, momentum=0.5)
pool = torch.randn(classes * n_real, 1, *size)
parts = {"net": [], "real": [], "syn": [], "total": []}
for it in range(iters):
    t0 = time.perf_counter()
    net = build_model("ConvNet", 1, classes, size, generator=g); net.train()
    for p in net.parameters():
        p.requires_grad_(False)
    params = augment.sample(cfg.engine.dsa, classes, max(n_real, ipc), size, generator=g)
    t1 = time.perf_counter()
    means = method.real_means(net, augment.apply(pool, params, classes, cfg.engine.dsa), classes,
                              opts, embed_real=embed_real)
    t2 = time.perf_counter()
    with bwd_ctx():
        syn = augment.apply(images, params, classes, cfg.engine.dsa)
        loss = (method.syn_loss(net, means, syn, classes, opts) if syn_fn is None
                else syn_fn(net, means, syn))
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    t3 = time.perf_counter()
    for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
        parts[k].append(v)
med = lambda v: sorted(v[2:])[len(v[2:]) // 2]  # the first two iterations compile
print(json.dumps({k: med(v) for k, v in parts.items()} | {"first_s": parts["total"][0], "loss": float(loss)}))
"""

VARIANTS = ("eager", "eager-noonednn", "compile", "compile-noonednn")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ipc", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--methods", nargs="+", default=["dm", "datadam"])
    ap.add_argument("--batch-real", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=7)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = ap.parse_args()
    res = {**header(sys.argv), "note": "median seconds per part over iterations 3..N",
           "runs": []}
    for method in args.methods:
        for ipc in args.ipc:
            for v in args.variants:
                rec = {"method": method, "ipc": ipc, "batch_real": args.batch_real, "variant": v}
                rec.update(run_child(CHILD, [method, ipc, args.batch_real, v, args.iterations]))
                res["runs"].append(rec)
                print(rec, flush=True)
                with open(args.out, "w") as f:
                    json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
