"""Reports and comparisons over run directories: the numbers in the tables against the runs
they come from, the FLOPs ratio against its closed form, self-contained HTML, valid PNGs."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from synthset.cli import main
from synthset.report.plots import accuracy_vs_flops
from synthset.data.mnist import INFO
from synthset.flops import inference_flops, train_step_flops
from synthset.models import build_model
from synthset.report import accuracy_table, accuracy_tables, build_report, cost_table, crossarch, load_run


def model_flops(model, info):
    """(inference, training) FLOPs per image, as an evaluation records them in eval.json."""
    net = build_model(model, info.channels, len(info.class_names), info.size)
    shape = (info.channels, *info.size)
    return inference_flops(net, shape), train_step_flops(net, shape)


def _flops(model):
    infer, train = model_flops(model, INFO)
    return {"inference_per_image": infer, "train_per_image_step": train}
from synthset.synthetic import SyntheticSet


def make_run(path, method, ipc, accs, *, models=("ConvNet",), epochs=1000, extra_runs=(), curve=True, factor=1):
    n = 10 * ipc
    g = torch.Generator().manual_seed(ipc)
    sset = SyntheticSet(images=torch.randn(n, 1, 28, 28, generator=g),
                        labels=torch.arange(10).repeat_interleave(ipc), info=INFO, factor=factor,
                        metadata={"method": method, "ipc": ipc, "distill": {"method": method, "ipc": ipc},
                                  "distill_seconds": 12.5, "distill_flops": 3e12, "iterations": 20,
                                  "n_train_real": 60000, "peak_memory_mib": 900.0})
    sset.save(path)
    sset.grid(path / "grid.png")
    lines = []
    for model in models:
        for r, a in enumerate(accs):
            lines.append({"model": model, "run": r, "seed": r, "accuracy": a, "balanced_accuracy": a - 1,
                          "auc": None, "epochs": epochs, "steps": 1, "train_seconds": 10.0 + r,
                          "test_seconds": 1.0, "final_train_loss": 0.1, "config_key": "full"})
    lines += list(extra_runs)
    (path / "eval_runs.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (path / "eval.json").write_text(json.dumps({"models": {m: {"flops": _flops(m)} for m in models}}))
    if curve:
        (path / "checkpoint.json").write_text(json.dumps(
            {"iteration": 20, "history": [10.0 / (i + 1) for i in range(20)],
             "elapsed": [0.5 * (i + 1) for i in range(20)]}))
        (path / "log.jsonl").write_text(json.dumps({"iteration": 10, "accuracy": 90.0}) + "\n"
                                        + json.dumps({"iteration": 20, "accuracy": 91.0}) + "\n")
    return path


def make_full(path, accs, epochs=20):
    path.mkdir(parents=True)
    rep = {"models": {"ConvNet": {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "runs": accs,
                                  "epochs": epochs, "balanced_accuracy": {"runs": accs},
                                  "train_seconds": [100.0] * len(accs), "flops": _flops("ConvNet")}},
           "config": {"data": {"name": "mnist"}, "train": {"epochs": epochs}}, "n_train": 60000}
    (path / "eval.json").write_text(json.dumps(rep))
    return path


@pytest.fixture
def study(tmp_path):
    short = [{"model": "ConvNet", "run": r, "seed": r, "accuracy": 50.0, "balanced_accuracy": 50.0, "auc": None,
              "epochs": 300, "steps": 1, "train_seconds": 1.0, "test_seconds": 1.0, "final_train_loss": 0.1,
              "config_key": "short"} for r in range(3)]
    runs = [make_run(tmp_path / "random1", "random", 1, [60.0, 64.0], curve=False),
            make_run(tmp_path / "dm1", "dm", 1, [88.0, 90.0, 89.0]),
            make_run(tmp_path / "dm10", "dm", 10, [97.0, 97.5], models=("ConvNet", "MLP", "LeNet"),
                     extra_runs=short),
            make_full(tmp_path / "full", [99.0, 99.4])]
    return runs


def test_accuracy_table_cells_are_the_runs_mean_and_std(study):
    """One table per protocol (runs x epochs), stated in its title; cells carry no protocol."""
    recs = [load_run(p) for p in study]
    tables = accuracy_tables(recs, "mnist")
    assert [t.title for t in tables] == ["mnist: accuracy (ConvNet, 3 runs x 1000 epochs)",
                                         "mnist: accuracy (ConvNet, 2 runs x 1000 epochs)"]
    three, two = ({r[0]: r for r in t.rows} for t in tables)
    assert tables[0].header[:2] == ["method", "IPC 1"]
    assert three["dm"][1] == f"{np.mean([88, 90, 89]):.2f} ± {np.std([88, 90, 89]):.2f}"
    # the 1000-epoch evaluation wins over a 3-run 300-epoch one of the same set
    assert tables[1].header[:3] == ["method", "IPC 1", "IPC 10"]
    assert two["dm"][2] == "97.25 ± 0.25" and two["dm"][1] == "-"
    assert two["random"][1] == "62.00 ± 2.00" and two["random"][-1] == "64.9 / 95.1"
    assert two["dm"][-1] == "89.7 / 97.5"
    full = "full data (60000 images; 2 runs x 20 epochs)"
    assert three[full][1].startswith("99.20 ± 0.20") and two[full][-1] == "99.6"
    assert "(" not in "".join(c for t in tables for row in t.rows for c in row[1:-1])


def test_training_flops_ratio_is_the_closed_form(study):
    recs = [load_run(p) for p in study]
    _, per_img = model_flops("ConvNet", INFO)
    t, points, full = cost_table(recs, "mnist")
    rows = {r[0]: r for r in t.rows}
    # IPC 10: 100 images x 1000 epochs against 60,000 images x 20 epochs
    assert rows["dm IPC 10"][-1] == f"{100 * 100 * 1000 / (60000 * 20):.3g}% (12x fewer)"
    assert full[0] == pytest.approx(per_img * 60000 * 20)
    dm10 = [p for p in points if p.series == "dm (1000 ep)" and p.x_label == "IPC 10"][0]
    assert dm10.flops == pytest.approx(per_img * 100 * 1000) and dm10.mean == pytest.approx(97.25)
    assert rows["dm IPC 1"][3] == "3 TFLOP" and rows["dm IPC 1"][4] == "900 MiB"


def test_cost_rows_of_one_method_and_ipc_name_their_directories(study, tmp_path):
    """Two DM IPC 10 runs that differ in options get one cost row each, told apart by directory;
    a method and IPC that appear once keep the plain label."""
    make_run(tmp_path / "dm10-lr5", "dm", 10, [96.0, 96.5])
    recs = [load_run(p) for p in study] + [load_run(tmp_path / "dm10-lr5")]
    t, _, _ = cost_table(recs, "mnist")
    names = [r[0] for r in t.rows]
    assert "dm IPC 10 [dm10]" in names and "dm IPC 10 [dm10-lr5]" in names
    assert "dm IPC 1" in names and "dm IPC 10" not in names


def test_plot_series_keep_sets_of_different_options_apart(study, tmp_path):
    """Two DM IPC 10 sets (other options): each DM set is named by its directory (with the
    IPC taken out, so a study's dm-ipc10-x and dm-ipc50-x would share a line); a factor-2 set
    is its own series, all still coloured as DM."""
    make_run(tmp_path / "dm10-lr5", "dm", 10, [96.0, 96.5])
    recs = [load_run(p) for p in study] + [load_run(tmp_path / "dm10-lr5")]
    f2 = load_run(tmp_path / "dm10-lr5")
    f2.factor, f2.path = 2, tmp_path / "dm10-f2"
    _, points, _ = cost_table(recs + [f2], "mnist")
    series = {(p.series, p.x_label) for p in points if p.method == "dm"}
    assert series == {("dm [dm1] (1000 ep)", "IPC 1"), ("dm [dm10] (1000 ep)", "IPC 10"),
                      ("dm [dm10-lr5] (1000 ep)", "IPC 10"), ("dm (factor 2) (1000 ep)", "IPC 10")}
    out = accuracy_vs_flops(points, None, tmp_path / "p.png", model="ConvNet")
    with Image.open(out) as im:
        assert im.format == "PNG"


def test_plot_labels_tell_apart_one_ipc_evaluated_for_different_epochs(study, tmp_path):
    recs = [load_run(p) for p in study]
    _, points, _ = cost_table(recs, "mnist")
    assert {p.x_label for p in points} == {"IPC 1", "IPC 10"}  # one epoch count per IPC: plain
    make_run(tmp_path / "random10", "random", 10, [93.0, 94.0], curve=False, epochs=300)
    recs.append(load_run(tmp_path / "random10"))
    _, points, _ = cost_table(recs, "mnist")
    assert {p.x_label for p in points} == {"IPC 1", "IPC 10, 1000 ep", "IPC 10, 300 ep"}


def test_plot_series_never_join_evaluations_of_different_length(tmp_path):
    """DM at IPC 1 evaluated for 1000 epochs and DM at IPC 10 for 300: two labelled series,
    not one line through mixed protocols; the cost table states epochs per row then."""
    recs = [load_run(make_run(tmp_path / "dm1", "dm", 1, [88.0, 90.0])),
            load_run(make_run(tmp_path / "dm10", "dm", 10, [95.0, 96.0], epochs=300))]
    table, points, _ = cost_table(recs, "mnist")
    assert {(p.series, p.x_label) for p in points} == {("dm (1000 ep)", "IPC 1"), ("dm (300 ep)", "IPC 10")}
    assert table.header[5] == "train FLOPs (ConvNet)" and table.rows[0][5].endswith("(1000 ep)")
    same = [load_run(make_run(tmp_path / "dm1b", "dm", 1, [88.0, 90.0]))]
    table, _, _ = cost_table(same, "mnist")
    assert table.header[5] == "train FLOPs (ConvNet, 1000 epochs)" and "ep)" not in table.rows[0][5]


def test_report_html_is_self_contained_and_the_figures_are_pngs(study, tmp_path):
    out = tmp_path / "report"
    paths = build_report(study, out, title="study", command="synthset report ...")
    page = paths["html"].read_text()
    assert "<table>" in page and page.count("data:image/png;base64,") >= 5
    assert not re.search(r"src=['\"](?!data:)", page)  # nothing fetched from disk or the web
    md = paths["markdown"].read_text()
    for name in re.findall(r"\]\(([^)]+\.png)\)", md):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width >= 32
    for name in ("mnist_crossarch.png", "mnist_curves.png", "mnist_accuracy_vs_flops.png"):
        assert (out / name).exists()
    assert "cross-architecture" in md and "| dm IPC 10 |" in md and "MLP" in md


def test_report_draws_a_missing_grid_from_the_saved_set(study, tmp_path):
    (study[1] / "grid.png").unlink()
    build_report(study, tmp_path / "report", title="study")
    with Image.open(tmp_path / "report" / "grid_mnist_dm_ipc1.png") as im:
        assert im.format == "PNG" and max(im.size) >= 28 * 10  # one row per class


def test_compare_and_report_commands(study, tmp_path, capsys):
    assert main(["compare", *map(str, study)]) == 0
    out = capsys.readouterr().out
    assert "mnist: accuracy (ConvNet, 2 runs x 1000 epochs)" in out and "97.25 ± 0.25" in out
    assert main(["report", *map(str, study), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").exists()
    assert main(["report", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "r2")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_report_on_a_real_distill_and_evaluate(tmp_path, shared_root, capsys):
    """End to end: a 2-iteration DM run and a 1-epoch evaluation give a report whose loss
    curve has the run's two iterations."""
    run = tmp_path / "dm"
    assert main(["distill", "--method", "dm", "--ipc", "1", "--iterations", "2", "--batch-real", "8",
                 "--out", str(run), "--data-root", str(shared_root)]) == 0
    assert main(["evaluate", str(run), "--epochs", "1", "--runs", "1", "--device", "cpu"]) == 0
    rec = load_run(run)
    assert len(rec.curve[0]) == 2 and len(rec.curve[1]) == 2 and rec.curve[1][1] >= rec.curve[1][0]
    assert rec.metadata["distill_flops"] == 2 * rec.metadata["flops_per_iteration"] > 0
    assert rec.results["ConvNet"].epochs == 1
    paths = build_report([run], tmp_path / "rep")
    assert "dm IPC 1" in paths["markdown"].read_text()


def test_crossarch_row_uses_one_epoch_budget(tmp_path):
    """ConvNet has a 1000-epoch evaluation and a 300-epoch one; the other models only 300:
    the matrix row compares all at 300 epochs, the accuracy table keeps the 1000-epoch one."""
    extra = [{"model": m, "run": r, "seed": r, "accuracy": a, "balanced_accuracy": a, "auc": None,
              "epochs": 300, "steps": 1, "train_seconds": 1.0, "test_seconds": 1.0,
              "final_train_loss": 0.1, "config_key": "short"}
             for m, a in (("ConvNet", 95.0), ("MLP", 80.0), ("LeNet", 90.0)) for r in range(2)]
    run = make_run(tmp_path / "dm10", "dm", 10, [97.0, 97.5], extra_runs=extra)
    rec = load_run(run)
    assert rec.results["ConvNet"].epochs == 1000
    table, labels, models, values = crossarch([rec], "mnist")
    assert set(models) == {"ConvNet", "LeNet", "MLP"}
    assert dict(zip(models, values[0])) == {"ConvNet": 95.0, "MLP": 80.0, "LeNet": 90.0}
    assert table.title == "mnist: cross-architecture accuracy (2 runs x 300 epochs)"
    assert all("(" not in c for c in table.rows[0][1:])  # the protocol is the title's, not a cell's


def test_an_older_run_directory_loads_with_its_recorded_flops_only(tmp_path):
    """A set saved before the engine split (``match``/``datadam`` config keys) loads; the
    report reads the FLOPs it recorded and never recomputes them."""
    old = {"method": "dm", "ipc": 1, "seed": 0, "coreset": {"features": "trained"},
           "match": {"iterations": 7, "lr_img": 1.0, "batch_real": 64, "inner_steps": 1},
           "datadam": {"p": 4.0}}
    SyntheticSet(images=torch.zeros(10, 1, 28, 28), labels=torch.arange(10), info=INFO,
                 metadata={"method": "dm", "ipc": 1, "iterations": 7, "batch_real": 64,
                           "distill": old}).save(tmp_path / "old")
    rec = load_run(tmp_path / "old")
    assert "distill_flops" not in rec.metadata
    assert rec.config["engine"]["batch_real"] == 64 and rec.config["options"] == {"inner_steps": 1}
    cost, _, _ = cost_table([rec], "mnist")
    assert cost is None or cost.rows[0][3] == "-"


def test_flops_ratio_text():
    from synthset.report.tables import _fmt_ratio
    assert _fmt_ratio(24.9 / 27.1) == "91.9% (1.1x fewer)"
    assert _fmt_ratio(0.0833) == "8.33% (12x fewer)"
    assert _fmt_ratio(2.0) == "2x"


def test_moving_average_by_hand():
    from synthset.report.plots import moving_average
    assert moving_average([1, 2, 3, 4], 2) == [1.0, 1.5, 2.5, 3.5]
    assert moving_average([5, 7], 1) == [5.0, 7.0]


def test_corrupt_run_file_is_named(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "synthetic.json").write_text("{not json")
    assert main(["compare", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "synthetic.json is not valid JSON" in err


def test_config_table_shows_the_method_default_real_batch(tmp_path):
    """A run whose config left batch_real to the method shows the method's default."""
    from synthset.report import config_table
    for method, batch in (("dm", 256), ("datadam", 64)):
        SyntheticSet(images=torch.zeros(10, 1, 28, 28), labels=torch.arange(10), info=INFO,
                     metadata={"method": method, "ipc": 1, "iterations": 5,
                               "distill": {"method": method, "ipc": 1, "match": {"batch_real": None}}}
                     ).save(tmp_path / method)
        row = config_table([load_run(tmp_path / method)]).rows[0]
        assert f"batch_real={batch}" in row[2]


def test_a_multi_formation_set_counts_its_decoded_images(tmp_path):
    sset = SyntheticSet(images=torch.randn(10, 1, 28, 28), labels=torch.arange(10), info=INFO, factor=2,
                        metadata={"method": "dm", "ipc": 1, "iterations": 5, "distill_flops": 1e9,
                                  "distill": {"method": "dm", "ipc": 1, "match": {"factor": 2}}})
    sset.save(tmp_path / "f2")
    rec = load_run(tmp_path / "f2")
    assert rec.n_images == 40  # training FLOPs are counted on the 4 x 10 decoded images
    assert rec.label == "dm IPC 1 (factor 2)"


def test_a_multi_formation_set_gets_its_own_row_without_the_paper_figure(tmp_path):
    """Plain and factor-2 DM at the same IPC are two rows; neither overwrites the other."""
    recs = [load_run(make_run(tmp_path / "dm", "dm", 1, [88.0, 90.0])),
            load_run(make_run(tmp_path / "dm_f2", "dm", 1, [93.0, 95.0], factor=2))]
    rows = {row[0]: row for row in accuracy_table(recs, "mnist").rows}
    assert rows["dm"][1].startswith("89.00 ± 1.00") and rows["dm"][-1] == "89.7"
    assert rows["dm (factor 2)"][1].startswith("94.00 ± 1.00") and rows["dm (factor 2)"][-1] == "-"


def test_two_plain_sets_of_one_method_and_ipc_keep_both_cells(tmp_path):
    """Two DM IPC 1 budgets and one DM IPC 10 set: each in a row named by its run directory;
    nothing says which IPC 1 set the IPC 10 one belongs with, so no row joins them."""
    recs = [load_run(make_run(tmp_path / "dm_300", "dm", 1, [88.0, 90.0])),
            load_run(make_run(tmp_path / "dm_ipc10", "dm", 10, [96.0, 97.0])),
            load_run(make_run(tmp_path / "dm_600", "dm", 1, [91.0, 93.0]))]
    rows = {row[0]: row for row in accuracy_table(recs, "mnist").rows}
    assert set(rows) == {"dm [dm_300]", "dm [dm_ipc10]", "dm [dm_600]"}
    assert rows["dm [dm_300]"][1].startswith("89.00 ± 1.00") and rows["dm [dm_300]"][2] == "-"
    assert rows["dm [dm_ipc10]"][2].startswith("96.50 ± 0.50") and rows["dm [dm_ipc10]"][1] == "-"
    assert rows["dm [dm_600]"][1].startswith("92.00 ± 1.00") and rows["dm [dm_600]"][2] == "-"


def test_rows_join_the_sets_of_one_option_across_ipcs_by_directory_name(tmp_path):
    """The study's naming (dm-ipc10-d4, dm-ipc50-d4): a row holds the sets whose names differ
    only in the IPC, so a plain IPC 10 set never shares a row with an option's IPC 50 set;
    a method with one set per IPC keeps a single unnamed row."""
    recs = [load_run(make_run(tmp_path / n, "dm", ipc, acc)) for n, ipc, acc in
            [("dm-ipc10", 10, [90.0, 92.0]), ("dm-ipc10-d4", 10, [93.0, 95.0]),
             ("dm-ipc50", 50, [96.0, 98.0]), ("dm-ipc50-b128", 50, [94.0, 94.0]),
             ("dm-ipc50-d4", 50, [97.0, 99.0])]]
    recs.append(load_run(make_run(tmp_path / "rand_a", "random", 1, [50.0, 52.0])))
    recs.append(load_run(make_run(tmp_path / "rand_b", "random", 10, [80.0, 82.0])))
    rows = {row[0]: row[1:4] for row in accuracy_table(recs, "mnist").rows}
    assert rows["dm [dm-ipc10, dm-ipc50]"][1:] == ["91.00 ± 1.00", "97.00 ± 1.00"]
    assert rows["dm [dm-ipc10-d4, dm-ipc50-d4]"][1:] == ["94.00 ± 1.00", "98.00 ± 1.00"]
    assert rows["dm [dm-ipc50-b128]"][1:] == ["-", "94.00 ± 0.00"]
    assert rows["random"][0].startswith("51.00") and rows["random"][1].startswith("81.00")


def test_the_report_keeps_the_grid_of_every_set_of_one_method_and_ipc(tmp_path):
    """A plain and a factor-2 DM set at IPC 1, and a second plain one: three distinct grids."""
    runs = [make_run(tmp_path / "dm", "dm", 1, [88.0]), make_run(tmp_path / "dm_f2", "dm", 1, [93.0], factor=2),
            make_run(tmp_path / "dm_again", "dm", 1, [89.0])]
    build_report(runs, tmp_path / "report", title="grids")
    grids = sorted(p.name for p in (tmp_path / "report").glob("grid_*.png"))
    assert grids == ["grid_mnist_dm_ipc1.png", "grid_mnist_dm_ipc1_1.png", "grid_mnist_dm_ipc1_f2.png"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("<img") >= 3
