"""SyntheticSet: the product of a distillation run, stored as safetensors + JSON.

Loading never unpickles. Exports: an ImageFolder of PNGs, the DC-Bench ``.pt`` layout
``{'data': [[images, labels]]}``, and an image-grid PNG (de-normalised). A set made with
multi-formation (``factor`` > 1, ``synthset.formation``) stores factor x factor tiles per
image; ``decoded()`` and the exports give the images a model trains on, the grid shows
what is stored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file

from .atomic import replacing, write_json, write_safetensors
from .data.base import DataError, DatasetInfo, denormalize
from .formation import decode, tile_size
from .provenance import versions

TENSORS = "synthetic.safetensors"
META = "synthetic.json"
FORMAT_VERSION = 1


@dataclass
class SyntheticSet:
    """Normalised float images ``(N, C, H, W)``, int64 labels and what produced them;
    ``factor``: multi-formation tiles per side of each stored image (1 = plain images)."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    metadata: dict[str, Any] = field(default_factory=dict)
    factor: int = 1

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"images must be (N, C, H, W) with one label each; got "
                             f"{tuple(self.images.shape)} and {tuple(self.labels.shape)}")
        if self.images.shape[0] == 0:
            raise ValueError("the set holds no images; a synthetic set needs at least one "
                             "image (check the experiment index or the file it came from)")
        if self.images.shape[1] != self.info.channels or tuple(self.images.shape[2:]) != tuple(self.info.size):
            raise ValueError(f"images {tuple(self.images.shape[1:])} do not match the dataset "
                             f"({self.info.channels}, {self.info.size[0]}, {self.info.size[1]})")
        tile_size(*self.info.size, self.factor)  # ValueError on a factor that does not divide

    def decoded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels a model trains on (the stored ones when ``factor`` is 1)."""
        with torch.no_grad():
            return decode(self.images.detach(), self.labels, self.factor)

    @property
    def n_train(self) -> int:
        """How many images a model trains on (``factor``^2 per stored image)."""
        return len(self.labels) * self.factor ** 2

    @property
    def ipc(self) -> int:
        return int(torch.bincount(self.labels).max().item())

    def save(self, run_dir: str | Path) -> Path:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        tensors = {"images": self.images.detach().float().cpu().contiguous(),
                   "labels": self.labels.cpu().to(torch.int64).contiguous()}
        write_safetensors(run_dir / TENSORS, tensors)
        meta = {"format": FORMAT_VERSION, "dataset": self.info.to_dict(), "factor": self.factor,
                "metadata": {"versions": versions(), **self.metadata}}
        write_json(run_dir / META, meta)
        return run_dir

    @staticmethod
    def _read_meta(run_dir: Path, needed: tuple[str, ...]) -> tuple[DatasetInfo, dict, int]:
        """(dataset, metadata, factor) from the JSON; DataError where a ``needed`` file is
        missing or the JSON is corrupt."""
        if not all((run_dir / f).exists() for f in needed):
            raise DataError(f"{run_dir} is not a synthset run directory (no {' / '.join(needed)}); "
                            f"create one with `synthset distill ... --out {run_dir}`")
        try:
            meta = json.loads((run_dir / META).read_text())
            return (DatasetInfo.from_dict(meta["dataset"]), meta.get("metadata", {}),
                    int(meta.get("factor", 1)))
        except Exception as e:
            raise DataError(f"{run_dir}: the synthetic set is corrupt ({e}); re-run distill") from e

    @classmethod
    def read_recipe(cls, run_dir: str | Path) -> tuple[DatasetInfo, dict]:
        """The set's dataset and metadata (how it was made) from its JSON alone: what a
        command that remakes the recipe needs, in a folder whose tensors were not kept."""
        return cls._read_meta(Path(run_dir), (META,))[:2]

    @classmethod
    def load(cls, run_dir: str | Path) -> "SyntheticSet":
        run_dir = Path(run_dir)
        info, metadata, factor = cls._read_meta(run_dir, (TENSORS, META))
        try:
            t = load_file(str(run_dir / TENSORS))
        except Exception as e:
            raise DataError(f"{run_dir}: the synthetic set is corrupt ({e}); re-run distill") from e
        return cls(images=t["images"], labels=t["labels"], info=info, metadata=metadata, factor=factor)

    def pixels(self) -> torch.Tensor:
        """De-normalised stored images in [0, 1]."""
        return denormalize(self.images.detach().float().cpu(), self.info.mean, self.info.std)

    def export_png_folder(self, out: str | Path) -> Path:
        """One PNG per training image (decoded), in one folder per class."""
        out = Path(out)
        images, labels = self.decoded()
        px = (denormalize(images.float().cpu(), self.info.mean, self.info.std).clamp(0, 1) * 255
              ).round().to(torch.uint8)
        counters: dict[int, int] = {}
        for img, lab in zip(px, labels.tolist()):
            d = out / self.info.class_names[lab]
            d.mkdir(parents=True, exist_ok=True)
            k = counters.get(lab, 0)
            counters[lab] = k + 1
            _to_pil(img).save(d / f"{k:04d}.png")
        return out

    def export_dcbench(self, path: str | Path) -> Path:
        """DC-Bench layout: ``torch.save({'data': [[images, labels]]})``, decoded."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        images, labels = self.decoded()
        with replacing(path) as tmp:
            torch.save({"data": [[images.cpu(), labels.cpu()]]}, tmp)
        return path

    def grid(self, path: str | Path, *, max_per_class: int = 10, scale: int = 0) -> Path:
        """Save a grid PNG: one row per class, up to ``max_per_class`` images per row."""
        px = self.pixels()
        c, h, w = px.shape[1:]
        classes = self.info.num_classes
        cols = min(max_per_class, self.ipc)
        pad = 2
        canvas = torch.ones(c, classes * (h + pad) + pad, cols * (w + pad) + pad)
        for k in range(classes):
            idx = torch.nonzero(self.labels == k).flatten()[:cols]
            for j, i in enumerate(idx.tolist()):
                y0, x0 = pad + k * (h + pad), pad + j * (w + pad)
                canvas[:, y0:y0 + h, x0:x0 + w] = px[i]
        img = _to_pil((canvas * 255).round().to(torch.uint8))
        scale = scale or max(1, 64 // h)
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path)
        return path


def _to_pil(chw_uint8: torch.Tensor) -> Image.Image:
    a = chw_uint8.numpy()
    return Image.fromarray(a[0], mode="L") if a.shape[0] == 1 else Image.fromarray(a.transpose(1, 2, 0))


@dataclass
class MethodOutput:
    """What a method returns before it becomes a SyntheticSet: normalised float images
    (stored, i.e. tiles when ``factor`` > 1), their labels, and what the run measured."""

    images: torch.Tensor
    labels: torch.Tensor
    factor: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
