"""Typed, frozen, keyword-only option dataclasses.

Every option a run uses lives here so that a run is reproducible from its saved
config (``dataclasses.asdict`` -> JSON -> ``from_dict``). Invalid values raise
``ValueError`` naming the option and the fix.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


class _FromDict:
    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown option(s) {sorted(unknown)}")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class DataConfig(_FromDict):
    """Which dataset and where it lives.

    root: data root holding ``MNIST/raw`` and ``mhist/`` (else $SYNTHSET_DATA, else the
    cache dir). path: for the ``folder`` dataset, the ImageFolder tree.
    verify: check MHIST's annotations.csv MD5 and image count (MNIST is always verified).
    image_size: resize to this square size (None = native).
    """

    name: str = "mnist"
    root: Optional[str] = None
    path: Optional[str] = None
    image_size: Optional[int] = None
    download: bool = True
    verify: bool = True

    def __post_init__(self) -> None:
        _check(self.image_size is None or self.image_size >= 8,
               f"image_size must be >= 8 or None, got {self.image_size}")


@dataclass(frozen=True, kw_only=True)
class DSAConfig(_FromDict):
    """Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021), the field's defaults."""

    strategy: str = "color_crop_cutout_flip_scale_rotate"
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    crop_pad: float = 0.125
    cutout: float = 0.5
    flip_prob: float = 0.5
    scale: float = 1.2
    rotate_deg: float = 15.0

    def __post_init__(self) -> None:
        from .augment import OPS  # local: keeps config importable without torch work

        ops = [o for o in self.strategy.split("_") if o]
        bad = [o for o in ops if o not in OPS]
        _check(not bad, f"unknown DSA op(s) {bad}; valid ops: {', '.join(OPS)}")
        _check(self.scale >= 1.0, "scale must be >= 1.0")

    def without(self, op: str) -> "DSAConfig":
        ops = [o for o in self.strategy.split("_") if o and o != op]
        return dataclasses.replace(self, strategy="_".join(ops))


@dataclass(frozen=True, kw_only=True)
class TrainConfig(_FromDict):
    """The field's evaluation protocol (DC/DSA/DM ``evaluate_synset``): SGD, lr x0.1 at half."""

    epochs: int = 1000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    batch_test: int = 512
    augment: bool = True
    # random quarter turns and mirrors of every training image (histology), on top of DSA
    dihedral: bool = False
    # test-time: average the softmax over the 8 dihedral views of each test image
    # (histology); the single-view scores of the same networks are recorded beside
    tta: bool = False
    dsa: DSAConfig = field(default_factory=DSAConfig)
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.batch_test >= 1, f"batch_test must be >= 1, got {self.batch_test}")
        _check(self.precision in ("fp32", "bf16"),
               f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if isinstance(self.dsa, dict):
            object.__setattr__(self, "dsa", DSAConfig.from_dict(self.dsa))


@dataclass(frozen=True, kw_only=True)
class EvalConfig(_FromDict):
    """Runs x architectures of the training protocol on one synthetic set."""

    models: tuple[str, ...] = ("ConvNet",)
    runs: int = 5
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        _check(self.runs >= 1, f"runs must be >= 1, got {self.runs}")
        _check(len(self.models) >= 1, "models must name at least one architecture")
        if isinstance(self.train, dict):
            object.__setattr__(self, "train", TrainConfig.from_dict(self.train))


@dataclass(frozen=True, kw_only=True)
class CoresetConfig(_FromDict):
    """Coreset selection (random, herding, k-center).

    features: the space herding/k-center measure distances in: ``trained`` (embedding of a
    ConvNet trained on the full training set, the DC paper's choice), ``random`` (a
    randomly initialised ConvNet) or ``pixels``. feature_epochs None = enough epochs for
    at least 200 SGD steps (MNIST: 1 epoch; MHIST: 23), so small sets get usable features.
    """

    features: str = "trained"
    feature_model: str = "ConvNet"
    feature_epochs: Optional[int] = None

    def __post_init__(self) -> None:
        _check(self.features in ("trained", "random", "pixels"),
               f"features must be trained|random|pixels, got {self.features!r}")
        _check(self.feature_epochs is None or self.feature_epochs >= 1,
               "feature_epochs must be >= 1 (or None for automatic)")


@dataclass(frozen=True, kw_only=True)
class MatchConfig(_FromDict):
    """The outer loop shared by the matching methods (DM, DataDAM): SGD on the synthetic
    images against a freshly initialised, frozen network each iteration.

    ``iterations`` and ``batch_real`` None = the method's official default (DM: 20,000 and
    256 real images per class). ``embed_chunk``: real images per forward pass under
    no_grad (0 = one class-batch at a time; with ``compile``, 0 = 640). ``compile``: the
    real-batch embedding and the synthetic loss (forward and backward) run through
    torch.compile (see ``CompiledEmbed``, ``CompiledSynLoss``). ``eval_every`` K > 0 evaluates the current set
    every K iterations with ``eval_epochs``/``eval_runs`` and logs it (never used to pick
    the saved set). ``inner_steps`` S: image updates per sampled network and real batch
    (1, the papers' loop, is the default); S > 1 reuses the real batch's means, the costly
    part, for S steps on the synthetic images under the same DSA draw.

    ``net_pool`` N > 0 replaces the fresh network per iteration with IDM's model sampling
    (Zhao et al., CVPR 2023; see ``synthset.netpool``): a queue of at most N networks, a
    fresh one joining every ``net_pool_refresh`` iterations; each iteration matches in one
    drawn from the queue, then trains it ``net_train_steps`` SGD steps (lr ``net_train_lr``)
    on ``net_train_batch`` real images. 0 (the default) is DM's and DataDAM's loop.

    ``ema`` d in (0, 1): keep an exponential moving average of the synthetic images over the
    iterations (Polyak averaging; ``synthset.distill.ema_update``) and save, snapshot and
    evaluate the average instead of the last iterate, which carries the last few noisy steps.
    0 (the default) saves the last iterate, as the papers. ``lr_schedule``: ``constant``
    (the papers) or ``cosine`` (``lr_img`` decayed to 0 over ``iterations``;
    ``synthset.distill.cosine_lr``).

    ``factor`` F > 1: multi-formation (IDC, Kim et al., ICML 2022; ``synthset.formation``):
    each stored image holds F x F lower-resolution images, so a model trains on F^2 x ipc
    images per class at the same storage. 1 (the default) is DM's and DataDAM's set.
    """

    iterations: Optional[int] = None
    lr_img: float = 1.0
    momentum: float = 0.5
    batch_real: Optional[int] = None
    init: str = "real"
    model: str = "ConvNet"
    embed_chunk: int = 0
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    checkpoint_every: int = 500
    eval_every: int = 0
    eval_epochs: int = 300
    eval_runs: int = 1
    inner_steps: int = 1
    net_pool: int = 0
    net_pool_refresh: int = 10
    net_train_steps: int = 1
    net_train_batch: int = 256
    net_train_lr: float = 0.01
    ema: float = 0.0
    lr_schedule: str = "constant"
    factor: int = 1
    dsa: DSAConfig = field(default_factory=DSAConfig)

    def __post_init__(self) -> None:
        _check(self.iterations is None or self.iterations >= 0, "iterations must be >= 0")
        _check(self.lr_img > 0, f"lr_img must be > 0, got {self.lr_img}")
        _check(self.batch_real is None or self.batch_real >= 1, "batch_real must be >= 1")
        _check(self.init in ("real", "noise", "herding"),
               f"init must be real|noise|herding, got {self.init!r}")
        _check(self.precision in ("fp32", "bf16"), f"precision must be fp32 or bf16, got {self.precision!r}")
        _check(self.inner_steps >= 1, f"inner_steps must be >= 1, got {self.inner_steps}")
        _check(self.net_pool >= 0, f"net_pool must be >= 0 (0 = a fresh network per iteration), "
                                   f"got {self.net_pool}")
        _check(self.net_pool_refresh >= 1 and self.net_train_batch >= 1 and self.net_train_steps >= 0
               and self.net_train_lr > 0,
               "net_pool_refresh and net_train_batch must be >= 1, net_train_steps >= 0, "
               "net_train_lr > 0")
        _check(self.lr_schedule in ("constant", "cosine"),
               f"lr_schedule must be constant|cosine, got {self.lr_schedule!r}")
        _check(self.lr_schedule == "constant" or self.iterations is not None,
               "lr_schedule='cosine' decays over --iterations: give --iterations")
        _check(self.factor >= 1, f"factor must be >= 1 (1 = plain images), got {self.factor}")
        _check(0.0 <= self.ema < 1.0,
               f"ema must be in [0, 1) (0 = save the last iterate), got {self.ema}")
        _check(self.checkpoint_every >= 0 and self.eval_every >= 0,
               "checkpoint_every and eval_every must be >= 0")
        if isinstance(self.dsa, dict):
            object.__setattr__(self, "dsa", DSAConfig.from_dict(self.dsa))


@dataclass(frozen=True, kw_only=True)
class DataDAMConfig(_FromDict):
    """DataDAM's loss (Sajedi et al., ICCV 2023). ``p``: exponent of the spatial attention
    map sum_c |f_c|^p (paper table: 4; public code: 1). ``lam``: weight of the final-
    embedding MMD term (the code's task_balance; with the code's factor 100 on both terms,
    lam = 0.01 makes the embedding term exactly DM's loss). ``layers``: indices of the
    blocks whose attention is matched (None = every block but the last, as the code).
    ``attention`` / ``embedding`` switch the two terms (ablations; attention off = DM).
    ``at``: where attention is read: ``relu`` (each block's ReLU output, before pooling, as
    the code's hooks) or ``block`` (each block's output, after pooling)."""

    p: float = 4.0
    at: str = "relu"
    lam: float = 0.01
    layers: Optional[tuple[int, ...]] = None
    attention: bool = True
    embedding: bool = True

    def __post_init__(self) -> None:
        _check(self.p > 0, f"p must be > 0, got {self.p}")
        _check(self.lam >= 0, f"lam must be >= 0, got {self.lam}")
        _check(self.attention or self.embedding, "switch on at least one of attention, embedding")
        _check(self.at in ("relu", "block"), f"at must be relu|block, got {self.at!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))


@dataclass(frozen=True, kw_only=True)
class DistillConfig(_FromDict):
    """One distillation run: dataset, method, images per class, seed."""

    method: str = "random"
    ipc: int = 10
    seed: int = 0
    coreset: CoresetConfig = field(default_factory=CoresetConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    datadam: DataDAMConfig = field(default_factory=DataDAMConfig)

    def __post_init__(self) -> None:
        _check(self.ipc >= 1, f"ipc must be >= 1, got {self.ipc}")
        if isinstance(self.coreset, dict):
            object.__setattr__(self, "coreset", CoresetConfig.from_dict(self.coreset))
        if isinstance(self.match, dict):
            object.__setattr__(self, "match", MatchConfig.from_dict(self.match))
        if isinstance(self.datadam, dict):
            object.__setattr__(self, "datadam", DataDAMConfig.from_dict(self.datadam))
