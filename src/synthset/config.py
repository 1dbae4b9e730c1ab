"""Typed, frozen, keyword-only option dataclasses shared by every run.

Each field carries its default and its help text (``opt``), the one place both live: the CLI
is generated from these fields (``synthset.cli``), and a run is reproducible from its saved
config (``to_dict`` -> JSON -> ``from_dict``). A method's own options live in the method's
file (e.g. ``methods/datadam.py``) and register with it. Invalid values raise ``ValueError``
naming the option and the fix.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Optional


def opt(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None,
        choices: tuple | None = None, cli: bool = True, default_factory: Any = dataclasses.MISSING,
        aliases: tuple[str, ...] = ()):
    """A dataclass field with its CLI help (and optionally its flag name, choices, aliases)."""
    meta = {"help": help, "flag": flag, "choices": choices, "cli": cli, "aliases": aliases}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


class Options:
    """Mixin: dict round trip (nested option dataclasses included) and strict unknown keys."""

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


def parse_duration(text: str) -> float:
    """'90s', '10m', '1.5h', '1h30m' or plain seconds -> seconds. ValueError otherwise."""
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise ValueError(f"cannot read the duration {text!r}; write e.g. 90s, 10m, 1h or 1h30m")
    return sum(float(a) * {"h": 3600, "m": 60, "s": 1}[u] for a, u in parts)


@dataclass(frozen=True, kw_only=True)
class DataConfig(Options):
    """Which dataset and where it lives."""

    name: str = opt("mnist", "dataset: a registered name (see `synthset datasets`)", flag="dataset")
    root: Optional[str] = opt(None, "data root, the folder holding each dataset's files (default: "
                                    "$SYNTHSET_DATA, else ~/.cache/synthset)", flag="data-root")
    path: Optional[str] = opt(None, "ImageFolder tree for --dataset folder", flag="data-path")
    image_size: Optional[int] = opt(None, "resize images to this square size (default: native)")
    download: bool = opt(True, "download missing files of a dataset that can be downloaded "
                               "(all but MHIST and folder); without it a missing file is an error")
    verify: bool = opt(True, "check the files' checksums (MNIST's content MD5s, MHIST's "
                             "annotations MD5 and image count); off for a modified copy")
    holdout_val: bool = opt(False, "hold the validation split out of the training split (MNIST "
                                   "500 images per class, MHIST a tenth of each class): a run then "
                                   "never reads the images its settings are chosen on")
    val_seed: int = opt(0, "seed of the validation split's indices (recorded with their hash)")

    def __post_init__(self) -> None:
        check(self.image_size is None or self.image_size >= 8,
              f"image_size must be >= 8 or None, got {self.image_size}")


@dataclass(frozen=True, kw_only=True)
class DSAConfig(Options):
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
        check(not bad, f"unknown DSA op(s) {bad}; valid ops: {', '.join(OPS)}")
        check(self.scale >= 1.0, "scale must be >= 1.0")

    def without(self, *ops: str) -> "DSAConfig":
        kept = [o for o in self.strategy.split("_") if o and o not in ops]
        return dataclasses.replace(self, strategy="_".join(kept))


PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Options):
    """The field's evaluation protocol (DC/DSA/DM ``evaluate_synset``): SGD, lr x0.1 at half."""

    epochs: int = opt(1000, "training epochs per run")
    lr: float = opt(0.01, "SGD learning rate (x0.1 at half the epochs)")
    momentum: float = opt(0.9, "SGD momentum", cli=False)
    weight_decay: float = opt(5e-4, "SGD weight decay", cli=False)
    batch_size: int = opt(256, "training batch size", flag="batch")
    batch_test: int = opt(512, "test images per forward; lower it at large image sizes")
    augment: bool = opt(True, "DSA on every training batch (off: train without augmentation)")
    dihedral: bool = opt(False, "also turn every training image by a random multiple of 90 "
                                "degrees and mirror it half the time (tissue has no orientation)")
    tta: bool = opt(False, "test-time augmentation: average each test image's softmax over its 8 "
                           "quarter turns and mirrors (use with --dihedral); the single-view "
                           "scores are recorded beside")
    cutmix: float = opt(0.0, "CutMix on this share of the training batches, labels mixed by "
                             "area, and DSA without cutout (IDC's evaluation: 0.5); 0: off")
    dsa: DSAConfig = opt(help="DSA parameters", default_factory=DSAConfig, cli=False)
    precision: str = opt("auto", "arithmetic of the training step: auto times fp32 and bf16 "
                                 "where the hardware has native bf16 and keeps the faster "
                                 "(elsewhere fp32); fp32 is the accuracy reference",
                         choices=PRECISIONS)
    channels_last: bool = opt(False, "channels-last memory format")
    compile: bool = opt(False, "torch.compile the trained network")
    dp_epsilon: Optional[float] = opt(None, "train with DP-SGD (Opacus) to this privacy budget: "
                                            "per-example gradients clipped, Gaussian noise, "
                                            "Poisson-sampled batches; the accountant's epsilon is "
                                            "recorded (fp32, uncompiled)")
    dp_delta: float = opt(1e-5, "DP-SGD's delta")
    dp_max_grad_norm: float = opt(1.0, "DP-SGD's per-example gradient clipping norm")

    def __post_init__(self) -> None:
        check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        check(self.dp_epsilon is None or self.dp_epsilon > 0,
              f"dp_epsilon must be > 0 (or None: no DP-SGD), got {self.dp_epsilon}")
        check(0 < self.dp_delta < 1, f"dp_delta must be in (0, 1), got {self.dp_delta}")
        check(self.dp_max_grad_norm > 0, f"dp_max_grad_norm must be > 0, got {self.dp_max_grad_norm}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(0.0 <= self.cutmix <= 1.0, f"cutmix must be a share in [0, 1], got {self.cutmix}")
        check(not (self.cutmix and self.dp_epsilon is not None),
              "cutmix mixes examples, which DP-SGD's per-example accounting does not allow: "
              "drop --cutmix or --dp-epsilon")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.batch_test >= 1, f"batch_test must be >= 1, got {self.batch_test}")
        check(self.precision in PRECISIONS,
              f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if isinstance(self.dsa, dict):
            object.__setattr__(self, "dsa", DSAConfig.from_dict(self.dsa))


@dataclass(frozen=True, kw_only=True)
class EvalConfig(Options):
    """Runs x architectures of the training protocol on one synthetic set."""

    models: tuple[str, ...] = opt(("ConvNet",), "comma-separated architectures, e.g. "
                                                "ConvNet,LeNet,ResNet18", aliases=("model",))
    runs: int = opt(5, "independently initialised training runs per architecture")
    seed: int = opt(0, "seed of the runs' generators")
    split: str = opt("test", "score on the test split, or on the validation split carved from "
                             "the training split (where settings are chosen); each split keeps "
                             "its own results file", choices=("test", "val"))
    train: TrainConfig = opt(default_factory=TrainConfig, cli=False)

    def __post_init__(self) -> None:
        check(self.runs >= 1, f"runs must be >= 1, got {self.runs}")
        check(self.split in ("test", "val"), f"split must be test or val, got {self.split!r}")
        check(len(self.models) >= 1, "models must name at least one architecture")
        if isinstance(self.train, dict):
            object.__setattr__(self, "train", TrainConfig.from_dict(self.train))


@dataclass(frozen=True, kw_only=True)
class ComputeConfig(Options):
    """Where a command computes: the device, and on a CPU how many processes train runs at
    once. How each pass computes there (precision, compile, memory format) is the run's own
    config (``EngineConfig``, ``TrainConfig``), resolved with this into one
    ``synthset.compute.Compute``."""

    device: str = opt("auto", "auto | cpu | cuda[:N]")
    workers: int = opt(1, "CPU: train this many runs at once in separate processes")

    def __post_init__(self) -> None:
        check(self.workers >= 1, f"workers must be >= 1, got {self.workers}")


FEATURE_SPACES = ("trained", "random", "pixels")


@dataclass(frozen=True, kw_only=True)
class CoresetConfig(Options):
    """The feature space of herding and k-center (and of ``--init herding``)."""

    features: str = opt("trained", "herding/k-center feature space: the embedding of a ConvNet "
                                   "trained on the full training split (the DC paper's choice), "
                                   "of a random one, or pixels", choices=FEATURE_SPACES)
    feature_model: Optional[str] = opt(None, "network of the feature space (default: --model)")
    feature_epochs: Optional[int] = opt(None, "epochs to train the feature network (default: "
                                              "enough for 200 SGD steps)")

    def __post_init__(self) -> None:
        check(self.features in FEATURE_SPACES,
              f"features must be trained|random|pixels, got {self.features!r}")
        check(self.feature_epochs is None or self.feature_epochs >= 1,
              "feature_epochs must be >= 1 (or None for automatic)")


INITS = ("real", "noise", "herding")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True, kw_only=True)
class EngineConfig(Options):
    """The method-independent part of a learned distillation run (``synthset.engine``):
    SGD on the synthetic images, one method step per iteration. ``iterations``,
    ``batch_real`` and ``lr_img`` None take the method's official defaults."""

    iterations: Optional[int] = opt(None, "iterations (default: the method's; DM 20,000, "
                                          "DataDAM 8,000, DC/DSA 1,000)")
    lr_img: Optional[float] = opt(None, "SGD learning rate on the images (default: the method's; "
                                        "DM/DataDAM 1.0, DC/DSA 0.1)")
    momentum: float = opt(0.5, "SGD momentum on the images", flag="momentum-img")
    batch_real: Optional[int] = opt(None, "real images per class per iteration (default: the "
                                          "method's; DM 256, DataDAM 64, DC/DSA 256)")
    init: str = opt("real", "start from random real images, noise, or the herding coreset (in "
                            "the --features space)", choices=INITS)
    model: str = opt("ConvNet", "network the method matches in (and the coresets' feature net)")
    precision: str = opt("auto", "arithmetic of the networks' passes: auto picks per pass "
                                 "(real forward, synthetic forward + backward) the faster of "
                                 "fp32 and bf16 where bf16 is native, else fp32",
                         choices=PRECISIONS)
    channels_last: bool = opt(False, "channels-last memory format")
    compile: bool = opt(False, "torch.compile the method's forward (and backward) passes")
    checkpoint_every: int = opt(500, "iterations between checkpoints (0: only at the end)")
    max_time: Optional[str] = opt(None, "time budget, e.g. 10m or 1h: stop after the iteration "
                                        "that passes it (the set records the iterations done)")
    eval_every: int = opt(0, "evaluate the current set every K iterations into log.jsonl "
                             "(never used to pick the saved set)")
    eval_epochs: int = opt(300, "epochs of that evaluation")
    eval_runs: int = opt(1, "runs of that evaluation")
    ema: float = opt(0.0, "save an exponential moving average of the images with this decay "
                          "(e.g. 0.97) instead of the last iterate (0: the last iterate)")
    lr_schedule: str = opt("constant", "image lr schedule; cosine decays the lr to 0 over "
                                       "--iterations", choices=SCHEDULES)
    factor: int = opt(1, "multi-formation (IDC): each stored image holds FxF lower-resolution "
                         "images, so models train on F^2 x ipc images per class (1: plain)")
    dsa: DSAConfig = opt(default_factory=DSAConfig, cli=False)

    def __post_init__(self) -> None:
        check(self.iterations is None or self.iterations >= 0, "iterations must be >= 0")
        check(self.lr_img is None or self.lr_img > 0, f"lr_img must be > 0, got {self.lr_img}")
        check(self.batch_real is None or self.batch_real >= 1, "batch_real must be >= 1")
        check(self.init in INITS, f"init must be real|noise|herding, got {self.init!r}")
        check(self.precision in PRECISIONS,
              f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        check(self.lr_schedule in SCHEDULES,
              f"lr_schedule must be constant|cosine, got {self.lr_schedule!r}")
        check(self.lr_schedule == "constant" or self.iterations is not None,
              "lr_schedule='cosine' decays over --iterations: give --iterations")
        check(self.factor >= 1, f"factor must be >= 1 (1 = plain images), got {self.factor}")
        check(0.0 <= self.ema < 1.0,
              f"ema must be in [0, 1) (0 = save the last iterate), got {self.ema}")
        check(self.checkpoint_every >= 0 and self.eval_every >= 0,
              "checkpoint_every and eval_every must be >= 0")
        check(self.eval_epochs >= 1 and self.eval_runs >= 1, "eval_epochs and eval_runs must be >= 1")
        if self.max_time is not None:
            check(self.max_seconds > 0, f"max_time must be positive, got {self.max_time!r}")
        if isinstance(self.dsa, dict):
            object.__setattr__(self, "dsa", DSAConfig.from_dict(self.dsa))

    @property
    def max_seconds(self) -> Optional[float]:
        return None if self.max_time is None else parse_duration(self.max_time)


# Engine options whose change does not change the images a run makes (resume may change them).
VOLATILE_ENGINE = ("checkpoint_every", "eval_every", "eval_epochs", "eval_runs", "max_time")


@dataclass(frozen=True, kw_only=True)
class DistillConfig(Options):
    """One distillation run: method, images per class, seed, the shared engine and feature
    options, and the method's own options (``options``, the method's dataclass as a dict;
    the method's ``options(d)`` turns it back into the dataclass)."""

    method: str = opt("random", "method (see `synthset methods`)")
    ipc: int = opt(10, "images per class")
    seed: int = opt(0, "seed of the run's generator (networks, batches, augmentation)")
    coreset: CoresetConfig = opt(default_factory=CoresetConfig, cli=False)
    engine: EngineConfig = opt(default_factory=EngineConfig, cli=False)
    options: dict = opt(default_factory=dict, cli=False)
    recipe: Optional[str] = opt(None, "start from a shipped recipe's settings (see `synthset "
                                      "recipes`); options given here override it (saved as "
                                      "name@version beside every value it set)")

    def __post_init__(self) -> None:
        check(self.ipc >= 1, f"ipc must be >= 1, got {self.ipc}")
        if isinstance(self.coreset, dict):
            object.__setattr__(self, "coreset", CoresetConfig.from_dict(self.coreset))
        if isinstance(self.engine, dict):
            object.__setattr__(self, "engine", EngineConfig.from_dict(self.engine))
        if not isinstance(self.options, dict):
            object.__setattr__(self, "options", dataclasses.asdict(self.options))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DistillConfig":
        return super().from_dict(legacy_distill(d))


# Fields of the former shared MatchConfig that are now the matching methods' own options.
_MATCHING_KEYS = ("embed_chunk", "inner_steps", "net_pool", "net_pool_refresh",
                  "net_train_steps", "net_train_batch", "net_train_lr")


def legacy_distill(d: dict[str, Any]) -> dict[str, Any]:
    """A config saved before the engine split (``match`` + ``datadam`` keys) in today's
    shape, so old run directories load, evaluate, report and resume."""
    if "match" not in d and "datadam" not in d:
        return d
    d = dict(d)
    match = dict(d.pop("match", {}))
    datadam = d.pop("datadam", {})
    options = {k: match.pop(k) for k in _MATCHING_KEYS if k in match}
    if d.get("method") == "datadam":
        options.update(datadam)
    if match.get("lr_img") == 1.0 and d.get("method") in ("dm", "datadam"):
        match["lr_img"] = None  # 1.0 was the shared default; it is now the method's
    d["engine"] = match
    d.setdefault("options", options)
    return d
