"""Membership inference at scale: LiRA over S shadow pipelines, with canaries.

The protocol of Carlini et al., "Membership Inference Attacks From First Principles" (S&P
2022), applied to distillation: a pool of real training images; S shadow pipelines, each
drawing a random half of the pool (every example is in exactly half of them), making a set
from it with the audited recipe and training the evaluation network on that set. Every
pipeline is in turn the target and the others its shadows (leave one out), so S pipelines
give S x pool scored (example, target) pairs. Each pipeline is a folder of its own and a
stopped attack resumes pipeline by pipeline.

- The statistic: the logit-scaled confidence phi = log(p_y / (1 - p_y)) of the true class
  (Sec. IV-A), for a few query views of each example (identity and one-pixel shifts: the
  augmentation queries of Sec. IV-D).
- Online LiRA (Algorithm 1): per example and view, Gaussians of phi over the shadows that
  trained on it (in) and that did not (out); the score is the mean over views of
  log N(phi; mu_in, sd_in) - log N(phi; mu_out, sd_out).
- Offline LiRA (Sec. IV-C): the out Gaussian only; the score is the mean over views of
  (phi - mu_out) / sd_out.
- With few shadows the variances are pooled over examples (``fixed_variance``, Sec. VI-B).
- Canaries (worst case): K pool images relabelled to another class before the split. They
  are in or out like every other example; their exposure is the share of in-canaries the
  attack flags at the threshold that keeps 0.1% of the non-canary non-members, and the
  median distance from a canary to its nearest image of a set made with it (in) against
  one made without it (out).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from .config import Options, check, opt

KINDS = ("set", "random", "full")
VARIANCES = {False: "per-example", True: "pooled"}


@dataclass(frozen=True, kw_only=True)
class LiraConfig(Options):
    """The attack: S shadow pipelines over a pool of real training images."""

    shadows: int = opt(16, "shadow pipelines S (each is also a target once); each example is in "
                           "exactly half of them")
    pool: int = opt(10000, "real training images the pipelines draw their halves from (a "
                           "seeded sample of the training split); pool/2 non-members per target")
    kind: str = opt("set", "what each pipeline trains on: a set made with the audited run's "
                           "recipe, a random real subset of its size, or all its members "
                           "(the upper reference)", choices=KINDS)
    iterations: Optional[int] = opt(None, "distillation iterations per pipeline (default: the "
                                          "audited run's)")
    epochs: int = opt(300, "training epochs of each pipeline's network")
    views: int = opt(2, "query views per example: the identity, then one-pixel shifts")
    canaries: int = opt(0, "pool images relabelled to another class (worst-case examples)")
    fixed_variance: bool = opt(False, "pool the Gaussians' variances over examples (few shadows); "
                                      "only scores the pipelines: lira.json holds both estimates")
    dp_epsilon: Optional[float] = opt(None, "train each pipeline's network with DP-SGD to this "
                                            "epsilon (the private reference; with --kind full)")
    seed: int = opt(0, "seed of the pool, the halves, the canaries and the pipelines")

    def __post_init__(self) -> None:
        check(self.shadows >= 2, f"shadows must be >= 2 (one target, one shadow), got {self.shadows}")
        check(self.pool >= 4, f"pool must be >= 4 images, got {self.pool}")
        check(self.kind in KINDS, f"kind must be set|random|full, got {self.kind!r}")
        check(1 <= self.views <= 5, f"views must be 1 to 5, got {self.views}")
        check(0 <= self.canaries <= self.pool // 2, "canaries must be between 0 and pool/2")
        check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")


# ---------------------------------------------------------------- the maths


def shadow_masks(n: int, shadows: int, seed: int) -> torch.Tensor:
    """(S, n) bool: which pipelines train on each example. Every column is a random
    permutation's first S/2 rows, so each example is in exactly floor(S/2) pipelines
    (Carlini et al.'s construction)."""
    g = torch.Generator().manual_seed(seed)
    rank = torch.rand(shadows, n, generator=g).argsort(0).argsort(0)
    return rank < shadows // 2


def views(x: torch.Tensor, k: int) -> list[torch.Tensor]:
    """The query views of a batch: the identity, then shifts by one pixel right, down, left,
    up (zero fill), the small translations of LiRA's augmentation queries."""
    out = [x]
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0))[:k - 1]:
        shifted = torch.roll(x, (dy, dx), (2, 3))
        if dx:
            shifted[..., :, 0 if dx > 0 else -1] = 0
        if dy:
            shifted[..., 0 if dy > 0 else -1, :] = 0
        out.append(shifted)
    return out


def _gaussians(phi: torch.Tensor, mask: torch.Tensor, pooled: bool, min_std: float = 1e-3):
    """Leave-one-out per-example Gaussians: for each target i, the mean and std of ``phi``
    (S, N, V) over the other pipelines j != i with ``mask[j]`` true. Returns (mu, sd), each
    (S, N, V). Examples with fewer than two such pipelines take the std pooled over examples."""
    w = mask.double()[..., None]  # (S, N, 1)
    s1, s2, c = (phi * w).sum(0), (phi * phi * w).sum(0), w.sum(0)  # over all pipelines
    s1, s2, c = s1 - phi * w, s2 - phi * phi * w, c - w  # leave the target out
    mu = s1 / c.clamp_min(1)
    var = (s2 / c.clamp_min(1) - mu * mu).clamp_min(0)
    global_var = (var * (c > 1)).sum(1, keepdim=True) / (c > 1).sum(1, keepdim=True).clamp_min(1)
    var = global_var.expand_as(var) if pooled else torch.where(c > 1, var, global_var)
    return mu, var.sqrt().clamp_min(min_std)


def normal_logpdf(x: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - mu) / sd) ** 2 - sd.log() - 0.5 * math.log(2 * math.pi)


def lira_scores(phi: torch.Tensor, keep: torch.Tensor, *, fixed_variance: bool = False
                ) -> dict[str, torch.Tensor]:
    """Online and offline LiRA scores (S, N) of every (target, example) pair from ``phi``
    (S, N, V: pipeline, example, view) and ``keep`` (S, N), each target scored against the
    other S - 1 pipelines (Carlini et al. 2022, Algorithm 1; offline: Sec. IV-C)."""
    phi = phi.double()
    mu_in, sd_in = _gaussians(phi, keep, fixed_variance)
    mu_out, sd_out = _gaussians(phi, ~keep, fixed_variance)
    online = (normal_logpdf(phi, mu_in, sd_in) - normal_logpdf(phi, mu_out, sd_out)).mean(-1)
    offline = ((phi - mu_out) / sd_out).mean(-1)
    return {"online": online, "offline": offline}


def roc_points(scores: torch.Tensor, is_member: torch.Tensor) -> tuple[list[float], list[float]]:
    """(FPR, TPR) of every threshold, members scoring high (for the log-log ROC plot)."""
    order = scores.double().flatten().argsort(descending=True)
    y = is_member.flatten()[order].double()
    tp, fp = y.cumsum(0), (1 - y).cumsum(0)
    return (fp / max(1.0, float(fp[-1]))).tolist(), (tp / max(1.0, float(tp[-1]))).tolist()


def roc_on_grid(scores: torch.Tensor, is_member: torch.Tensor, points: int = 25) -> dict:
    """The ROC at ``points`` false-positive rates spaced evenly in log from the lowest one the
    non-members resolve (1 / their count) to 1: a compact curve that several attacks' results
    files can overlay (``report.plots.privacy_overview``) without their scores."""
    from .membership import tpr_at_fpr
    s, y = scores.flatten(), is_member.flatten().long()
    lo = 1.0 / max(1, int((y == 0).sum()))
    grid = [lo ** (1 - i / (points - 1)) for i in range(points)]
    return {"fpr": grid, "tpr": [tpr_at_fpr(s, y, f) for f in grid]}


def bootstrap(stat: Callable[[torch.Tensor, torch.Tensor], float], scores: torch.Tensor,
              is_member: torch.Tensor, *, rounds: int = 200, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of ``stat(scores, is_member)`` over examples resampled with
    replacement (Efron & Tibshirani 1993). For (S, N) scores of S targets the columns (the
    examples) are resampled with all their targets: an example's S pairs are not independent
    draws, so resampling pairs would make the interval too narrow."""
    g = torch.Generator().manual_seed(seed)
    s, y = (scores, is_member) if scores.dim() == 2 else (scores[None], is_member[None])
    n = s.shape[1]
    vals = sorted(stat(s[:, i].flatten(), y[:, i].flatten())
                  for i in (torch.randint(n, (n,), generator=g) for _ in range(rounds)))
    return vals[int(0.025 * rounds)], vals[min(rounds - 1, int(0.975 * rounds))]


def report(scores: torch.Tensor, is_member: torch.Tensor, *, rounds: int = 200) -> dict:
    """AUC and TPR at 1%, 0.1% and 0.01% FPR of (S, N) scores (or a flat vector), each with a
    bootstrap interval over examples; a rate is resolvable where at least one non-member lies
    above its threshold."""
    from .membership import tpr_at_fpr
    from .metrics import roc_auc
    s, y = scores.flatten(), is_member.flatten().long()
    m = is_member.long()
    n_neg = int((y == 0).sum())
    out = {"members": int(y.sum()), "non_members": n_neg, "examples": int(scores.shape[-1]),
           "auc": roc_auc(s, y), "auc_ci": bootstrap(lambda a, b: roc_auc(a, b), scores, m, rounds=rounds)}
    for fpr in (0.01, 0.001, 0.0001):
        out[f"tpr_at_{fpr:g}_fpr"] = tpr_at_fpr(s, y, fpr)
        out[f"tpr_at_{fpr:g}_fpr_ci"] = bootstrap(lambda a, b: tpr_at_fpr(a, b, fpr), scores, m,
                                                  rounds=rounds)
        out[f"fpr_{fpr:g}_resolvable"] = n_neg * fpr >= 1
    return out


def canary_exposure(scores: torch.Tensor, keep: torch.Tensor, canary: torch.Tensor,
                    fpr: float = 0.001) -> dict:
    """The share of in-canaries flagged at the threshold that keeps ``fpr`` of the ordinary
    (non-canary) non-members, beside the same share for ordinary members, and the canaries'
    AUC against the canaries left out."""
    from .membership import threshold_at_fpr
    from .metrics import roc_auc
    c = canary[None, :].expand_as(keep)
    threshold = threshold_at_fpr(scores[~keep & ~c], fpr)
    return {"canaries": int(canary.sum()), "fpr": fpr,
            "canaries_flagged": float((scores[keep & c] > threshold).double().mean()),
            "members_flagged": float((scores[keep & ~c] > threshold).double().mean()),
            "canary_auc": roc_auc(scores[c].double(), keep[c].long())}


def start_exposure(scores: torch.Tensor, keep: torch.Tensor, start: torch.Tensor,
                   fpr: float = 0.001) -> dict:
    """At the threshold that keeps ``fpr`` of the non-members, the share of members flagged
    among those the set started from or shows as they are (``start``, (S, N): a real or
    herding start, a coreset's picks) and among the other members. Zhao & Zhang (ICLR 2025)
    flag real-image initialisation as a leak; this splits the TPR to show where it lies."""
    from .membership import threshold_at_fpr
    threshold = threshold_at_fpr(scores[~keep], fpr)
    inside, other = keep & start, keep & ~start
    share = (lambda m: float((scores[m] > threshold).double().mean()) if m.any() else None)
    return {"fpr": fpr, "start_members": int(inside.sum()), "start_flagged": share(inside),
            "other_members": int(other.sum()), "other_flagged": share(other)}


# ---------------------------------------------------------------- the pipelines


@dataclass(frozen=True)
class Pool:
    """The attack's real examples: training-split indices, labels (canaries relabelled),
    which are canaries, and each pipeline's half."""
    index: torch.Tensor
    labels: torch.Tensor
    canary: torch.Tensor
    keep: torch.Tensor

    def members(self, train, s: int):
        """Pipeline ``s``'s half of the pool as ImageData (canaries relabelled)."""
        from .data.base import ImageData
        keep = self.keep[s]
        return ImageData(images=train.images[self.index[keep]], labels=self.labels[keep], info=train.info)

    def member_mask(self, s: int, positions: torch.Tensor) -> torch.Tensor:
        """(N,) bool over the pool: the members of pipeline ``s`` at ``positions`` in its half."""
        mask = torch.zeros(len(self.index), dtype=torch.bool)
        mask[torch.nonzero(self.keep[s]).flatten()[positions]] = True
        return mask


def make_pool(train, cfg: LiraConfig) -> Pool:
    """A seeded sample of ``cfg.pool`` training images, its first ``cfg.canaries`` relabelled
    to a random other class, and the pipelines' halves."""
    g = torch.Generator().manual_seed(cfg.seed)
    index = torch.randperm(len(train), generator=g)[:cfg.pool]
    labels = train.labels[index].clone()
    k, classes = cfg.canaries, train.info.num_classes
    labels[:k] = (labels[:k] + torch.randint(1, classes, (k,), generator=g)) % classes
    canary = torch.zeros(len(index), dtype=torch.bool)
    canary[:k] = True
    return Pool(index=index, labels=labels, canary=canary,
                keep=shadow_masks(len(index), cfg.shadows, cfg.seed + 1))


def pipeline(s: int, train, test, pool: Pool, distill_cfg, cfg: LiraConfig, train_cfg, *,
             model: str, compute, device, out: Path, log=print) -> Path:
    """Pipeline ``s``: make its set from its half of the pool, train the network on it, score
    it on ``test`` and write phi of every pool example under every view to
    ``out/shadow-SSS/phi.safetensors`` (skipped where it exists: a stopped attack resumes
    here)."""
    from .atomic import write_json, write_safetensors
    from .compute import fixed
    from .evaluate import test_network
    from .membership import losses_and_phi, make_set, trained_models
    folder = out / f"shadow-{s:03d}"
    if (folder / "phi.safetensors").exists():
        return folder
    t0 = time.perf_counter()
    images, labels, starts = make_set(cfg.kind, pool.members(train, s), distill_cfg, device=device,
                                      seed=cfg.seed + 1000 + s, log=lambda m: None)
    made = time.perf_counter() - t0
    records: list = []
    net = trained_models(images, labels, train.info, train_cfg, model=model, k=1,
                         seed=cfg.seed + 1000 + s, compute=compute, records=records)[0]
    x = train.normalized(pool.index)
    phi = torch.stack([losses_and_phi(net, v, pool.labels)[1] for v in views(x, cfg.views)], -1)
    # each canary's distance to its nearest image of the set (what the set itself shows)
    near = torch.cdist(x[pool.canary].flatten(1), images.flatten(1)).min(1).values
    tensors = {"phi": phi.float().contiguous(), "canary_nn": near.float().contiguous()}
    if starts is not None:  # the pool examples the set shows or started from
        tensors["start"] = pool.member_mask(s, starts).to(torch.uint8)
    write_safetensors(folder / "phi.safetensors", tensors)
    write_json(folder / "pipeline.json", {"shadow": s, "members": int(pool.keep[s].sum()),
                                          "set_images": int(len(labels)),
                                          "test_accuracy": 100 * test_network(
                                              net, test, compute=fixed(torch.device("cpu")))["accuracy"],
                                          "make_seconds": made, "dp": records[0].get("dp"),
                                          "seconds": time.perf_counter() - t0})
    log(f"pipeline {s + 1}/{cfg.shadows}: {time.perf_counter() - t0:.0f} s")
    return folder


def attack(run_dir: str | Path, cfg: LiraConfig, *, out: Optional[str | Path] = None,
           device=torch.device("cpu"), data_root: Optional[str] = None, workers: int = 1,
           training: Optional[dict] = None, log: Callable[[str], None] = print) -> dict:
    """LiRA over ``cfg.shadows`` pipelines of the run's recipe; writes ``OUT/lira.json``
    (default OUT: ``run_dir/lira-KIND``), its ROC plot and the most exposed examples.
    ``workers`` > 1 (CPU): that many pipelines at once in separate processes. ``training``:
    TrainConfig fields of the pipelines' training other than the protocol's (lr, batch size,
    DP-SGD's delta and clipping norm)."""
    from .config import DataConfig, DistillConfig, EvalConfig, TrainConfig
    from .data import DATASETS, load_dataset
    from .evaluate import resolve_compute
    from .synthetic import SyntheticSet
    run_dir = Path(run_dir)
    # every pipeline remakes the recipe: the set's tensors are not read (they need not be kept)
    info, metadata = SyntheticSet.read_recipe(run_dir)
    if not metadata.get("distill"):
        raise ValueError(f"{run_dir} records no distillation config: the attack remakes its "
                         f"recipe in every pipeline")
    d = dict(metadata.get("data") or {"name": info.name})
    data = DataConfig.from_dict({**d, **({"root": data_root} if data_root else {})})
    train = load_dataset(data, "train")
    check(cfg.pool <= len(train), f"pool {cfg.pool} exceeds the {len(train)} training images")
    dc = DistillConfig.from_dict(metadata["distill"])
    its = cfg.iterations if cfg.iterations is not None else metadata.get("iterations")
    dc = dataclasses.replace(dc, engine=dataclasses.replace(dc.engine, max_time=None, iterations=its,
                                                            checkpoint_every=0, eval_every=0))
    model = dc.engine.model
    tcfg = DATASETS.get(data.name).train_config(TrainConfig(
        epochs=cfg.epochs, compile=dc.engine.compile, precision=dc.engine.precision,
        dp_epsilon=cfg.dp_epsilon, **(training or {})))
    probe = train.images[:min(len(train), tcfg.batch_size)]
    compute = resolve_compute(EvalConfig(models=(model,), train=tcfg), probe, device, log)[model]
    pool = make_pool(train, cfg)
    out = Path(out) if out else run_dir / f"lira-{cfg.kind}"
    _own(out, {"lira": cfg.to_dict(), "distill": dc.to_dict(), "train": tcfg.to_dict(),
               "model": model, "data": {k: v for k, v in data.to_dict().items() if k != "root"}})
    args = (pool, dc, cfg, tcfg)
    if workers > 1 and device.type == "cpu":
        _parallel(data, args, model=model, compute=compute, out=out, workers=workers, log=log)
    test = load_dataset(data, "test")
    folders = [pipeline(s, train, test, *args, model=model, compute=compute, device=device, out=out,
                        log=log) for s in range(cfg.shadows)]
    return summarise(folders, pool, cfg, out, train=train, model=model, tcfg=tcfg)


def _making(config: dict) -> dict:
    """An attack config without its scoring-only field (the variance estimate), its sections
    read back through their option classes: an option added since the folder was made takes
    its default, which keeps the former behaviour, so the folder still resumes."""
    from .config import DistillConfig, TrainConfig
    sections = {"lira": LiraConfig, "distill": DistillConfig, "train": TrainConfig}
    full = {**config, **{k: cls.from_dict(config[k]).to_dict() for k, cls in sections.items()}}
    full = json.loads(json.dumps(full))  # tuples as lists, as the file holds them
    return {**full, "lira": {k: v for k, v in full["lira"].items() if k != "fixed_variance"}}


def _own(out: Path, config: dict) -> None:
    """Write the attack's config to ``out``, or check that the one there is this one: the
    pipelines already in ``out`` were made for it (other settings draw other halves). The
    variance estimate only scores the pipelines: another one rescores the same folder."""
    from .atomic import write_json
    path = out / "config.json"
    if path.exists():
        held = json.loads(path.read_text())
        held, new = (_making(c) for c in (held, json.loads(json.dumps(config))))
        if held != new:
            diff = sorted(k for k in {**held["lira"], **new["lira"]}
                          if held["lira"].get(k) != new["lira"].get(k))
            what = ", ".join(diff) or "the recipe or training"
            raise ValueError(f"{out} holds an attack with other settings ({what}); give "
                             f"another --out or remove it")
    write_json(path, config)  # the variance estimate of the latest scoring


def _pipeline_task(task: tuple) -> None:
    """One pipeline in a worker process (``_parallel``): the data loaded there, not pickled."""
    threads, s, data, args, kw = task
    from .data import load_dataset
    torch.set_num_threads(threads)
    pipeline(s, load_dataset(data, "train"), load_dataset(data, "test"), *args, **kw,
             log=lambda m: None)


def _parallel(data, args, *, model, compute, out: Path, workers: int, log) -> None:
    """The pipelines not yet done, ``workers`` at a time in separate processes, the cores
    split between them (each pipeline is independent: its own seed and folder)."""
    import multiprocessing as mp
    cfg = args[2]
    todo = [s for s in range(cfg.shadows) if not (out / f"shadow-{s:03d}" / "phi.safetensors").exists()]
    threads = max(1, torch.get_num_threads() // workers)
    kw = {"model": model, "compute": compute, "device": torch.device("cpu"), "out": out}
    with mp.get_context("spawn").Pool(workers) as procs:
        for i, _ in enumerate(procs.imap_unordered(_pipeline_task, [(threads, s, data, args, kw)
                                                                    for s in todo])):
            log(f"pipeline {i + 1}/{len(todo)} done ({workers} at a time)")
        procs.close()
        procs.join()


def summarise(folders: list[Path], pool: Pool, cfg: LiraConfig, out: Path, *, train, model,
              tcfg) -> dict:
    """Score every (target, example) pair, write ``lira.json``, ``lira_roc.png`` and
    ``lira_exposed.png`` (the pool examples with the highest online score as members)."""
    from safetensors.torch import load_file
    from .atomic import write_json
    from .provenance import machine
    stored = [load_file(str(f / "phi.safetensors")) for f in folders]
    phi = torch.stack([t["phi"] for t in stored]).double()
    scores = lira_scores(phi, pool.keep, fixed_variance=cfg.fixed_variance)
    other = lira_scores(phi, pool.keep, fixed_variance=not cfg.fixed_variance)
    costs = [json.loads((f / "pipeline.json").read_text()) for f in folders]
    seconds = [c["seconds"] for c in costs]
    rep = {"config": cfg.to_dict(), "model": model, "epochs": tcfg.epochs,
           "dp_epsilon": cfg.dp_epsilon, "pairs": int(pool.keep.numel()),
           "variances": VARIANCES[cfg.fixed_variance],
           "online": report(scores["online"], pool.keep), "offline": report(scores["offline"], pool.keep),
           # the same pipelines scored with the other variance estimate, for comparison
           "other_variances": {"variances": VARIANCES[not cfg.fixed_variance],
                               "online": report(other["online"], pool.keep),
                               "offline": report(other["offline"], pool.keep)},
           "seconds_per_pipeline": sum(seconds) / len(seconds), "seconds_total": sum(seconds),
           "seconds_median": sorted(seconds)[len(seconds) // 2],
           "roc": {"online": roc_on_grid(scores["online"], pool.keep),
                   "offline": roc_on_grid(scores["offline"], pool.keep)},
           "set_images": costs[0]["set_images"], "machine": machine(),
           "test_accuracy": sum(c["test_accuracy"] for c in costs) / len(costs)}
    if costs[0].get("dp"):  # the accountant's epsilon of each pipeline's DP-SGD training
        eps = [c["dp"]["epsilon"] for c in costs]
        rep["dp"] = {**costs[0]["dp"], "epsilon": max(eps), "epsilon_min": min(eps)}
    if cfg.canaries:
        near = torch.stack([t["canary_nn"] for t in stored])
        inside = pool.keep[:, pool.canary]
        rep["canaries"] = {**canary_exposure(scores["online"], pool.keep, pool.canary),
                           "nn_distance_in": float(near[inside].median()),
                           "nn_distance_out": float(near[~inside].median())}
    if all("start" in t for t in stored):  # pipelines made before starts were kept have none
        start = torch.stack([t["start"] for t in stored]).bool()
        rep["starts"] = {k: start_exposure(scores[k], pool.keep, start) for k in ("online", "offline")}
    _plots(scores["online"], scores["offline"], pool, train, out)
    write_json(out / "lira.json", rep)
    return rep


def _plots(online, offline, pool: Pool, train, out: Path) -> None:
    from .report.plots import roc_loglog
    from .synthetic import SyntheticSet
    roc_loglog({"online LiRA": roc_points(online, pool.keep),
                "offline LiRA": roc_points(offline, pool.keep)}, out / "lira_roc.png")
    member_score = torch.where(pool.keep, online, torch.full_like(online, -math.inf)).max(0).values
    top = member_score.argsort(descending=True)[:10]
    images = train.normalized(pool.index[top])
    info = dataclasses.replace(train.info, class_names=("most exposed",))
    SyntheticSet(images=images, labels=torch.zeros(len(top), dtype=torch.long), info=info).grid(
        out / "lira_exposed.png", max_per_class=len(top))
