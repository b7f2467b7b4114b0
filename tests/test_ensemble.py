"""The ensemble metric: member metrics from the registry, combined by a rule from a TOML file.

Equal to scoring the members apart and combining by hand; IPCE's final submission (q1·q2/5 of a
name-blind model and one reading the generator from the file name) through the benchmark runner;
names only when allowed; the cache key; errors naming the file, member or option."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigiqa.benchmark.runner import run_benchmark, score_images
from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.errors import AssetError, MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.describe import metric_metadata
from aigiqa.metrics.ensemble import PACKED, Ensemble
from aigiqa.metrics.registry import create_metric, metric_from_spec

SMALL = "pretrained=none:device=cpu:min_side=256:patches=4"
PROMPTS = ["a red car", "a cat on a sofa", "two dogs", "a red car", "a tree", "a house"]
NAMES = ["SD1.5_0000.png", "LCM_SDXL_0001.png", "MJ_0002.png", "SD1.5_0003.png",
         "LCM_SDXL_0004.png", "MJ_0005.png"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, object]:
    """A tiny ViT-B/32 architecture and two seeded random checkpoints of it."""
    from tiny_weights import TINY_B32, TINY_B32_CONFIG, open_clip_file, register_open_clip

    folder = tmp_path_factory.mktemp("weights")
    arch = register_open_clip(folder, TINY_B32, TINY_B32_CONFIG)
    for seed, name in ((1, "a.pt"), (2, "b.pt")):
        open_clip_file(folder / name, arch, seed)
    return {"arch": arch, "folder": folder}


def _clip(weights, checkpoint: str, extra: str = "") -> str:
    return (f"clip-prompt-levels:model={weights['arch']}:{SMALL}:"
            f"checkpoint={checkpoint}{extra}")


def _config(folder: Path, text: str, name: str = "ensemble.toml") -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for name in NAMES:
        Image.fromarray(rng.integers(0, 256, (256, 288, 3), dtype=np.uint8)).save(root / name)
        paths.append(root / name)
    return paths


def test_equals_the_members_scored_apart_and_combined_by_hand(weights, images, tmp_path):
    """mean with weights, sum and product with a scale; a member without prompts among ones
    with; relative checkpoint paths are the config folder's."""
    folder = weights["folder"]
    specs = [_clip(weights, "a.pt"), _clip(weights, "b.pt"), "sharpness"]
    members = [metric_from_spec(s.replace("=a.pt", f"={folder / 'a.pt'}")
                                .replace("=b.pt", f"={folder / 'b.pt'}")) for s in specs]
    alone = [m.score(images, PROMPTS) for m in members]
    rules = {"mean": ((2 * alone[0] + alone[1] + 0.5 * alone[2]) / 3.5, [2, 1, 0.5], 1.0),
             "sum": ((2 * alone[0] + alone[1] + 0.5 * alone[2]) / 4, [2, 1, 0.5], 4.0),
             "product": (alone[0] * alone[1] * alone[2] / 5, None, 5.0)}
    keys = set()
    for rule, (want, w, scale) in rules.items():
        body = "".join(f'[[member]]\nspec = "{s}"\n' + (f"weight = {w[k]}\n" if w else "")
                       for k, s in enumerate(specs))
        head = f'combine = "{rule}"\nscale = {scale}\n'
        ens = metric_from_spec("ensemble:config=" + _config(folder, head + body))
        assert ens.needs_prompt and not ens.reads_names and not ens.lower_better
        got = ens.score(images, PROMPTS)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
        keys.add(ens.key)
    assert len(keys) == 3  # the rule (and scale, weights) are in the key
    assert not np.allclose(alone[0], alone[1])  # two models, two scores: the rules differ


def _final(weights, folder: Path, combine: str = "product") -> str:
    """IPCE's final submission: model 1 name-blind, model 2 reading the file-name prefix."""
    first = _clip(weights, str(weights["folder"] / "a.pt"))
    second = _clip(weights, str(weights["folder"] / "b.pt"), ":generator_prefix=name")
    return _config(folder, f'combine = "{combine}"\nscale = 5\n[[member]]\nspec = "{first}"\n'
                   f'[[member]]\nspec = "{second}"\n', "final.toml")


def test_the_champions_rule_through_the_runner_reads_names_only_when_allowed(
        weights, images, tmp_path):
    ens = create_metric("ensemble", config=_final(weights, tmp_path))
    blind, named = ens.members
    assert ens.reads_names and not blind.reads_names and named.reads_names
    prompts = {p.name: t for p, t in zip(images, PROMPTS, strict=True)}
    with pytest.raises(MetricError, match="allow_names=True") as refused:
        score_images(images, [ens], prompts=prompts, progress=False)
    assert ens.spec in str(refused.value)
    with pytest.raises(MetricError, match="bare prompt"):  # the API: texts from model_text
        ens.score(images, PROMPTS)
    table = score_images(images, [ens, blind, named], prompts=prompts, allow_names=True,
                         progress=False, store=tmp_path / "s.sqlite")
    q1, q2 = table.scores[blind.spec].to_numpy(), table.scores[named.spec].to_numpy()
    np.testing.assert_allclose(table.scores[ens.spec], q1 * q2 / 5, rtol=1e-12, atol=0)
    # the named member read the prefix: its scores differ from the same model name-blind
    same_weights_blind = metric_from_spec(named.spec.replace(":generator_prefix=name", ""))
    assert not np.allclose(q2, same_weights_blind.score(images, PROMPTS))
    text = ens.model_text("a cat", "LCM_SDXL_0001.png", "LCM SDXL")
    assert text.startswith(PACKED) and ens.member_texts([text]) == [["a cat"], ["LCM a cat"]]
    assert ens.model_text(" ", "LCM_SDXL_0001.png", "x") == " "  # no prompt: still none
    again = score_images(images, [ens], prompts=prompts, allow_names=True, progress=False,
                         store=tmp_path / "s.sqlite")
    assert again.computed == 0  # the packed texts are in the cache's input hash
    np.testing.assert_array_equal(again.scores[ens.spec], table.scores[ens.spec])


def test_the_benchmark_says_an_ensemble_reading_names_is_not_name_blind(weights, images,
                                                                         tmp_path):
    records = [Record(name=p.name, path=p, prompt=t, generator=p.name.split("_")[0],
                      split="test", targets={"mos": float(i % 4)})
               for i, (p, t) in enumerate(zip(images, PROMPTS, strict=True))]
    db = Database(DatabaseInfo(name="named", score_range=(0, 5), target_names=("mos",)),
                  records, images[0].parent)
    final = f"ensemble:config={_final(weights, tmp_path)}"
    first = _clip(weights, str(weights["folder"] / "a.pt"))
    both_blind = "ensemble:config=" + _config(
        tmp_path, f'[[member]]\nspec = "{first}"\n[[member]]\nspec = "sharpness"\n', "blind.toml")
    with pytest.raises(MetricError, match="allow-names"):
        run_benchmark(db, [final], store=None, progress=False, bootstrap=0)
    bench = run_benchmark(db, [final, both_blind], store=None, progress=False, bootstrap=0,
                          allow_names=True)
    rows = bench.results[bench.results["group"] == "all"].set_index("metric")
    assert not rows.loc[final, "name_blind"] and rows.loc[both_blind, "name_blind"]
    assert rows.loc[final, "protocol"] == "not trained here"
    info = metric_metadata(metric_from_spec(final))
    assert info["needs_prompt"] and info["kind"] == "ensemble"
    assert [m["spec"] for m in info["provenance"]["members"]] == [
        m.spec for m in metric_from_spec(final).members]


def test_serve_and_train_refuse_it(weights, tmp_path):
    from aigiqa.serve.config import ServeConfigError
    from aigiqa.serve.served import load_served
    from aigiqa.training.cli import app

    spec = f"ensemble:config={_final(weights, tmp_path)}"
    with pytest.raises(ServeConfigError, match="reads file names or generator ids"):
        load_served([spec])
    res = CliRunner().invoke(app, ["--metric", spec, "--database", "demo", "--root",
                                   str(tmp_path), "--out", str(tmp_path / "run")])
    assert res.exit_code != 0 and "scored, not trained" in str(res.exception)
    from aigiqa.training import TrainConfig, train  # the Python API refuses it too
    with pytest.raises(MetricError, match="scored, not trained"):
        train(metric_from_spec(spec), None, TrainConfig())


def test_the_key_follows_the_members_not_the_config_path(weights, tmp_path):
    text = Path(_final(weights, tmp_path)).read_text()
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    one = create_metric("ensemble", config=_config(tmp_path, text, "one.toml"))
    two = create_metric("ensemble", config=_config(elsewhere, text, "two.toml"))
    assert one.key == two.key
    scaled = create_metric("ensemble", config=_config(tmp_path, text.replace(
        "scale = 5", "scale = 4"), "three.toml"))
    assert scaled.key != one.key
    swapped = create_metric("ensemble", config=_config(tmp_path, text.replace(
        "b.pt", "B.pt").replace("a.pt", "b.pt").replace("B.pt", "a.pt"), "four.toml"))
    assert swapped.key != one.key  # other weights behind a member: other scores


def test_a_member_that_fails_is_named(weights, images, tmp_path, monkeypatch):
    first = _clip(weights, str(weights["folder"] / "a.pt"))
    ens = create_metric("ensemble", config=_config(
        tmp_path, f'[[member]]\nspec = "sharpness"\n[[member]]\nspec = "{first}"\n'))
    member = ens.members[1]

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(member, "score", broken)
    with pytest.raises(MetricError, match=r"member 2 \('clip-prompt-levels.*out of memory"):
        ens.score(images[:2], PROMPTS[:2])

    def missing():
        raise AssetError("weights.pt: not found")

    monkeypatch.setattr(member, "prepare", missing)
    with pytest.raises(AssetError, match="member 2 .*weights.pt: not found"):  # still ends a run
        ens.prepare()
    monkeypatch.setattr(member, "score", lambda im, p: np.array([np.nan] * len(im)))
    with pytest.raises(MetricError, match="member 2 .*no finite score"):
        ens.score(images[:2], PROMPTS[:2])


@pytest.mark.parametrize(("text", "message"), [
    ('combine = "median"\n[[member]]\nspec = "sharpness"\n', "combine = 'median' is not one of"),
    ('combine = "mean"\n', "no members"),
    ('rule = "mean"\n[[member]]\nspec = "sharpness"\n', "unknown key.* rule"),
    ('[[member]]\nspec = "sharpness"\nweigth = 2\n', "member 1: unknown key.* weigth"),
    ('[[member]]\nspec = "sharpnes"\n', "member 1 .*unknown metric 'sharpnes'"),
    ('[[member]]\nspec = "sharpness:colour=1"\n', "member 1 .*unknown option.* colour"),
    ('[[member]]\nweight = 1\n', "member 1 has no spec"),
    ('[[member]]\nspec = "sharpness"\nweight = -1\n', "weight = -1 must be a positive"),
    ('combine = "product"\n[[member]]\nspec = "sharpness"\nweight = 2\n', "weight is for"),
    ('scale = 0\n[[member]]\nspec = "sharpness"\n', "scale = 0 must be a positive"),
    ('[[member]]\nspec = "sharpness"\n[[member]]\nspec = "piqe"\n', "disagree on the direction"),
    ('[[member]]\nspec = "ensemble:config=x.toml"\n', "cannot be an ensemble"),
    ("combine = \n", "not valid TOML"),
])
def test_bad_configs_are_errors_naming_the_file(tmp_path, text, message):
    path = _config(tmp_path, text)
    with pytest.raises(MetricError, match=message) as caught:
        create_metric("ensemble", config=path)
    assert path in str(caught.value)


def test_a_missing_or_absent_config_is_named(tmp_path):
    with pytest.raises(MetricError, match=r"config file .*nope.toml not found"):
        metric_from_spec(f"ensemble:config={tmp_path / 'nope.toml'}")
    with pytest.raises(MetricError, match="needs config=FILE"):
        Ensemble()


class _Named(Metric):
    """Reads names: records each text it is given; score = length of the text."""

    name: ClassVar[str] = "test_ensemble_named"
    needs_prompt: ClassVar[bool] = True
    reads_names = True
    seen: ClassVar[list[str]] = []

    def model_text(self, prompt: str, name: str, generator: str) -> str:
        return f"{generator}|{name}|{prompt}"

    def score_batch(self, images, prompts):
        type(self).seen.extend(prompts)
        return np.array([float(len(p)) for p in prompts])


def test_served_with_allow_names_each_member_reads_its_own_text(tmp_path):
    import httpx

    from aigiqa.metrics.registry import _METRICS, register_metric
    from aigiqa.serve import ServeConfig, create_app
    from aigiqa.testing.servers import running_server

    register_metric(_Named)
    try:
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "MJ_0002.png")
        path = _config(tmp_path, 'combine = "sum"\n[[member]]\nspec = "test_ensemble_named"\n'
                       'weight = 2\n[[member]]\nspec = "sharpness"\n')
        config = ServeConfig(allow_dir=tmp_path, metrics=(f"ens=ensemble:config={path}",),
                             allow_names=True)
        _Named.seen.clear()
        with running_server(create_app(config)) as url, httpx.Client(base_url=url,
                                                                     timeout=30) as client:
            response = client.post("/v1/score", json={"images": [
                {"path": "MJ_0002.png", "prompt": "a dog", "generator": "Midjourney"}],
                "metrics": ["ens"]})
        assert response.status_code == 200, response.text
        text = "Midjourney|MJ_0002.png|a dog"
        assert _Named.seen == [text]
        sharp = create_metric("sharpness").score([np.zeros((16, 16, 3), np.uint8)])[0]
        assert response.json()["results"][0]["scores"]["ens"] == pytest.approx(
            2 * len(text) + sharp)
    finally:
        _METRICS.pop(_Named.name, None)
