"""Contract tests over the registries: every method on every dataset, on tiny fake data in
the datasets' real file formats (no ../shared/data needed); every module imports alone; no
import cycle. A new method, dataset or model is covered by these tests as it registers."""
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import synthset
from synthset.config import DataConfig
from synthset.data import DATASETS, load_dataset
from synthset.distill import distill
from synthset.methods import METHODS
from synthset.models import MODELS, build_model
from synthset.synthetic import SyntheticSet

from helpers import distill_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    """Each dataset's own fake files (``DatasetSpec.fake``) under one root."""
    root = tmp_path_factory.mktemp("fake-data")
    return root, {name: spec.fake(root) for name, spec in DATASETS.items()}


def data_config(name: str, fake_root) -> DataConfig:
    return fake_root[1][name]


@pytest.mark.parametrize("dataset", DATASETS.names())
def test_every_dataset_loads_and_describes_itself(dataset, fake_root):
    spec = DATASETS.get(dataset)
    data = data_config(dataset, fake_root)
    train, test = load_dataset(data, "train"), load_dataset(data, "test")
    assert len(train) and len(test) and train.info.num_classes >= 2
    info = spec.info(data)
    if info is not None:
        assert (info.channels, info.num_classes) == (train.info.channels, train.info.num_classes)
    assert spec.train_config(synthset.config.TrainConfig()).dsa.strategy  # an augmentation policy


@pytest.mark.parametrize("method", METHODS.names())
@pytest.mark.parametrize("dataset", [
    pytest.param(n, marks=pytest.mark.slow) if DATASETS.get(n).smoke_slow else n
    for n in DATASETS.names()])
def test_every_method_on_every_dataset(method, dataset, fake_root, tmp_path):
    m = METHODS.get(method)
    cfg = distill_config(method, 1, features="random", model="ConvNetD2", **m.smoke)
    sset = distill(data_config(dataset, fake_root), cfg, out_dir=tmp_path / "run", progress=False,
                   log=lambda s: None)
    loaded = SyntheticSet.load(tmp_path / "run")
    assert torch.equal(loaded.images, sset.images) and torch.isfinite(loaded.images).all()
    assert loaded.metadata["method"] == method and "distill_flops" in loaded.metadata
    assert m.order is not None and m.color and m.citation  # reports read these


@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_embeds_and_classifies(model):
    net = build_model(model, 3, 10, (128, 128))  # large enough for the deepest ConvNet
    x = torch.zeros(2, 3, 128, 128)
    assert net(x).shape == (2, 10) and net.embed(x).shape[0] == 2 and len(net.blocks(x)) >= 1


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(synthset.__path__, "synthset."))


@pytest.mark.parametrize("module", _modules())
def test_each_module_imports_alone(module):
    out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_no_import_cycle():
    tool = ROOT.parent / "shared" / "tools" / "import_cycles.py"
    if tool.exists():
        out = subprocess.run([sys.executable, str(tool), str(ROOT / "src"), "synthset"],
                             capture_output=True, text=True)
        assert "cycles: 0" in out.stdout, out.stdout
    # our own check, runnable anywhere: module-level imports inside the package form a DAG
    import ast
    graph = {}
    for path in (ROOT / "src" / "synthset").rglob("*.py"):
        rel = path.relative_to(ROOT / "src").with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        pkg = name if rel.name == "__init__" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(path.read_text()).body:  # top level only: lazy imports are fine
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                deps.add(target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("synthset")}
        graph[name] = {d for d in deps if d != name}

    def known(d):
        while d and d not in graph:
            d = d.rsplit(".", 1)[0] if "." in d else ""
        return d
    state = {}

    def visit(n, stack):
        state[n] = 1
        for d in map(known, graph.get(n, ())):
            if not d or d == n or n.startswith(d + "."):  # a package's own __init__ is not a cycle
                continue
            assert state.get(d) != 1, f"import cycle: {' -> '.join(stack + [n, d])}"
            if d not in state:
                visit(d, stack + [n])
        state[n] = 2
    for n in graph:
        if n not in state:
            visit(n, [])


def test_no_function_in_the_package_is_over_60_lines():
    """Small functions (docs/design.md): one that grows past 60 lines is split."""
    import ast
    long = []
    for path in (ROOT / "src" / "synthset").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long
