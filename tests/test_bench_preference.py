"""`aigiqa bench` on preference databases (pairwise accuracy in place of SRCC) and on the pairs
a MOS database implies: the numbers equal pairwise_accuracy on the same scores, the files and
the report say which rule, bad options are clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigiqa.benchmark.report import ReportError, build_report, read_results
from aigiqa.benchmark.runner import run_benchmark
from aigiqa.cli import app
from aigiqa.databases import load_database
from aigiqa.errors import AigiqaError
from aigiqa.evaluation import mos_pairs, pairwise_accuracy
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import metric_from_spec, register_metric

RANKS = [[1, 2, 3], [2, 1, 1, 3], [1, 3, 2, 2, 4], [1, 1, 1], [3, 1, 2], [1, 2, 2, 3, 1]]


def _ident(image: np.ndarray) -> int:
    return int(image[0, 0, 0])


@register_metric
class CoarseProbe(Metric):
    """Test metric, lower = better: the image's number modulo 4 (so equal scores occur); it
    cannot score the image numbered ``fail_on``."""

    name: ClassVar[str] = "test-bench-pref-coarse"
    lower_better: ClassVar[bool] = True
    defaults: ClassVar[dict] = {"fail_on": -1}

    def score(self, images, prompts=None):
        idents = [_ident(np.asarray(im)) for im in images]
        if self.options["fail_on"] in idents:
            raise ValueError(f"cannot score image {self.options['fail_on']}")
        return np.array([float(i % 4) for i in idents])


def _image(path: Path, ident: int) -> None:
    """A 12×12 image: random texture whose amount grows with ``ident``; pixel (0, 0) = ident."""
    rng = np.random.default_rng(ident)
    base = np.full((12, 12, 3), 128.0)
    pixels = np.clip(base + rng.normal(0, 4 + 9 * (ident % 7), base.shape), 0, 255)
    pixels = pixels.astype(np.uint8)
    pixels[0, 0] = (ident, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def ir_root(tmp_path_factory) -> Path:
    """A small ImageReward test release: test.json + images/, ties included."""
    root = tmp_path_factory.mktemp("imagereward")
    items, ident = [], 0
    for g, ranks in enumerate(RANKS):
        names = []
        for k in range(len(ranks)):
            names.append(f"p{g}/{k}.png")
            _image(root / "images" / names[-1], ident)
            ident += 1
        items.append({"id": f"id{g}", "prompt": f"prompt {g}", "generations": names,
                      "ranking": ranks})
    (root / "test.json").write_text(json.dumps(items))
    return root


def _direct_scores(db, spec: str) -> dict[str, float]:
    """Scores computed here, without the runner: the decoded images given to the metric."""
    metric = metric_from_spec(spec)
    images = [np.asarray(Image.open(rec.path).convert("RGB")) for rec in db]
    values = metric.score(images, [rec.prompt for rec in db] if metric.needs_prompt else None)
    return dict(zip([rec.name for rec in db], values, strict=True))


def test_bench_accuracy_equals_pairwise_accuracy_on_the_scores(ir_root, tmp_path):
    db = load_database("imagereward-test", ir_root)
    assert db.accuracy_rule == "imagereward"
    out = tmp_path / "res"
    specs = ["sharpness", "entropy", "test-bench-pref-coarse"]
    result = run_benchmark(db, specs, store=tmp_path / "s.sqlite", out=out, bootstrap=300,
                           seed=4, progress=False)
    assert set(result.outputs) == {"scores", "results_csv", "results_json", "report", "groups"}
    table = pd.read_csv(out / "results.csv").set_index("metric")
    groups = pd.read_csv(out / "groups.csv", dtype={"group": str})
    for spec in specs:
        direct = pairwise_accuracy(db, _direct_scores(db, spec), rule="imagereward",
                                   lower_better=spec == "test-bench-pref-coarse",
                                   bootstrap=300, seed=4)
        row = table.loc[spec]
        assert row["rule"] == "imagereward" and "ties left out" in row["ties"]
        assert row["accuracy"] == pytest.approx(direct.accuracy, abs=1e-12)
        assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == pytest.approx(direct.ci)
        assert (row["n_groups"], row["n_pairs"]) == (direct.n_groups, direct.n_pairs)
        assert (row["n"], row["n_failed"], row["n_left_out"]) == (len(db), 0, 0)
        mine = groups[groups["metric"] == spec].drop(columns="metric").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, direct.per_group, check_dtype=False)
    # the all-tie group counts no pair under this rule, and the accuracies are not all alike
    assert table["n_groups"].eq(len(RANKS) - 1).all()
    assert table["accuracy"].nunique() > 1
    meta, _ = read_results(out)
    assert meta["evaluation"] == "pairwise accuracy" and meta["rule"] == "imagereward"
    assert meta["n_comparisons"] == len(db.comparisons())


def test_report_states_the_rule_and_the_accuracy_and_rebuilds(ir_root, tmp_path):
    db = load_database("imagereward-test", ir_root)
    out = tmp_path / "res"
    result = run_benchmark(db, ["sharpness"], store=tmp_path / "s.sqlite", out=out,
                           bootstrap=100, progress=False, accuracy_rule="pickscore")
    row = result.results.set_index("metric").loc["sharpness"]
    direct = pairwise_accuracy(db, _direct_scores(db, "sharpness"), rule="pickscore",
                               bootstrap=100)
    assert row["accuracy"] == pytest.approx(direct.accuracy, abs=1e-12)
    page = (out / "report.html").read_text()
    assert "rule pickscore" in page and "earns 0.5" in page
    assert f"{direct.accuracy:.3f}" in page and f"{direct.ci[0]:.3f}" in page
    assert "SRCC" not in page
    assert result.results["protocol"].eq("not trained here").all()  # provenance of the number
    assert "Protocols" in page and "not trained here" in page
    (out / "report.html").unlink()
    assert build_report(out).read_text() == page  # rebuilt from the folder alone
    (out / "groups.csv").unlink()
    with pytest.raises(ReportError, match="groups.csv"):
        build_report(out)


def test_failed_images_leave_their_comparisons_out_and_say_so(ir_root, tmp_path):
    db = load_database("imagereward-test", ir_root)
    spec = "test-bench-pref-coarse:fail_on=1"
    result = run_benchmark(db, [spec], store=None, out=tmp_path / "res", bootstrap=0,
                           batch_size=1, progress=False)
    row = result.results.iloc[0]
    comp = db.comparisons()
    failed = db[1].name
    touching = int(((comp["a"] == failed) | (comp["b"] == failed)).sum())
    assert (row["n_failed"], row["n_left_out"]) == (1, touching) and touching > 0
    scores = {k: v for k, v in _direct_scores(db, "test-bench-pref-coarse").items()
              if k != failed}
    kept = comp[(comp["a"] != failed) & (comp["b"] != failed)]
    direct = pairwise_accuracy(kept, scores, lower_better=True, bootstrap=0)
    assert row["accuracy"] == pytest.approx(direct.accuracy, abs=1e-12)
    assert np.isnan(row["accuracy_ci_low"])  # bootstrap 0: no interval
    assert any(line.endswith("left out (an image failed to score)")
               for line in result.evaluation.summary_lines(result.results))


def test_hpdv2_uses_its_own_rule(tmp_path):
    (tmp_path / "test").mkdir()
    items = [{"prompt": f"p{g}", "image_path": [f"{g}_{k}.png" for k in range(4)],
              "rank": [int(r) for r in np.random.default_rng(g).permutation(4)]}
             for g in range(4)]
    for ident, name in enumerate(n for it in items for n in it["image_path"]):
        _image(tmp_path / "test" / name, ident)
    (tmp_path / "test.json").write_text(json.dumps(items))
    db = load_database("hpdv2", tmp_path)
    result = run_benchmark(db, ["entropy"], store=None, bootstrap=50, progress=False)
    direct = pairwise_accuracy(db, _direct_scores(db, "entropy"), rule="hpsv2", bootstrap=50)
    row = result.results.iloc[0]
    assert row["rule"] == "hpsv2" and row["accuracy"] == pytest.approx(direct.accuracy)


def _mos_database(root: Path):
    rows = []
    for i in range(16):
        _image(root / f"img{i}.png", i)
        rows.append({"image": f"img{i}.png", "MOS": (i * 7) % 5 + i / 10,
                     "model": f"m{i % 3}", "text": f"prompt {i}"})  # one image a prompt
    pd.DataFrame(rows).to_csv(root / "scores.csv", index=False)
    return load_database("csv", root, file="scores.csv", name_column="image",
                         target_columns="MOS", generator_column="model", prompt_column="text",
                         score_range=(0, 6))


def test_accuracy_on_mos_implied_pairs(tmp_path):
    db = _mos_database(tmp_path)
    result = run_benchmark(db, ["sharpness"], store=None, out=tmp_path / "res", bootstrap=80,
                           progress=False, pairs_min_gap=1.0, pairs_by="generator")
    pairs = mos_pairs(db, min_gap=1.0, group_by="generator")
    direct = pairwise_accuracy(pairs, _direct_scores(db, "sharpness"), rule="imagereward",
                               bootstrap=80)
    row = result.results.iloc[0]
    assert row["accuracy"] == pytest.approx(direct.accuracy, abs=1e-12)
    assert (row["n_groups"], row["n_pairs"]) == (3, len(pairs)) and len(pairs) < 3 * 15
    assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == pytest.approx(direct.ci)
    meta, _ = read_results(tmp_path / "res")
    assert "MOS gap >= 1" in meta["comparisons"] and "each generator" in meta["comparisons"]
    single = run_benchmark(db, ["sharpness"], store=None, bootstrap=80, progress=False,
                           pairs_min_gap=0.0, pairs_by="all").results.iloc[0]
    assert single["n_groups"] == 1 and np.isnan(single["accuracy_ci_low"])  # no CI of 1 group
    with pytest.raises(AigiqaError, match="no pair of images within each prompt"):
        run_benchmark(db, ["sharpness"], store=None, progress=False, pairs_min_gap=0.5)


def test_option_errors_name_the_option(ir_root, tmp_path):
    pref = load_database("imagereward-test", ir_root)
    mos = _mos_database(tmp_path / "mos")
    cases = [(pref, {"accuracy_rule": "spearman"}, "--accuracy-rule 'spearman'"),
             (pref, {"pairs_min_gap": 0.5}, "--mos-pairs-gap is for a MOS database"),
             (mos, {"accuracy_rule": "hpsv2"}, "--accuracy-rule 'hpsv2'"),
             (mos, {"pairs_by": "generator"}, "goes with --mos-pairs-gap"),
             (mos, {"pairs_min_gap": 0.5, "pairs_by": "nope"}, "--mos-pairs-by 'nope'")]
    store = tmp_path / "s.sqlite"
    for db, options, message in cases:
        with pytest.raises(AigiqaError, match=message):
            run_benchmark(db, ["sharpness"], store=store, progress=False, **options)
    assert not store.exists()  # refused before any scoring


def test_a_groups_file_that_cannot_be_written_fails_before_scoring(ir_root, tmp_path):
    db = load_database("imagereward-test", ir_root)
    out = tmp_path / "res"
    (out / "groups.csv").mkdir(parents=True)
    with pytest.raises(ReportError, match="groups.csv"):
        run_benchmark(db, ["sharpness"], store=tmp_path / "s.sqlite", out=out, progress=False)
    assert not (tmp_path / "s.sqlite").exists()


def test_cli_bench_on_a_preference_database(ir_root, tmp_path):
    runner = CliRunner()
    base = ["bench", "--database", "imagereward-test", "--root", str(ir_root), "--metrics",
            "sharpness", "--store", str(tmp_path / "s.sqlite"), "--no-progress",
            "--bootstrap", "20"]
    ok = runner.invoke(app, [*base, "--out", str(tmp_path / "a")], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    assert "rule imagereward" in ok.output and "accuracy" in ok.output
    assert "groups: " in ok.output and (tmp_path / "a" / "groups.csv").is_file()
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--accuracy-rule", "x"])
    assert bad.exit_code != 0 and "--accuracy-rule 'x'" in str(bad.exception)
    assert "imagereward, hpsv2, pickscore" in str(bad.exception)
