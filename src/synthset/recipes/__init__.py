"""Named, versioned recipes: the settings of a measured run, shipped as TOML files beside
this module (one file per recipe), so ``synthset distill --recipe NAME`` reproduces them.

A recipe's sections are the option dataclasses' fields (``synthset.config``):
``[distill]`` method / ipc / seed, ``[data]``, ``[engine]``, ``[coreset]``, ``[options]`` (the
method's own options), ``[evaluate]`` (the evaluation its figures were measured with) and
``[measured]`` (what that run gave, with the file it is recorded in, and ``selected_on``:
where its settings were chosen, ``val`` for every new recipe). A recipe changes only
what it names; everything else keeps its default, and an explicit option overrides it.
A recipe's version goes up whenever its settings change, so ``name@version`` in a run's
config names exactly what ran.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

from ..config import CoresetConfig, DataConfig, DistillConfig, EngineConfig, EvalConfig, TrainConfig

# recipe section -> (option dataclass, CLI destination prefix; "" = a top-level flag)
SECTIONS: dict[str, tuple[Any, str]] = {
    "distill": (DistillConfig, ""), "data": (DataConfig, "data"), "engine": (EngineConfig, "engine"),
    "coreset": (CoresetConfig, "coreset"), "options": (None, "method"),
}
_EVAL_FIELDS = {f.name for f in dataclasses.fields(EvalConfig)} | {
    f.name for f in dataclasses.fields(TrainConfig)}
_DISTILL_FIELDS = ("method", "ipc", "seed")
# where a recipe's settings were chosen: on the validation split (the rule), on the test
# split (recipes made before the validation split existed, labelled as such), or the paper's
SELECTED_ON = ("val", "test", "paper")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """One shipped recipe (see the module docstring for its sections)."""

    name: str
    version: int
    summary: str
    distill: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    coreset: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """``name@version``: what a run's config records."""
        return f"{self.name}@{self.version}"

    def settings(self) -> dict[str, Any]:
        """The recipe's values keyed by CLI destination (``engine.iterations``, ``method``...)."""
        out: dict[str, Any] = {}
        for section, (_, prefix) in SECTIONS.items():
            for key, value in getattr(self, section).items():
                key = "name" if (section, key) == ("data", "dataset") else key
                out[f"{prefix}.{key}" if prefix else key] = (
                    tuple(value) if isinstance(value, list) else value)
        return out

    def configs(self, *, data: Optional[dict] = None, distill: Optional[dict] = None,
                engine: Optional[dict] = None, coreset: Optional[dict] = None,
                options: Optional[dict] = None) -> tuple[DataConfig, DistillConfig]:
        """The recipe as (DataConfig, DistillConfig), each section updated by the overrides:
        ``recipe("mnist-dm-fast").configs(engine={"iterations": 50})``."""
        d = {**self.data, **(data or {})}
        if "dataset" in d:
            d["name"] = d.pop("dataset")
        top = {**self.distill, **(distill or {})}
        cfg = DistillConfig(**top, recipe=self.tag,
                            engine=EngineConfig.from_dict({**self.engine, **(engine or {})}),
                            coreset=CoresetConfig.from_dict({**self.coreset, **(coreset or {})}),
                            options={**self.options, **(options or {})})
        return DataConfig.from_dict(d), cfg

    def evaluate_command(self, run_dir: str = "RUN_DIR") -> str:
        """The ``synthset evaluate`` command its measured figures came from."""
        flags = []
        for key, value in self.evaluate.items():
            flag = "--" + ("batch" if key == "batch_size" else key.replace("_", "-"))
            if value is True:
                flags.append(flag)
            elif isinstance(value, list):
                flags.append(f"{flag} {','.join(map(str, value))}")
            else:
                flags.append(f"{flag} {value}")
        return " ".join(["synthset evaluate", run_dir, *flags])


def _check(name: str, raw: dict[str, Any]) -> Recipe:
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"recipe {name}: unknown section(s) {sorted(unknown)}; "
                         f"known: {', '.join(sorted(known))}")
    for section, (cls, _) in SECTIONS.items():
        keys = set(raw.get(section, {}))
        if section == "distill":
            bad = keys - set(_DISTILL_FIELDS)
        elif section == "data":
            bad = keys - {f.name for f in dataclasses.fields(DataConfig)} - {"dataset"}
        elif cls is not None:
            bad = keys - {f.name for f in dataclasses.fields(cls)}
        else:
            bad = set()
        if bad:
            raise ValueError(f"recipe {name}: unknown key(s) {sorted(bad)} in [{section}]")
    bad = set(raw.get("evaluate", {})) - _EVAL_FIELDS
    if bad:
        raise ValueError(f"recipe {name}: unknown key(s) {sorted(bad)} in [evaluate]")
    selected = raw.get("measured", {}).get("selected_on")
    if raw.get("measured") and selected not in SELECTED_ON:
        raise ValueError(f"recipe {name}: [measured] needs selected_on = one of "
                         f"{', '.join(SELECTED_ON)} (where its settings were chosen), got {selected!r}")
    if raw.get("name") != name:
        raise ValueError(f"recipe file {name}.toml names itself {raw.get('name')!r}")
    return Recipe(**raw)


def recipes() -> dict[str, Recipe]:
    """Every shipped recipe by name, in name order."""
    out = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            name = entry.name[:-5]
            out[name] = _check(name, tomllib.loads(entry.read_text(encoding="utf-8")))
    return out


def recipe(name: str) -> Recipe:
    """The shipped recipe ``name`` (or ``name@version``, which must be the shipped version)."""
    base, _, version = name.partition("@")
    known = recipes()
    if base not in known:
        raise ValueError(f"unknown recipe {base!r}; shipped recipes: {', '.join(known)} "
                         f"(see `synthset recipes`)")
    r = known[base]
    if version and version != str(r.version):
        raise ValueError(f"recipe {base} is at version {r.version} in this synthset, not "
                         f"{version}; its settings are in the run's config.json")
    return r
