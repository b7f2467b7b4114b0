"""The whole chain on tiny pipelines, through the command line and the study app's HTTP API:
plan → run → study create → simulated raters over HTTP → study export (MOS) → attach-mos →
bench → report with per-generator rows."""

from __future__ import annotations

import hashlib
import re

import httpx
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("open_clip")

from typer.testing import CliRunner  # noqa: E402

from aigiqa import load_database  # noqa: E402
from aigiqa.cli import app  # noqa: E402
from aigiqa.study.app import create_app  # noqa: E402
from aigiqa.testing.pipelines import clip_tokenizer, tiny_sd_pipeline  # noqa: E402
from aigiqa.testing.servers import running_server  # noqa: E402

runner = CliRunner()


def ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, f"{args[:2]}: {result.output}"
    return result.output


def rate_over_http(base: str, links: pd.DataFrame, seed: int = 0) -> dict[str, list[float]]:
    """Every subject rates every trial through the HTTP API: a latent quality per image (the
    image as served, by its sha256) in [1, 4] plus noise, on the study's 0-5 scale (step 0.1).
    Returns sha256 → the values posted."""
    rng = np.random.default_rng(seed)
    latent: dict[str, float] = {}
    posted: dict[str, list[float]] = {}
    for k, token in enumerate(links["token"]):
        with httpx.Client(base_url=base, timeout=30) as client:
            page = client.get(f"/s/{token}")
            assert page.status_code == 200
            csrf = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page.text).group(1)
            for n in range(1000):
                trial = client.get(f"/api/s/{token}/state").json()["trial"]
                if trial is None:
                    break
                image = client.get(trial["image_url"])
                assert image.status_code == 200
                digest = hashlib.sha256(image.content).hexdigest()
                q = latent.setdefault(digest, float(rng.uniform(1, 4)))
                value = float(np.clip(round(q + rng.normal(0, 0.3), 1), 0, 5))
                reply = client.post(f"/api/s/{token}/ratings", headers={"X-CSRF-Token": csrf},
                                    json={"trial_id": trial["id"], "value": value,
                                          "submission_id": f"r{k}-{n}"})
                assert reply.status_code == 200, reply.text
                posted.setdefault(digest, []).append(value)
    return posted


def test_plan_run_study_mos_attach_bench(tmp_path):
    tok = clip_tokenizer()
    gens = tmp_path / "gens.toml"
    text = ""
    for i, name in enumerate(("alpha", "beta")):
        folder = tiny_sd_pipeline(tmp_path / f"pipe_{name}", seed=10 + i, tokenizer=tok)
        text += (f'[generators.{name}]\nprefix = "{name.upper()}"\npipeline = "{folder}"\n'
                 'count = 6\nsteps = [2, 1]\ncfg = [7.5, 1.0]\nsizes = ["64x64"]\n\n')
    gens.write_text(text)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"a small picture of object {i}" for i in range(12)) + "\n")
    plan, db = tmp_path / "plan.csv", tmp_path / "db"
    ok(["generate", "plan", "--prompts", str(prompts), "--generators", str(gens),
        "--out", str(plan), "--seed", "5"])
    assert "generated 12" in ok(["generate", "run", str(plan), "--out", str(db),
                                 "--device", "cpu", "--batch-size", "6"])

    store, links = tmp_path / "study.db", tmp_path / "links.csv"
    ok(["study", "create", "--database", "generated", "--root", str(db), "--subjects", "3",
        "--design", "full", "--training", "0", "--db", str(store), "--links", str(links)])
    table = pd.read_csv(links)
    with running_server(create_app(store)) as base:
        posted = rate_over_http(base, table)
    assert len(posted) == 12 and all(len(v) == 3 for v in posted.values())

    export = tmp_path / "export"
    ok(["study", "export", "--db", str(store), "--out", str(export)])
    mos = pd.read_csv(export / "mos.csv")
    assert len(mos) == 12 and (mos["n"] == 3).all()
    assert "MOS attached to 12 images; 0 without" in ok(
        ["databases", "attach-mos", str(db), str(export / "mos.csv")])
    for record in load_database("generated", db):  # each image's MOS: its raters' mean
        digest = hashlib.sha256(record.path.read_bytes()).hexdigest()
        assert record.targets["mos"] == pytest.approx(np.mean(posted[digest]), abs=1e-5)

    res = tmp_path / "res"
    ok(["bench", "--database", "generated", "--root", str(db), "--metrics", "contrast",
        "--out", str(res), "--store", str(tmp_path / "scores.sqlite"), "--bootstrap", "0",
        "--no-progress"])
    assert (res / "report.html").is_file()
    results = pd.read_csv(res / "results.csv")
    overall = results[results["group"] == "all"].iloc[0]
    assert overall["n"] == 12
    assert -1 <= overall["srcc"] <= 1
    per_generator = results[results["group"] == "generator"]
    assert sorted(per_generator["value"]) == ["alpha", "beta"]
    assert (per_generator["n"] == 6).all()
    assert set(results["group"]) >= {"steps", "cfg"}
