"""The book's chapters: structure of the committed notebooks, the helpers they use, and a smoke run of each.

The smoke runs execute every notebook in ``notebooks/`` with papermill and the
``smoke`` profile (tiny data, few epochs) and check the ``metrics.json`` each
one writes. Captures are cached in a temporary folder shared by the whole
test session (:func:`smoke_cache`), never in the repository's ``.cache``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from mislabel import profiles, report
from mislabel.dynamics import Dynamics

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SMOKE = profiles.get("smoke")


def smoke_cache_dir(tmp_path_factory) -> Path:
    """One cache folder per test session, shared with tests/test_book.py (same path)."""
    path = tmp_path_factory.getbasetemp() / "mislabel-smoke-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory):
    """Point MISLABEL_CACHE (and MISLABEL_PROFILE) at session-wide values while notebooks run."""
    mp = pytest.MonkeyPatch()
    cache = smoke_cache_dir(tmp_path_factory)
    mp.setenv("MISLABEL_CACHE", str(cache))
    mp.setenv("MISLABEL_PROFILE", "smoke")
    yield cache
    mp.undo()


# --------------------------------------------------------------------------- committed notebooks
def test_there_are_chapters():
    names = [p.name for p in NOTEBOOKS]
    assert names[:3] == ["01_training_dynamics.ipynb", "02_supervised_detector.ipynb",
                         "03_identify_mislabeled.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterized(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "commit notebooks without outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    params = {}
    exec(tagged[0].source, {}, params)  # simple literals only
    for line in tagged[0].source.splitlines():  # papermill's parser skips lines with a second "="
        assert line.count("=") == 1, line
    assert params["profile"] is None and params["out_dir"] is None
    assert params.get("seed", 0) == 0
    assert all(v is None or isinstance(v, (int, float, str)) for v in params.values())
    assert "remove-input" in code[-1].metadata.get("tags", []), "last cell: hidden sanity checks"
    assert "assert" in code[-1].source
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def test_intro_lists_every_chapter_parameter():
    # the introduction's table is how readers learn what a re-run can change
    import re

    rows = {}
    for line in (REPO / "book" / "intro.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                rows[name] = cells[1]
    for path in NOTEBOOKS:
        tagged = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
        params = {}
        exec(tagged[0].source, {}, params)
        chapter = path.stem[:2]
        for name in params:
            assert name in rows, f"{name} ({path.name}) is missing from the parameter table of book/intro.md"
            spans = rows[name].replace("all", "01-06")
            listed = set()
            for part in re.split(r",\s*", spans):
                lo, _, hi = part.partition("-")
                listed |= {f"{k:02d}" for k in range(int(lo), int(hi or lo) + 1)}
            assert chapter in listed, f"book/intro.md lists {name} for chapters {rows[name]}, not {chapter}"


def test_notebooks_match_generator():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_notebooks.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- report helpers
def _toy_dynamics(n=200, t=6, rate=0.3, seed=0) -> Dynamics:
    rng = np.random.default_rng(seed)
    flipped = np.zeros(n, bool)
    flipped[rng.choice(n, int(rate * n), replace=False)] = True
    ramp = np.linspace(0.2, 0.95, t, dtype=np.float32)
    probs = np.where(flipped[:, None], 0.1 + 0.2 * rng.random((n, t)), ramp + 0.04 * rng.random((n, t)))
    probs = np.clip(probs, 0, 1).astype(np.float32)
    margins = (probs - 0.5).astype(np.float32)
    return Dynamics(probs, rng.integers(0, 10, n), flipped, margins)


def test_as_list_accepts_papermill_strings():
    assert report.as_list(None) is None
    assert report.as_list("[0.3]") == [0.3]
    assert report.as_list(0.3) == [0.3]
    assert report.as_list("0.2, 0.4") == [0.2, 0.4]
    assert report.as_list('["symmetric"]', str) == ["symmetric"]
    assert report.as_list("symmetric,asymmetric", str) == ["symmetric", "asymmetric"]
    assert report.as_list((0.2, 0.4)) == [0.2, 0.4]


def test_repo_root_and_out_dir(tmp_path, monkeypatch):
    assert report.repo_root(NOTEBOOK_DIR) == REPO
    monkeypatch.chdir(NOTEBOOK_DIR)
    assert report.repo_root() == REPO
    assert report.chapter_out_dir("x", tmp_path / "given") == (tmp_path / "given").resolve()
    monkeypatch.setenv("MISLABEL_OUT", str(tmp_path / "env"))
    assert report.chapter_out_dir("ch") == (tmp_path / "env" / "ch").resolve()
    assert (tmp_path / "env" / "ch").is_dir()


def test_epoch_summary_and_contrast():
    dyn = _toy_dynamics()
    s = report.epoch_summary(dyn)
    assert list(s.columns) == ["epoch", "group", "mean", "std", "n"]
    assert len(s) == 2 * dyn.num_epochs and s["epoch"].dtype == np.int64
    clean = s[s.group == "clean"].set_index("epoch")
    np.testing.assert_allclose(clean["mean"], dyn.probs[~dyn.is_flipped].mean(0), rtol=1e-5)
    np.testing.assert_allclose(clean["std"], dyn.probs[~dyn.is_flipped].std(0), rtol=1e-4)
    assert (clean["n"] == (~dyn.is_flipped).sum()).all()
    late = report.late_epoch_contrast(dyn, 0.5)
    assert late["first_epoch"] == 4
    assert late["mean_lower"] and late["last_clean_mean"] > late["last_mislabeled_mean"]
    with pytest.raises(ValueError):
        report.late_epoch_contrast(dyn, 0)


def test_long_probs_and_trajectories():
    dyn = _toy_dynamics(n=50, t=4)
    idx = report.pick_trajectories(dyn, per_group=3, seed=1)
    assert idx.dtype == np.int64 and len(idx) == 6
    assert (~dyn.is_flipped[idx[:3]]).all() and dyn.is_flipped[idx[3:]].all()
    long = report.long_probs(dyn, idx)
    assert len(long) == 6 * 4 and set(long.group) == {"clean", "mislabeled"}
    row = long[(long["sample"] == idx[0]) & (long["epoch"] == 2)]
    assert float(row["prob"].iloc[0]) == pytest.approx(float(dyn.probs[idx[0], 1]))
    assert len(report.long_probs(dyn)) == 50 * 4


def test_long_probs_selects_rows_as_dynamics_subset_does():
    dyn = _toy_dynamics(n=50, t=4)
    flipped = np.flatnonzero(dyn.is_flipped)
    long = report.long_probs(dyn, dyn.is_flipped)   # a boolean mask selects its rows, not rows 0 and 1
    assert sorted(set(long["sample"])) == flipped.tolist() and set(long.group) == {"mislabeled"}
    pd.testing.assert_frame_equal(long, report.long_probs(dyn, flipped))
    last = report.long_probs(dyn, np.array([-1]))   # negative indices count from the end, as in Dynamics.subset
    assert last["sample"].tolist() == [49] * 4 and last["prob"].tolist() == dyn.probs[49].tolist()
    for bad, match in [(dyn.is_flipped[:10], r"shape \(50,\)"), (np.zeros(50, bool), "selects no sample"),
                       ([50], "out of range for 50 samples"), ([0.5, 1.0], "got dtype float64"),
                       ([], "selects no sample")]:
        with pytest.raises(ValueError, match=match):
            report.long_probs(dyn, bad)


def test_evaluate_compare_and_sentence():
    rng = np.random.default_rng(0)
    flipped = rng.random(300) < 0.3
    good = flipped + 0.1 * rng.random(300)
    bad = rng.random(300)
    rows = []
    for kind in ("symmetric", "asymmetric"):
        for rate in (0.2, 0.4):
            t = report.evaluate_methods({"LSTM detector": good if kind == "symmetric" else bad, "AUM": bad}, flipped)
            t.insert(0, "rate", rate)
            t.insert(0, "kind", kind)
            rows.append(t)
    table = pd.concat(rows, ignore_index=True)
    diff = report.method_comparison(table)
    assert set(diff.columns) == {"kind", "rate", "map", "roc_auc", "precision_at_95"}
    assert (diff[diff.kind == "symmetric"]["map"] > 0).all()
    assert (diff[diff.kind == "asymmetric"]["map"] == 0).all()
    assert report.comparison_sentence(diff, "symmetric").startswith("the detector is ahead at 2 of 2 rates (0.2, 0.4)")
    assert "tied (within 0.002) at 2" in report.comparison_sentence(diff, "asymmetric")
    long = report.metrics_long(table)
    assert set(long.metric) == {"mAP", "ROC AUC", "Precision@95"} and len(long) == 3 * len(table)


def test_write_metrics_is_strict_json(tmp_path):
    payload = {"a": np.float32(0.5), "b": float("nan"), "c": np.arange(3), "d": pd.DataFrame({"x": [1, 2]}),
               "e": {"f": np.bool_(True)}, "g": tmp_path}
    path = report.write_metrics(tmp_path / "out", payload)
    data = json.loads(path.read_text())
    assert data == {"a": 0.5, "b": None, "c": [0, 1, 2], "d": [{"x": 1}, {"x": 2}], "e": {"f": True},
                    "g": str(tmp_path)}
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["metrics.json"]


# --------------------------------------------------------------------------- smoke runs
def _check_01(m, rate=0.4):
    assert m["num_epochs"] == SMOKE["epochs"] and m["num_samples"] == SMOKE["subset"]
    assert m["flip_rate"] == pytest.approx(rate, abs=0.01)
    late = m["late_epochs"]
    assert late["last_clean_mean"] > late["last_mislabeled_mean"]
    assert len(m["per_epoch"]) == 2 * SMOKE["epochs"]


def _check_02(m):
    assert len(m["detector_history"]["epoch"]) == SMOKE["detector_epochs"]
    assert {r["method"] for r in m["results"]} == {"LSTM detector", "AUM"}
    for r in m["results"]:
        assert r["noise_rate"] < r["map"] <= 1 and 0.5 < r["roc_auc"] <= 1
    assert 0 <= m["flip_overlap"] < 0.4


def _check_03(m):
    rows = m["results"]
    assert len(rows) == len(SMOKE["noise_kinds"]) * len(SMOKE["rates"]) * 2
    assert {r["kind"] for r in rows} == set(SMOKE["noise_kinds"])
    for r in rows:
        for key in ("map", "roc_auc", "precision_at_95"):
            assert 0 <= r[key] <= 1
        assert r["map"] > r["rate"]
    assert len(m["detector_minus_aum"]) == len(rows) // 2


CHECKS = {"01_training_dynamics": _check_01, "02_supervised_detector": _check_02,
          "03_identify_mislabeled": _check_03}


def _execute(path: Path, tmp_path: Path, **parameters) -> tuple[dict, list[str]]:
    """Run one chapter with papermill (smoke profile plus ``parameters``) as a reader would.

    Returns its ``metrics.json`` and the Markdown its cells displayed, after checking
    that no cell raised or wrote to stderr and that no temporary file was left behind.
    """
    import papermill

    out_dir = tmp_path / "out"
    papermill.execute_notebook(str(path), str(tmp_path / path.name),
                               parameters={"profile": "smoke", "out_dir": str(out_dir), **parameters},
                               kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert isinstance(metrics, dict) and metrics
    assert metrics.get("chapter", path.stem) == path.stem
    assert metrics.get("profile", "smoke") == "smoke"
    # papermill saved the executed notebook; no cell may have produced an error or stderr text
    executed = nbformat.read(tmp_path / path.name, as_version=4)
    shown = []
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error"
            assert not (output.get("output_type") == "stream" and output.get("name") == "stderr"), output.get("text")
            if output.get("output_type") == "display_data" and "text/markdown" in output.get("data", {}):
                shown.append(output["data"]["text/markdown"])
    assert not any(p.name.startswith(".") for p in out_dir.iterdir()), "no temporary files left behind"
    return metrics, shown


@pytest.mark.smoke
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_smoke_profile(path, tmp_path, smoke_cache):
    metrics, _ = _execute(path, tmp_path)
    if path.stem in CHECKS:
        assert metrics["settings"]["subset"] == SMOKE["subset"]
        CHECKS[path.stem](metrics)


@pytest.mark.smoke
def test_chapter_reruns_on_another_data_set_and_model(tmp_path, smoke_cache):
    # the README's re-run with other parameters: scikit-learn digits and an MLP instead of Fashion-MNIST and a CNN;
    # the smoke preset's 1,200 training images fit digits' 1,438, its 500 test images are capped at digits' 359
    metrics, shown = _execute(NOTEBOOK_DIR / "01_training_dynamics.ipynb", tmp_path, dataset="digits", model="mlp",
                              lr=0.1, noise_rate=0.3)
    s = metrics["settings"]
    assert (s["dataset"], s["model"], s["lr"], s["subset"], s["test_subset"]) == ("digits", "mlp", 0.1, 1200, 359)
    assert metrics["num_samples"] == 1200 and metrics["noise"]["rate"] == 0.3
    _check_01(metrics, rate=0.3)
    note = [m for m in shown if "differ from the rendered book's" in m]
    assert len(note) == 1 and "`dataset` 'digits' (book: 'fashion-mnist')" in note[0]
    assert "`noise_rate` 0.3 (book: 0.4)" in note[0] and "`seed`" not in note[0]


@pytest.mark.smoke
@pytest.mark.parametrize("chapter, params, message", [
    ("01_training_dynamics", {"noise_rate": 0.0}, "noise_rate must be a share strictly between 0 and 1"),
    ("03_identify_mislabeled", {"rates": "[0.0, 0.3]"}, "each of rates must be a share strictly between 0 and 1"),
    ("04_transfer", {"dataset": "digits", "model": "mlp"}, "transfer_dataset is the source data set itself"),
    ("05_your_training_loop", {"dna_epochs": 1}, "dna_epochs must be at least 2"),
], ids=["noise_rate_0", "rate_0", "transfer_onto_itself", "dna_epochs_1"])
def test_chapter_refuses_a_bad_parameter_up_front(chapter, params, message, tmp_path, smoke_cache):
    # one clear message from the settings cell, before anything is trained
    import papermill

    with pytest.raises(papermill.PapermillExecutionError, match=message) as err:
        papermill.execute_notebook(str(NOTEBOOK_DIR / f"{chapter}.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"profile": "smoke", "out_dir": str(tmp_path / "out"), **params},
                                   kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False)
    assert err.value.exec_count <= 3, "the error comes from the settings cell"


@pytest.mark.smoke
def test_transfer_chapter_with_other_source_and_target(tmp_path, smoke_cache):
    metrics, shown = _execute(NOTEBOOK_DIR / "04_transfer.ipynb", tmp_path, dataset="digits", model="mlp",
                              transfer_dataset="satellite")
    assert metrics["settings"]["transfer_dataset"] == "satellite" and metrics["settings"]["model"] == "mlp"
    targets = {r["target"] for r in metrics["results"]}
    assert targets == {"digits → satellite", "symmetric → asymmetric", "mlp → cnn"}
    assert any("`transfer_dataset` 'satellite' (book: 'digits')" in m for m in shown)


@pytest.mark.smoke
def test_chapter_runs_on_cifar_files(tmp_path, smoke_cache, monkeypatch):
    # the paper profile's data set, in the official format (tiny learnable files; CIFAR cannot be downloaded here),
    # with one of the paper's ResNets; the smoke preset's sizes are capped at the files' 300 and 50 rows
    from cifar_fakes import _write_fake_cifar10

    _write_fake_cifar10(tmp_path / "data", rows_per_batch=60, n_test=50, learnable=True)
    monkeypatch.setenv("MISLABEL_DATA", str(tmp_path / "data"))
    metrics, _ = _execute(NOTEBOOK_DIR / "01_training_dynamics.ipynb", tmp_path, dataset="cifar10", model="resnet20")
    s = metrics["settings"]
    assert (s["dataset"], s["model"], s["subset"], s["test_subset"]) == ("cifar10", "resnet20", 300, 50)
    assert metrics["num_samples"] == 300 and metrics["num_epochs"] == SMOKE["epochs"]
    assert metrics["flip_rate"] == pytest.approx(0.4, abs=0.01) and 0 <= metrics["final_test_acc"] <= 1
