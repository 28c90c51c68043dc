"""The book's chapters: structure of the MyST Markdown notebooks and a smoke run of each.

The chapters (``notebooks/NN_*.md``, jupytext's ``myst`` format) are the only
source of the book. The structure checks read them with jupytext; the smoke
runs execute every chapter as ``mislabel-book run`` does
(:func:`mislabel.book.cli.run_chapter`: jupytext, then papermill) with the
``smoke`` profile (tiny data, few epochs) and check the ``metrics.json`` each
one writes. Captures are cached in a temporary folder shared by the whole test
session (:func:`smoke_cache`), never in the repository's ``.cache``.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jupytext
import nbformat
import pytest

from mislabel.book import cli, profiles
from page_width import COLUMN, shown_output

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.md"))
SMOKE = profiles.get("smoke")


# --------------------------------------------------------------------------- the chapters' sources
def test_there_are_chapters():
    names = [p.name for p in NOTEBOOKS]
    assert names[:3] == ["01_training_dynamics.md", "02_supervised_detector.md", "03_identify_mislabeled.md"]
    assert list(cli.chapters(NOTEBOOK_DIR).values()) == NOTEBOOKS
    # the Markdown files are the only source of a chapter
    assert not list(NOTEBOOK_DIR.glob("*.ipynb")) and not (REPO / "scripts" / "make_notebooks.py").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_is_a_parameterized_myst_notebook(path):
    text = path.read_text()
    nb = jupytext.read(path)
    nbformat.validate(nb)
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    # every code cell runs in the python3 kernel, and the file is jupytext's own rendering of its cells
    assert re.findall(r"^```\{code-cell\}.*$", text, re.M) == ["```{code-cell} ipython3"] * len(
        [c for c in nb.cells if c.cell_type == "code"])
    assert jupytext.writes(nb, fmt="md:myst") == text, "normalise with: jupytext --to myst " + path.name
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    params = {}
    exec(tagged[0].source, {}, params)  # simple literals only
    for line in tagged[0].source.splitlines():  # papermill's parser skips lines with a second "="
        assert line.count("=") == 1, line
    assert params == cli.chapter_parameters(path)
    assert params["profile"] is None and params["out_dir"] is None
    assert params.get("seed", 0) == 0
    assert all(v is None or isinstance(v, (int, float, str)) for v in params.values())
    assert "remove-input" in code[-1].metadata.get("tags", []), "last cell: hidden sanity checks"
    assert "assert" in code[-1].source
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    # plumbing is hidden: a cell that glues a number or sentence or writes metrics.json shows no code
    for cell in code:
        if "glue(" in cell.source or "write_metrics(" in cell.source:
            tags = cell.metadata.get("tags", [])
            assert "remove-input" in tags or "remove-cell" in tags, "plumbing cell shows its code:\n" + cell.source


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem[:2] not in ("06",)], ids=lambda p: p.stem)
def test_chapter_ends_with_exercises_that_name_its_parameters(path):
    # "Try this": two or three exercises, each with the exact parameter to change
    text = path.read_text()
    assert "## Try this" in text, path.name
    section = text.split("## Try this", 1)[1].split("```{code-cell}", 1)[0]
    items = re.findall(r"^\d\. ", section, re.M)
    assert 2 <= len(items) <= 3, path.name
    named = set(re.findall(r"-p (\w+) ", section))
    known = set(cli.chapter_parameters(path))
    assert named and named <= known, (path.name, named - known)


def test_model_card_exercises_run_as_printed(capsys):
    # the model card has no parameters of its own; its exercises name a script's options and library calls,
    # and its Python snippet runs as printed (a DNA run of 30 epochs, seconds)
    section = (NOTEBOOK_DIR / "06_model_card.md").read_text().split("## Try this", 1)[1].split("```{code-cell}", 1)[0]
    items = re.split(r"^\d\. ", section, flags=re.M)[1:]
    assert len(items) == 3
    command = re.search(r"`python scripts/train_pretrained\.py([^`]*)`", items[0]).group(1).split()
    usage = subprocess.run([sys.executable, str(REPO / "scripts" / "train_pretrained.py"), "--help"],
                           capture_output=True, text=True, check=True).stdout
    options = [w for w in command if w.startswith("--")]
    assert options == ["--verify", "--datasets", "--report"] and all(o in usage for o in options), options
    (code,) = re.findall(r"^ *```python\n(.*?)^ *```$", items[1], re.M | re.S)
    space = {}
    exec(compile(textwrap.dedent(code), "06_model_card.md, Try this", "exec"), space)
    printed = [line.split(" mAP ") for line in capsys.readouterr().out.splitlines()]
    members = space["det"].config["members"]
    assert [name.strip() for name, _ in printed] == ["ensemble", "AUM", *[f"member {i}" for i in range(members)]]
    assert all(0.0 <= float(m) <= 1.0 for _, m in printed)
    calls = re.findall(r"`([a-z_.]+\(\w*\))`", items[2])          # the third exercise's calls, on the snippet's run
    assert calls == ["dyn.first_epochs(k)", "det.scored_epochs(dyn)"], calls
    for k in (5, 10, 20):
        scores = space["det"].score(eval(calls[0], {**space, "k": k}))
        assert scores.shape == (len(space["flipped"]),)
    assert 2 <= eval(calls[1], space) <= 30


def test_intro_lists_every_chapter_parameter():
    # the introduction's table is how readers learn what a re-run can change
    rows = {}
    for line in (REPO / "book" / "intro.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                rows[name] = cells[1]
    for path in NOTEBOOKS:
        chapter = path.stem[:2]
        for name in cli.chapter_parameters(path):
            assert name in rows, f"{name} ({path.name}) is missing from the parameter table of book/intro.md"
            spans = rows[name].replace("all", f"01-{max(int(p.stem[:2]) for p in NOTEBOOKS):02d}")
            listed = set()
            for part in re.split(r",\s*", spans):
                lo, _, hi = part.partition("-")
                listed |= {f"{k:02d}" for k in range(int(lo), int(hi or lo) + 1)}
            assert chapter in listed, f"book/intro.md lists {name} for chapters {rows[name]}, not {chapter}"


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


def _check_05(m):
    # the shipped detector is graded on images it never saw
    assert m["data"] == {"dataset": "fashion-mnist", "split": "test", "in_shipped_pool": False}


def _check_09(m):
    grid = m["underlying"]["rows"]
    assert [(r["underlying_rate"], r["synthesized_rate"]) for r in grid] == [
        (u, s) for u in SMOKE["analyses_underlying"] for s in SMOKE["analyses_synthesized"]]
    for r in grid:
        assert r["train_underlying_share"] == pytest.approx(r["underlying_rate"], abs=0.01)
        assert 0.4 < r["map"] <= 1 and 0.5 < r["roc_auc"] <= 1
    sc = m["superclass"]
    assert {r["method"] for r in sc["rows"]} == {"detector", "aum", *sc["peers"]} and sc["best_peer"] in sc["peers"]
    assert sc["groups"] == 3
    for name in ("in-domain", "shipped detector"):
        lime = m["lime"][name]
        assert 1 <= len(lime["samples"]) <= SMOKE["analyses_lime_samples"]
        assert len(lime["mean_abs_weight"]) == SMOKE["epochs"] and 0 <= lime["early_share"] <= 1


def _check_07(m):
    acc, quality = m["accuracy"], m["quality"]
    assert {r["rate"] for r in acc} == set(SMOKE["retrain_rates"])
    assert {r["method"] for r in acc} == set(SMOKE["retrain_methods"])
    assert {r["method"] for r in quality} == set(SMOKE["retrain_methods"]) | set(SMOKE["retrain_scored"])
    for r in acc:
        assert 0 <= r["test_acc"] <= 1 and r["rule"] in ("own", "flipped")
        if r["method"] == "oracle":        # removes exactly the flipped samples under both rules
            assert r["removed"] == r["removed_flipped"] == round(r["rate"] * SMOKE["retrain_subset"])
    assert {r["dataset"] for r in m["original_accuracy"]} == set(SMOKE["retrain_original"])


def _check_08(m):
    runs, labels, shares = m["runs"], m["labels"], SMOKE["debug_shares"]
    assert len(runs) == (len(SMOKE["debug_learners"]) * (1 + 2 * len(shares))
                         + len(SMOKE["debug_compare_learners"]) * 2 * len(shares) * (len(SMOKE["debug_rankings"]) - 1))
    assert {r["learner"] for r in runs} == set(SMOKE["debug_learners"])
    for r in runs:
        assert 0 <= r["last"] <= r["best"] <= 1
    assert {(r["ranking"], r["protocol"]) for r in labels} == {
        (name, p) for name in SMOKE["debug_rankings"] for p in ("truth", "retrain")}
    for r in labels:
        assert r["checked"] == round(r["share"] * SMOKE["debug_subset"])
        if r["protocol"] == "truth":     # a true label fixes every wrong one it checks and breaks none
            assert r["broken"] == 0 and r["fixed"] == r["wrong_checked"]
    assert m["noise_rate_measured"] == pytest.approx(0.2, abs=0.01)


CHECKS = {"01_training_dynamics": _check_01, "02_supervised_detector": _check_02,
          "03_identify_mislabeled": _check_03, "05_your_training_loop": _check_05,
          "07_retraining": _check_07, "08_data_debugging": _check_08, "09_analyses": _check_09}


def _execute(path: Path, tmp_path: Path, **parameters) -> tuple[dict, list[str]]:
    """Run one chapter as ``mislabel-book run`` does (smoke profile plus ``parameters``).

    Returns its ``metrics.json`` and the Markdown its cells displayed, after checking
    that no cell raised or wrote to stderr, that no printed line is wider than the
    book's column and that no temporary file was left behind.
    """
    out_dir = tmp_path / "out"
    executed = cli.run_chapter(path, out_dir, {"profile": "smoke", **parameters})
    assert executed == out_dir / f"{path.stem}.ipynb"
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert isinstance(metrics, dict) and metrics
    assert metrics.get("chapter", path.stem) == path.stem
    assert metrics.get("profile", "smoke") == "smoke"
    # papermill saved the executed notebook; no cell may have produced an error or stderr text
    shown = []
    cells = nbformat.read(executed, as_version=4).cells
    wide = [f"cell {k}: {line!r}" for k, line in shown_output(cells) if len(line) > COLUMN]
    assert not wide, f"printed lines wider than the book's column ({COLUMN} characters):\n" + "\n".join(wide)
    for cell in cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error"
            assert not (output.get("output_type") == "stream" and output.get("name") == "stderr"), output.get("text")
            if output.get("output_type") == "display_data" and "text/markdown" in output.get("data", {}):
                shown.append(output["data"]["text/markdown"])
    assert not any(p.name.startswith(".") for p in out_dir.iterdir()), "no temporary files left behind"
    return metrics, shown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_smoke_profile(path, tmp_path, smoke_cache):
    metrics, _ = _execute(path, tmp_path)
    if path.stem in CHECKS:
        assert metrics["settings"]["subset"] == SMOKE["subset"]
        CHECKS[path.stem](metrics)


def test_chapter_reruns_on_another_data_set_and_model(tmp_path, smoke_cache):
    # the README's re-run with other parameters: scikit-learn digits and an MLP instead of Fashion-MNIST and a CNN;
    # the smoke preset's 1,200 training images fit digits' 1,438, its 500 test images are capped at digits' 359
    metrics, shown = _execute(NOTEBOOK_DIR / "01_training_dynamics.md", tmp_path, dataset="digits", model="mlp",
                              lr=0.1, noise_rate=0.3)
    s = metrics["settings"]
    assert (s["dataset"], s["model"], s["lr"], s["subset"], s["test_subset"]) == ("digits", "mlp", 0.1, 1200, 359)
    assert metrics["num_samples"] == 1200 and metrics["noise"]["rate"] == 0.3
    _check_01(metrics, rate=0.3)
    note = [m for m in shown if "differ from the rendered book's" in m]
    assert len(note) == 1 and "`dataset` 'digits' (book: 'fashion-mnist')" in note[0]
    assert "`noise_rate` 0.3 (book: 0.4)" in note[0] and "`seed`" not in note[0]


@pytest.mark.parametrize("chapter, params, name", [
    ("01", {"noise_rate": 0.0}, "noise_rate"),
    ("03", {"rates": "[0.0, 0.3]"}, "each of rates"),
    ("04", {"dataset": "digits", "model": "mlp"}, "transfer_dataset"),
    ("05", {"dna_epochs": 1}, "dna_epochs"),
    ("07", {"methods": '["standard", "magic"]'}, "methods"),
    ("08", {"exclude": 0.05}, "exclude"),
], ids=["noise_rate_0", "rate_0", "transfer_onto_itself", "dna_epochs_1", "unknown_method", "exclude_below_share"])
def test_chapter_refuses_a_bad_parameter_up_front(chapter, params, name, tmp_path, smoke_cache):
    # one clear message from the settings cell, before anything is trained
    import papermill

    with pytest.raises(papermill.PapermillExecutionError, match=name) as err:
        cli.run_chapter(chapter, tmp_path / "out", {"profile": "smoke", **params})
    assert err.value.ename == "ValueError"
    assert err.value.exec_count <= 3, "the error comes from the settings cell"


def test_mislabel_book_run_writes_into_runs_name(tmp_path, smoke_cache, monkeypatch, capsys):
    # `mislabel-book run 06 --name mine` leaves the executed notebook and metrics.json in <book>/runs/mine/
    (tmp_path / "notebooks").symlink_to(NOTEBOOK_DIR)
    monkeypatch.setattr(cli, "book_root", lambda: tmp_path)
    assert cli.main(["run", "06", "-p", "profile", "smoke", "--name", "mine"]) == 0
    run = tmp_path / "runs" / "mine"
    assert sorted(p.name for p in run.iterdir()) == ["06_model_card.ipynb", "metrics.json"]
    assert json.loads((run / "metrics.json").read_text())["chapter"] == "06_model_card"
    assert str(run / "metrics.json") in capsys.readouterr().out
    assert cli.main(["run", "01", "-p", "noise_rate", "0", "--name", "bad"]) == 1
    assert "ValueError" in capsys.readouterr().err
    assert (tmp_path / "runs" / "bad" / "01_training_dynamics.ipynb").is_file()   # with the traceback


def test_transfer_chapter_with_other_source_and_target(tmp_path, smoke_cache):
    metrics, shown = _execute(NOTEBOOK_DIR / "04_transfer.md", tmp_path, dataset="digits", model="mlp",
                              transfer_dataset="satellite")
    assert metrics["settings"]["transfer_dataset"] == "satellite" and metrics["settings"]["model"] == "mlp"
    targets = {r["target"] for r in metrics["results"]}
    assert targets == {"digits → satellite", "symmetric → asymmetric", "mlp → cnn"}
    assert any("`transfer_dataset` 'satellite' (book: 'digits')" in m for m in shown)


def test_chapter_runs_on_cifar_files(tmp_path, smoke_cache, monkeypatch):
    # the paper profile's data set, in the official format (tiny learnable files; CIFAR cannot be downloaded here),
    # with one of the paper's ResNets; the smoke preset's sizes are capped at the files' 300 and 50 rows
    from cifar_fakes import _write_fake_cifar10

    _write_fake_cifar10(tmp_path / "data", rows_per_batch=60, n_test=50, learnable=True)
    monkeypatch.setenv("MISLABEL_DATA", str(tmp_path / "data"))
    metrics, _ = _execute(NOTEBOOK_DIR / "01_training_dynamics.md", tmp_path, dataset="cifar10", model="resnet20")
    s = metrics["settings"]
    assert (s["dataset"], s["model"], s["subset"], s["test_subset"]) == ("cifar10", "resnet20", 300, 50)
    assert metrics["num_samples"] == 300 and metrics["num_epochs"] == SMOKE["epochs"]
    assert metrics["flip_rate"] == pytest.approx(0.4, abs=0.01) and 0 <= metrics["final_test_acc"] <= 1
