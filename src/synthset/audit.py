"""``synthset audit``: how close a distilled set is to the real images it was made from.

Memorisation (this module): for every synthetic image (decoded, for multi-formation sets),
its nearest real training image in pixel space (L2 after the set's normalisation) and in the
embedding of a ConvNet trained on the real training split, with the SSIM of the pixel pair;
the same nearest-neighbour distances from held-out real images (the test split) to the
training split as the baseline; the fraction of synthetic images closer to a training image
than the 1st percentile of those real-to-real distances ("near copies"); a grid of the
closest pairs; and, for a learned set, how far it moved from its start (remade from the
run's seed with 0 iterations).

Reading: small distances mean the set carries those training images nearly as they are.
None of this is a privacy guarantee (no differential privacy is involved), and a set far
from every training image can still leak through a model trained on it (membership
inference: Dong et al., ICML 2022; Carlini et al., 2022, "No free lunch in privacy for free";
Zhao & Zhang, ICLR 2025).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .atomic import write_json
from .config import Options, opt
from .data.base import DataError, ImageData, denormalize

AUDIT = "audit.json"


# ---------------------------------------------------------------- distances


def nearest(a: torch.Tensor, b: torch.Tensor, *, chunk: int = 4096, candidates: int = 4,
            progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``a`` (N, D), the Euclidean distance to its nearest row of ``b`` (M, D)
    and that row's index. The search ranks the rows of ``b`` by ||a||^2 + ||b||^2 - 2 a.b in
    float32, in chunks of ``chunk`` rows, keeping each row's ``candidates`` best; those are
    then measured exactly in float64, ||a - b_i||, and the nearest kept. So an exact copy
    measures 0 on every BLAS, and float32 can only mislead where more than ``candidates`` rows
    of ``b`` tie within its rounding, which then changes no distance beyond that rounding."""
    from tqdm import tqdm
    if b.shape[0] == 0:
        raise ValueError("nearest: the set searched holds no rows")
    if a.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    a32, b32 = a.float().flatten(1), b.float().flatten(1)
    aa = a32.square().sum(1, keepdim=True)
    k = min(candidates, b32.shape[0])
    best = torch.full((a32.shape[0], k), math.inf)
    index = torch.zeros(a32.shape[0], k, dtype=torch.long)
    for start in tqdm(range(0, b32.shape[0], chunk), desc="nearest", disable=not progress,
                      leave=False):
        part = b32[start:start + chunk]
        d2 = (aa + part.square().sum(1) - 2 * a32 @ part.T).clamp_min(0)
        m, i = d2.topk(min(k, part.shape[0]), dim=1, largest=False)
        best, pick = torch.cat([best, m], 1).topk(k, dim=1, largest=False)
        index = torch.cat([index, i + start], 1).gather(1, pick)
    a64, b_flat = a.double().flatten(1), b.flatten(1)
    exact = torch.cat([(a64[r:r + 512, None, :] - b_flat[index[r:r + 512]].double()).norm(dim=2)
                       for r in range(0, a64.shape[0], 512)])  # (N, k), float64
    d, j = exact.min(1)
    return d, index.gather(1, j[:, None])[:, 0]


def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM of two (N, C, H, W) batches (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP
    2004, Eq. 13: (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
    C1 = (0.01 L)^2, C2 = (0.03 L)^2, local statistics under an 11x11 Gaussian window of
    sigma 1.5, 'valid' positions only), averaged over positions and channels."""
    x, y = x.double(), y.double()
    c = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    r = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(t):
        return F.conv2d(t, kernel, groups=c)
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx ** 2
    syy = blur(y * y) - my ** 2
    sxy = blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3))


def near_copy_fraction(distances: torch.Tensor, baseline: torch.Tensor, q: float = 0.01) -> tuple[float, float]:
    """(fraction of ``distances`` below the ``q`` quantile of ``baseline``, that quantile): the
    share of synthetic images closer to a training image than all but ``q`` of held-out real
    images are."""
    threshold = float(torch.quantile(baseline.double(), q))
    return float((distances.double() < threshold).double().mean()), threshold


def summary(d: torch.Tensor) -> dict:
    d = d.double()
    return {"mean": float(d.mean()), "median": float(d.median()), "min": float(d.min()),
            "p01": float(torch.quantile(d, 0.01)), "p99": float(torch.quantile(d, 0.99))}


# ---------------------------------------------------------------- the audit


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditConfig(Options):
    """What ``audit`` compares: ``held_out`` test images for the real-to-real baseline,
    ``features``: also in a trained ConvNet's embedding, ``grid``: pairs shown."""

    held_out: int = opt(2000, "held-out real (test) images for the real-to-real baseline")
    features: bool = opt(True, "also compare in the embedding of a ConvNet trained on the "
                               "training split (off: pixel space only)")
    grid: int = opt(10, "closest pairs to draw")
    seed: int = opt(0, "seed of the audit's draws and models")
    # membership inference (synthset.membership); 0 models: skipped
    mia_models: int = opt(0, "membership inference: models trained per set (0: skipped); the set "
                             "is remade from a random half of the training split")
    mia_shadows: int = opt(4, "membership inference: shadow sets for the offline LiRA attack")
    mia_audited: int = opt(500, "membership inference: members and non-members scored, each")
    mia_epochs: int = opt(300, "membership inference: training epochs of the attacked models")
    mia_full_epochs: int = opt(10, "membership inference: epochs of the all-members reference")

    def __post_init__(self) -> None:
        from .config import check
        check(self.held_out >= 10, f"held_out must be >= 10 images, got {self.held_out}")
        check(self.grid >= 0, f"grid must be >= 0, got {self.grid}")
        check(self.mia_models >= 0 and self.mia_shadows >= 0 and self.mia_audited >= 1,
              "mia_models and mia_shadows must be >= 0, mia_audited >= 1")


def memorisation(syn: torch.Tensor, train: ImageData, held_out: torch.Tensor, *,
                 embed: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 start: Optional[torch.Tensor] = None) -> dict:
    """The memorisation statistics of ``syn`` (normalised, decoded) against the training
    split, with ``held_out`` (normalised real images not in it) as the baseline."""
    real = train.normalized()
    d_syn, i_syn = nearest(syn, real, progress=True)
    d_base, _ = nearest(held_out, real, progress=True)
    frac, thr = near_copy_fraction(d_syn, d_base)
    px_syn = denormalize(syn.float(), train.info.mean, train.info.std)
    px_nn = denormalize(real[i_syn].float(), train.info.mean, train.info.std)
    out = {"pixel": {"synthetic_to_train": summary(d_syn), "held_out_to_train": summary(d_base),
                     "near_copy_threshold": thr, "near_copy_fraction": frac,
                     "ratio_of_medians": float(d_syn.median() / d_base.median())},
           "ssim_to_nearest": summary(ssim(px_syn, px_nn)),
           "nearest_train_index": i_syn.tolist(), "pixel_distances": d_syn.tolist()}
    if embed is not None:
        f_real, f_syn, f_held = embed(real), embed(syn), embed(held_out)
        fd_syn, fi_syn = nearest(f_syn, f_real, progress=True)
        fd_base, _ = nearest(f_held, f_real, progress=True)
        ffrac, fthr = near_copy_fraction(fd_syn, fd_base)
        out["feature"] = {"synthetic_to_train": summary(fd_syn), "held_out_to_train": summary(fd_base),
                          "near_copy_threshold": fthr, "near_copy_fraction": ffrac,
                          "ratio_of_medians": float(fd_syn.median() / fd_base.median()),
                          "same_nearest_as_pixel": float((fi_syn == i_syn).double().mean())}
    if start is not None:
        moved = (syn - start).flatten(1).norm(dim=1)
        out["drift_from_start"] = {
            "relative_rms": float((syn - start).square().mean().sqrt() / start.square().mean().sqrt()),
            "per_image": summary(moved)}
    return out


def pairs_grid(syn: torch.Tensor, real: torch.Tensor, order: torch.Tensor, info, path: Path) -> Path:
    """Top row: the synthetic images closest to a training image; bottom row: those images."""
    from .synthetic import SyntheticSet
    k = len(order)
    both = torch.cat([syn[order], real[order]])
    labels = torch.cat([torch.zeros(k, dtype=torch.long), torch.ones(k, dtype=torch.long)])
    grid_info = dataclasses.replace(info, class_names=("synthetic", "nearest real"))
    return SyntheticSet(images=both, labels=labels, info=grid_info).grid(path, max_per_class=k)


def audit(run_dir: str | Path, config: AuditConfig = AuditConfig(), *, device=torch.device("cpu"),
          data_root: Optional[str] = None, log: Callable[[str], None] = print) -> dict:
    """Audit the set in ``run_dir``; writes ``run_dir/audit.json`` and ``audit_pairs.png``."""
    from .config import DataConfig
    from .data import load_dataset
    from .synthetic import SyntheticSet
    run_dir = Path(run_dir)
    sset = SyntheticSet.load(run_dir)
    d = dict(sset.metadata.get("data") or {"name": sset.info.name})
    if data_root:
        d["root"] = data_root
    data = DataConfig.from_dict(d)
    try:
        train, test = load_dataset(data, "train"), load_dataset(data, "test")
    except DataError as e:
        raise DataError(f"cannot audit {run_dir}: its dataset {data.name!r} is not available "
                        f"({e}); pass --data-root where it is") from None
    syn, labels = sset.decoded()
    g = torch.Generator().manual_seed(config.seed)
    pick = torch.randperm(len(test), generator=g)[:config.held_out]
    held = test.normalized(pick)
    embed = None
    if config.features:
        from .config import CoresetConfig
        from .methods.coreset import feature_net
        net = feature_net(train, CoresetConfig(features="trained"), 0, device, log).to(device).eval()

        @torch.no_grad()
        def embed(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([net.embed(x[i:i + 1024].to(device)).float().cpu()
                              for i in range(0, len(x), 1024)])
    cfg_d = sset.metadata.get("distill")
    start = _start_of(sset, data, device, log) if cfg_d and sset.metadata.get("iterations") else None
    stats = memorisation(syn, train, held, embed=embed, start=start)
    closest = torch.argsort(torch.tensor(stats["pixel_distances"]))[:config.grid]
    real_nn = train.normalized(torch.tensor(stats["nearest_train_index"]))
    if config.grid:
        pairs_grid(syn, real_nn, closest, sset.info, run_dir / "audit_pairs.png")
    membership = None
    if config.mia_models and cfg_d:
        membership = _membership(sset, data, train, config, device=device, log=log)
    report = {"config": dataclasses.asdict(config), "n_synthetic": int(len(syn)),
              "n_train": len(train), "n_held_out": int(len(held)), "memorisation": stats,
              "membership": membership,
              "reading": "Distances are L2 after the set's normalisation (pixel) and in the "
                         "embedding of a ConvNet trained on the training split (feature). A "
                         "near copy is closer to a training image than 99% of held-out real "
                         "images are. These numbers are no privacy guarantee; a model trained "
                         "on the set can leak membership even when no image is a near copy."}
    write_json(run_dir / AUDIT, report)
    return report


def _start_of(sset, data, device, log) -> torch.Tensor:
    """A learned set's images at iteration 0, remade from its config. The start comes from
    the run's generator alone: no trained experts (their own seeds), no timing of
    arithmetic and no compilation are needed to remake it."""
    from .config import DistillConfig
    from .distill import distill
    cfg = DistillConfig.from_dict(sset.metadata["distill"])
    options = {**(cfg.options or {}), **({"experts": 0, "ce_weight": 0.0}
                                         if (cfg.options or {}).get("experts") else {})}
    cfg = dataclasses.replace(cfg, options=options, engine=dataclasses.replace(
        cfg.engine, iterations=0, compile=False, precision="fp32"))
    log("remaking the set's start (its seed, 0 iterations)")
    return distill(data, cfg, device=device, log=lambda m: None, progress=False).decoded()[0]


def _membership(sset, data, train, config: AuditConfig, *, device, log) -> dict:
    """The membership protocol (``synthset.membership.membership_attack``) for the run's own
    recipe of set, a random real subset of its size, and a model trained on all members."""
    from .config import DistillConfig, EvalConfig, TrainConfig
    from .data import DATASETS
    from .evaluate import resolve_compute
    from .membership import membership_attack
    cfg = DistillConfig.from_dict(sset.metadata["distill"])
    spec = DATASETS.get(data.name)
    model = cfg.engine.model
    out = {"protocol": (f"members: a random half of the {len(train)} training images; target "
                        f"and {config.mia_shadows} shadow sets made from random halves; "
                        f"{config.mia_models} {model} model(s) per set, {config.mia_epochs} epochs "
                        f"(all members: {config.mia_full_epochs}); {config.mia_audited} members and "
                        f"{config.mia_audited} non-members audited"), "rows": []}
    for kind, epochs in (("set", config.mia_epochs), ("random", config.mia_epochs),
                         ("full", config.mia_full_epochs)):
        tcfg = spec.train_config(TrainConfig(epochs=epochs, compile=cfg.engine.compile,
                                             precision=cfg.engine.precision))
        compute = resolve_compute(EvalConfig(models=(model,), train=tcfg),
                                  train.images[:tcfg.batch_size], device, log)[model]
        tcfg = dataclasses.replace(tcfg, precision=compute.precision_of("train"))
        out["rows"].append(membership_attack(
            kind, train, cfg, tcfg, model=model, audited=config.mia_audited,
            models=config.mia_models, shadows=config.mia_shadows, seed=config.seed,
            device=device, compute=compute, log=log))
    return out
