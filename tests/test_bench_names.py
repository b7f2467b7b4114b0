"""Names through scoring only when allowed: clip-prompt-levels with ``generator_prefix`` (IPCE's
second model) reads each image's generator through ``model_text``; ``aigiqa bench
--allow-names`` gives it, without the flag it is refused, and the results say name_blind False."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from aigiqa.benchmark.runner import run_benchmark, score_images
from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.errors import MetricError
from aigiqa.metrics.learned.clip_levels import ClipPromptLevels

WORDS = ["badly", "poorly", "fairly", "well", "perfectly"]
SMALL = {"min_side": 256, "patches": 4}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def arch(tiny_clip_arch) -> str:
    return tiny_clip_arch


def _metric(arch: str, **options) -> ClipPromptLevels:
    return ClipPromptLevels(model=arch, pretrained="none", device="cpu", **SMALL, **options)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Database:
    """Six images of three generators (AIGIQA-20K-style names, one with an '_' in its
    prefix); generator ids unlike the name prefixes; one prompt shared by two images."""
    root = tmp_path_factory.mktemp("db")
    rng = np.random.default_rng(0)
    prefixes = ["SD1.5", "LCM_SDXL", "MJ"]
    generators = {"SD1.5": "Stable Diffusion 1.5", "LCM_SDXL": "LCM SDXL", "MJ": "Midjourney"}
    prompts = ["a red car", "a cat on a sofa", "two dogs", "a red car", "a tree", "a house"]
    records = []
    for i, prompt in enumerate(prompts):
        prefix = prefixes[i % 3]
        path = root / f"{prefix}_{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path)
        records.append(Record(name=path.name, path=path, prompt=prompt,
                              generator=generators[prefix], split="test",
                              targets={"mos": float(i % 4)}))
    return Database(DatabaseInfo(name="named", score_range=(0, 5), target_names=("mos",)),
                    records, root)


def test_generator_prefix_makes_a_model_that_reads_names(arch):
    blind = _metric(arch)
    assert not blind.reads_names
    assert blind.model_text("a cat", "SD1.5_0001.png", "Stable Diffusion 1.5") == "a cat"
    by_name = _metric(arch, generator_prefix="name")
    assert by_name.reads_names
    # IPCE: image_name.split('_')[0] + ' ' + prompt, inside the quotes of the template
    assert by_name.model_text("a cat", "SD1.5_0001.png", "x") == "SD1.5 a cat"
    assert by_name.model_text("a cat", "LCM_SDXL_0003.png", "x") == "LCM a cat"
    assert by_name.model_text(" ", "SD1.5_0001.png", "x") == " "  # no prompt: still none
    assert by_name.texts([by_name.model_text("a cat", "SD1.5_0001.png", "x")], 1)[0] == \
        "a photo that badly matches 'SD1.5 a cat'"
    by_id = _metric(arch, generator_prefix="generator")
    assert by_id.model_text("a cat", "SD1.5_0001.png", "Stable Diffusion 1.5") == \
        "Stable Diffusion 1.5 a cat"
    with pytest.raises(MetricError, match="has no generator"):
        by_id.model_text("a cat", "x.png", " ")
    with pytest.raises(MetricError, match="generator_prefix"):
        _metric(arch, generator_prefix="yes")
    assert by_name.key != blind.key  # the option is in the cache key
    assert by_name.provenance()["reads_names"] is True
    assert "reads_names" not in blind.provenance()


def test_without_the_flag_a_metric_that_reads_names_is_refused(arch, db):
    metric = _metric(arch, generator_prefix="name")
    with pytest.raises(MetricError, match="allow-names") as caught:
        run_benchmark(db, [metric, "sharpness"], store=None, progress=False, bootstrap=0)
    assert metric.spec in str(caught.value)
    with pytest.raises(MetricError, match="allow_names=True"):
        score_images([r.path for r in db], [metric], prompts=[r.prompt for r in db],
                     progress=False)
    assert metric._model is None  # refused before anything was loaded or scored


def _expected(metric: ClipPromptLevels, records: list[Record], prefix) -> list[float]:
    """The IPCE score by hand from open_clip's encoders, texts with ``prefix(record)`` before
    the prompt (None: the prompt alone)."""
    from aigiqa.images import load_image

    model, tok = metric.model, metric._tokenizer
    out = []
    with torch.no_grad():
        for rec in records:
            views = metric.transform(load_image(rec.path))
            f = model.encode_image(views, normalize=True)
            text = rec.prompt if prefix is None else f"{prefix(rec)} {rec.prompt}"
            t = model.encode_text(tok([f"a photo that {w} matches '{text}'" for w in WORDS]),
                                  normalize=True)
            logits = model.logit_scale.exp() * f @ t.T
            p = (torch.softmax(logits[:-1].mean(0), 0) + torch.softmax(logits[-1], 0)) / 2
            out.append((float((p * torch.arange(1, 6)).sum()) - 1) / 4 * 5)
    return out


def test_with_the_flag_every_image_is_scored_with_its_generator(arch, db, monkeypatch, tmp_path):
    named = _metric(arch, generator_prefix="name")
    by_id = _metric(arch, generator_prefix="generator")
    blind = _metric(arch)
    seen: list[tuple[bool, list[str]]] = []
    texts = ClipPromptLevels.texts

    def spy(self, prompts, n):
        seen.append((self.options["generator_prefix"], list(prompts)))
        return texts(self, prompts, n)

    monkeypatch.setattr(ClipPromptLevels, "texts", spy)
    bench = run_benchmark(db, [named, by_id, blind, "sharpness"], store=tmp_path / "s.sqlite",
                          out=tmp_path / "out", progress=False, bootstrap=0, batch_size=4,
                          allow_names=True)
    read = {mode: [t for m, ts in seen if m == mode for t in ts]
            for mode in ("name", "generator", "none")}
    assert sorted(read["name"]) == sorted(f"{r.name.split('_')[0]} {r.prompt}" for r in db)
    assert sorted(read["generator"]) == sorted(f"{r.generator} {r.prompt}" for r in db)
    assert sorted(read["none"]) == sorted(r.prompt for r in db)  # the others stay name-blind
    records = list(db)
    np.testing.assert_allclose(bench.frame[named.spec], _expected(
        named, records, lambda r: r.name.split("_")[0]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(bench.frame[by_id.spec], _expected(
        by_id, records, lambda r: r.generator), rtol=0, atol=1e-5)
    np.testing.assert_allclose(bench.frame[blind.spec], _expected(blind, records, None),
                               rtol=0, atol=1e-5)
    assert not np.allclose(bench.frame[named.spec], bench.frame[blind.spec])
    rows = bench.results[bench.results["group"] == "all"].set_index("metric")
    assert not rows.loc[named.spec, "name_blind"] and not rows.loc[by_id.spec, "name_blind"]
    assert rows.loc[blind.spec, "name_blind"] and rows.loc["sharpness", "name_blind"]
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    flags = csv[csv["group"] == "all"].set_index("metric")["name_blind"]
    assert not flags[named.spec] and flags["sharpness"]
    seen.clear()
    again = run_benchmark(db, [named, blind], store=tmp_path / "s.sqlite", progress=False,
                          bootstrap=0, allow_names=True)
    assert again.meta["computed"] == 0 and not seen  # the texts are in the cache's input hash
    np.testing.assert_array_equal(again.frame[named.spec], bench.frame[named.spec])


def test_serve_refuses_a_metric_that_reads_names(arch):
    from aigiqa.serve.config import ServeConfigError
    from aigiqa.serve.served import load_served

    spec = f"clip-prompt-levels:model={arch}:pretrained=none:generator_prefix=name"
    with pytest.raises(ServeConfigError, match="reads file names or generator ids"):
        load_served([spec])


def test_train_and_bench_with_allow_names_on_the_demo(arch, tmp_path):
    from aigiqa.cli import app as main_app
    from aigiqa.demo import build_demo
    from aigiqa.training.cli import app

    root = build_demo(tmp_path / "demo", n=30, seed=4)
    spec = (f"clip-prompt-levels:model={arch}:pretrained=none:min_side=256:patches=4:"
            "train_patches=2:freeze=image:generator_prefix=name")
    args = ["--metric", spec, "--database", "demo", "--root", str(root), "--out",
            str(tmp_path / "run"), "--epochs", "1", "--batch-size", "8", "--lr", "1e-4",
            "--loss", "l1", "--workers", "0", "--device", "cpu", "--no-progress"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0 and "--allow-names" in str(refused.exception)
    res = CliRunner().invoke(app, [*args, "--allow-names"])
    assert res.exit_code == 0, res.output
    assert "names allowed" in res.output and "--allow-names ..." in res.output
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["name_blind"] is False
    bench = ["bench", "--database", "demo", "--root", str(root), "--metrics",
             result["bench_spec"], "--out", str(tmp_path / "bench"), "--store",
             str(tmp_path / "s.sqlite"), "--bootstrap", "0", "--no-progress"]
    refused = CliRunner().invoke(main_app, bench)
    assert refused.exit_code != 0 and "--allow-names" in str(refused.exception)
    res = CliRunner().invoke(main_app, [*bench, "--allow-names"])
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(tmp_path / "bench" / "results.csv")
    row = csv[csv["group"] == "all"].iloc[0]
    assert not row["name_blind"] and row["protocol"].startswith("trained on demo")
    assert Path(tmp_path / "bench" / "report.html").is_file()
