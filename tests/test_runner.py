"""The benchmark runner: caching, failures, prompts, parallel workers and crash safety."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aigiqa.benchmark.runner import (
    ScoreTable,
    read_prompts_csv,
    score_files,
    score_images,
)
from aigiqa.errors import AigiqaError, MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.describe import metric_metadata
from aigiqa.metrics.registry import metric_from_spec, register_metric
from aigiqa.store import ScoreStore
from aigiqa.store import scores as store_scores


def ident_of(image: np.ndarray) -> int:
    """The number a test image carries in its top-left pixel (R + 256 G)."""
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])


@register_metric
class ProbeMetric(Metric):
    """Test metric: the image's number + ``offset``; raises on image ``fail_on``; counts calls."""

    name: ClassVar[str] = "test-runner-probe"
    defaults: ClassVar[dict] = {"offset": 0.0, "fail_on": -1, "nan_on": -1}
    calls: ClassVar[list[int]] = []

    def score(self, images, prompts=None):
        idents = [ident_of(im) for im in images]
        if self.options["fail_on"] in idents:
            raise ValueError(f"probe cannot score image {self.options['fail_on']}")
        ProbeMetric.calls.extend(idents)
        return np.array(
            [np.nan if i == self.options["nan_on"] else i + self.options["offset"] for i in idents]
        )


@register_metric
class PromptProbe(Metric):
    """Test prompt-aware metric: image number + 1000 × prompt length."""

    name: ClassVar[str] = "test-runner-prompt-probe"
    kind: ClassVar[str] = "alignment"
    needs_prompt: ClassVar[bool] = True

    def score(self, images, prompts=None):
        self.check_batch(images, prompts)
        pairs = zip(images, prompts, strict=True)
        return np.array([ident_of(im) + 1000 * len(p) for im, p in pairs])


def write_image(path: Path, ident: int, seed: int = 0) -> Path:
    """A 4×4 RGB image whose top-left pixel encodes ``ident`` (format from the suffix)."""
    rng = np.random.default_rng(seed * 100_003 + ident)
    pixels = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    pixels[0, 0] = (ident % 256, ident // 256, 7)
    Image.fromarray(pixels).save(path)
    return path


def make_images(folder: Path, n: int, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_image(folder / f"img_{i:04d}{suffix}", i) for i in range(n)]


@pytest.fixture(autouse=True)
def _reset_calls():
    ProbeMetric.calls.clear()


def test_cache_hit_second_run_computes_nothing(tmp_path):
    paths = make_images(tmp_path / "imgs", 20)
    store = tmp_path / "scores.sqlite"
    first = score_images(paths, [ProbeMetric()], store=store, progress=False)
    assert isinstance(first, ScoreTable)
    assert (first.computed, first.cached) == (20, 0)
    assert list(first.scores.columns) == ["test-runner-probe"]
    np.testing.assert_array_equal(first.scores["test-runner-probe"].to_numpy(), np.arange(20.0))
    assert sorted(ProbeMetric.calls) == list(range(20))
    ProbeMetric.calls.clear()
    second = score_images(paths, ["test-runner-probe"], store=store, progress=False)
    assert (second.computed, second.cached) == (0, 20)
    assert ProbeMetric.calls == []
    pd.testing.assert_frame_equal(first.scores, second.scores)
    with ScoreStore(store) as db:
        assert db.count() == 20


def test_cached_run_reads_no_image_file(tmp_path, monkeypatch):
    paths = make_images(tmp_path / "imgs", 10)
    old = time.time_ns() - 3600 * 10**9  # an hour ago: outside the racy window
    for p in paths:
        os.utime(p, ns=(old, old))
    store = tmp_path / "s.sqlite"
    score_images(paths, [ProbeMetric()], store=store, progress=False)
    reads: list[str] = []
    real = store_scores.sha256_of
    monkeypatch.setattr(store_scores, "sha256_of", lambda p: reads.append(p) or real(p))
    second = score_images(paths, [ProbeMetric()], store=store, progress=False)
    assert second.computed == 0
    assert reads == []


def test_option_change_gives_new_key_and_recomputes(tmp_path):
    paths = make_images(tmp_path / "imgs", 6)
    store = tmp_path / "s.sqlite"
    score_images(paths, [ProbeMetric()], store=store, progress=False)
    shifted = score_images(paths, ["test-runner-probe:offset=0.5"], store=store, progress=False)
    assert (shifted.computed, shifted.cached) == (6, 0)
    assert list(shifted.scores.columns) == ["test-runner-probe:offset=0.5"]
    np.testing.assert_array_equal(shifted.scores.iloc[:, 0].to_numpy(), np.arange(6) + 0.5)
    assert ProbeMetric().key != ProbeMetric(offset=0.5).key
    both = score_images(paths, ["test-runner-probe", ProbeMetric(offset=0.5)], store=store,
                        progress=False)
    assert (both.computed, both.cached) == (0, 12)


@pytest.mark.parametrize("racy", [False, True], ids=["old-mtime", "same-mtime-racy"])
def test_content_change_of_same_path_recomputes(tmp_path, racy):
    paths = make_images(tmp_path / "imgs", 3, suffix=".bmp")  # BMP: same size for new content
    target = paths[1]
    old = time.time_ns() - 3600 * 10**9
    if not racy:
        os.utime(target, ns=(old, old))
    store = tmp_path / "s.sqlite"
    first = score_images(paths, [ProbeMetric()], store=store, progress=False)
    assert first.scores.iloc[1, 0] == 1
    before = target.stat()
    write_image(target, 42)
    assert target.stat().st_size == before.st_size
    if racy:  # rewritten within the timestamp granularity: size and mtime look unchanged
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    second = score_images(paths, [ProbeMetric()], store=store, progress=False)
    assert (second.computed, second.cached) == (1, 2)
    assert second.scores.iloc[:, 0].tolist() == [0, 42, 2]


def test_renamed_or_copied_file_with_same_content_is_cached(tmp_path):
    paths = make_images(tmp_path / "imgs", 5)
    store = tmp_path / "s.sqlite"
    score_images(paths, [ProbeMetric()], store=store, progress=False)
    other = tmp_path / "elsewhere"
    other.mkdir()
    moved = [shutil.copy2(p, other / f"renamed_{k}.png") for k, p in enumerate(paths)]
    ProbeMetric.calls.clear()
    result = score_images(moved, [ProbeMetric()], store=store, progress=False)
    assert (result.computed, result.cached) == (0, 5)
    assert ProbeMetric.calls == []
    assert result.scores.iloc[:, 0].tolist() == [0, 1, 2, 3, 4]
    # Two copies of a new image in one run: scored once.
    fresh = write_image(tmp_path / "new.png", 77)
    twin = Path(shutil.copy(fresh, tmp_path / "new_copy.png"))
    pair = score_images([fresh, twin], [ProbeMetric()], store=store, progress=False)
    assert pair.computed == 1
    assert ProbeMetric.calls == [77]
    assert pair.scores.iloc[:, 0].tolist() == [77, 77]


def test_failing_images_are_recorded_cached_and_retried_on_request(tmp_path):
    paths = make_images(tmp_path / "imgs", 6)
    empty = tmp_path / "imgs" / "empty.png"
    empty.write_bytes(b"")
    corrupt = tmp_path / "imgs" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    missing = tmp_path / "imgs" / "missing.png"
    inputs = [*paths[:3], empty, *paths[3:], corrupt, missing]
    store = tmp_path / "s.sqlite"
    result = score_images(inputs, [ProbeMetric()], store=store, progress=False, batch_size=4)
    column = result.scores.iloc[:, 0]
    assert column.isna().tolist() == [False] * 3 + [True] + [False] * 3 + [True, True]
    assert column.dropna().tolist() == [0, 1, 2, 3, 4, 5]
    by_name = {f["name"]: f for f in result.failures}
    assert set(by_name) == {"empty.png", "corrupt.png", "missing.png"}
    assert "empty" in by_name["empty.png"]["error"]
    assert "cannot read image" in by_name["corrupt.png"]["error"]
    assert "not found" in by_name["missing.png"]["error"]
    assert all(f["metric"] == "test-runner-probe" for f in result.failures)
    assert by_name["corrupt.png"]["path"] == str(corrupt)
    with ScoreStore(store) as db:
        assert db.count(failed=True) == 2  # the missing file has no content to key a row by
    again = score_images(inputs, [ProbeMetric()], store=store, progress=False)
    assert (again.computed, again.cached) == (0, 8)
    assert {f["name"] for f in again.failures} == set(by_name)
    retried = score_images(inputs, [ProbeMetric()], store=store, progress=False,
                           retry_failed=True)
    assert (retried.computed, retried.cached) == (2, 6)
    assert len(retried.failures) == 3
    with ScoreStore(store) as db:
        assert db.count() == 8


def test_metric_raising_on_one_image_is_isolated(tmp_path):
    paths = make_images(tmp_path / "imgs", 10)
    result = score_images(paths, [ProbeMetric(fail_on=3)], progress=False, batch_size=8)
    column = result.scores.iloc[:, 0]
    assert column.isna().tolist() == [i == 3 for i in range(10)]
    assert column.dropna().tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert len(result.failures) == 1
    failure = result.failures[0]
    assert failure["name"] == "img_0003.png"
    assert failure["metric"] == "test-runner-probe:fail_on=3"
    assert "ValueError" in failure["error"] and "image 3" in failure["error"]


def test_non_finite_score_is_a_failure(tmp_path):
    paths = make_images(tmp_path / "imgs", 4)
    result = score_images(paths, [ProbeMetric(nan_on=2)], progress=False)
    assert result.scores.iloc[:, 0].isna().tolist() == [False, False, True, False]
    assert [f["name"] for f in result.failures] == ["img_0002.png"]
    assert "nan" in result.failures[0]["error"]


@pytest.mark.parametrize("workers", [1, 2])
def test_missing_asset_ends_the_run_and_is_not_cached_as_image_failures(
    tmp_path, monkeypatch, workers
):
    paths = [tmp_path / f"n{i}.png" for i in range(20)]
    rng = np.random.default_rng(0)
    for p in paths:
        Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(p)
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "empty-user"))
    store = tmp_path / "s.sqlite"
    with pytest.raises(AigiqaError, match=r"niqe/modelparameters\.mat.*not found"):
        score_images(paths, ["niqe"], store=store, progress=False, workers=workers,
                     batch_size=4)
    with ScoreStore(store) as db:
        assert db.count(failed=True) == 0


def test_prompt_aware_metric_needs_prompts(tmp_path):
    paths = make_images(tmp_path / "imgs", 4)
    with pytest.raises(MetricError, match="needs a prompt") as err:
        score_images(paths, [PromptProbe()], progress=False)
    assert err.value.problems == [p.name for p in paths]
    ProbeMetric.calls.clear()
    with pytest.raises(MetricError) as err:
        score_images(paths, [ProbeMetric(), PromptProbe()], prompts=["a", "", "abc", None],
                     progress=False)
    assert err.value.problems == ["img_0001.png", "img_0003.png"]
    assert ProbeMetric.calls == []  # raised before any scoring
    store = tmp_path / "s.sqlite"
    prompts = {"img_0000.png": "a", "img_0001.png": "bb", "img_0002.png": "c",
               "img_0003.png": "dddd"}
    result = score_images(paths, [PromptProbe(), ProbeMetric()], prompts=prompts, store=store,
                          progress=False)
    assert result.scores["test-runner-prompt-probe"].tolist() == [1000, 2001, 1002, 4003]
    # A changed prompt is a new input for the prompt-aware metric only.
    prompts["img_0002.png"] = "changed"
    again = score_images(paths, [PromptProbe(), ProbeMetric()], prompts=prompts, store=store,
                         progress=False)
    assert (again.computed, again.cached) == (1, 7)
    assert again.scores["test-runner-prompt-probe"].tolist() == [1000, 2001, 7002, 4003]


def test_two_workers_give_the_same_scores_as_one(tmp_path):
    paths = make_images(tmp_path / "imgs", 30)
    (tmp_path / "imgs" / "bad.png").write_bytes(b"junk")
    inputs = [*paths[:10], tmp_path / "imgs" / "bad.png", *paths[10:]]
    metrics = [ProbeMetric(fail_on=5), ProbeMetric(offset=2.0)]
    one = score_images(inputs, metrics, store=tmp_path / "one.sqlite", workers=1,
                       batch_size=4, progress=False)
    two = score_images(inputs, metrics, store=tmp_path / "two.sqlite", workers=2,
                       batch_size=4, progress=False)
    pd.testing.assert_frame_equal(one.scores, two.scores)
    assert one.failures == two.failures
    assert len(two.failures) == 3  # bad.png for both metrics, image 5 for the first
    assert (two.computed, two.cached) == (62, 0)
    with ScoreStore(tmp_path / "two.sqlite") as db:
        assert db.count() == 62


def test_bad_arguments(tmp_path):
    paths = make_images(tmp_path / "imgs", 2)
    with pytest.raises(MetricError, match="twice"):
        score_images(paths, ["test-runner-probe", ProbeMetric()], progress=False)
    with pytest.raises(MetricError, match="no metric"):
        score_images(paths, [], progress=False)
    with pytest.raises(AigiqaError, match="workers"):
        score_images(paths, [ProbeMetric()], workers=0, progress=False)
    with pytest.raises(AigiqaError, match="2 images but 1 names"):
        score_images(paths, [ProbeMetric()], names=["x"], progress=False)
    empty = score_images([], [ProbeMetric()], progress=False)
    assert empty.scores.shape == (0, 1) and empty.computed == 0


def test_read_prompts_csv(tmp_path):
    good = tmp_path / "prompts.csv"
    good.write_text('name,prompt\na.png,"a cat, sitting"\nb.png,\n', encoding="utf-8")
    assert read_prompts_csv(good) == {"a.png": "a cat, sitting", "b.png": ""}
    no_prompt = tmp_path / "bad.csv"
    no_prompt.write_text("image,text\na.png,x\n")
    with pytest.raises(AigiqaError, match="lacks column"):
        read_prompts_csv(no_prompt)
    dup = tmp_path / "dup.csv"
    dup.write_text("name,prompt\na.png,x\nb.png,y\na.png,z\n")
    with pytest.raises(AigiqaError, match="duplicate") as err:
        read_prompts_csv(dup)
    assert err.value.problems == ["row 2: 'a.png'", "row 4: 'a.png'"]
    with pytest.raises(AigiqaError, match="not found"):
        read_prompts_csv(tmp_path / "nope.csv")


def test_score_files_reads_folders_and_prompts(tmp_path):
    make_images(tmp_path / "mine", 3)
    write_image(tmp_path / "single.png", 9)
    csv = tmp_path / "prompts.csv"
    csv.write_text("name,prompt\nimg_0000.png,aa\nimg_0001,b\nimg_0002.png,cccc\nsingle.png,x\n")
    frame, table = score_files([tmp_path / "mine", tmp_path / "single.png"],
                               "test-runner-prompt-probe,test-runner-probe",
                               prompts_csv=csv, progress=False)
    assert list(frame.columns) == ["name", "path", "test-runner-prompt-probe",
                                   "test-runner-probe"]
    assert frame["name"].tolist() == ["img_0000.png", "img_0001.png", "img_0002.png",
                                      "single.png"]
    assert frame["test-runner-prompt-probe"].tolist() == [2000, 1001, 4002, 1009]
    assert frame["test-runner-probe"].tolist() == [0, 1, 2, 9]
    assert table.failures == []


SIGKILL_SCRIPT = """
import sys, time
from pathlib import Path
import numpy as np
from aigiqa.benchmark.runner import score_images
from aigiqa.metrics.base import Metric
from aigiqa.metrics.describe import metric_metadata
from aigiqa.metrics.registry import metric_from_spec, register_metric

folder, log, store, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

@register_metric
class SlowProbe(Metric):
    name = "test-slow-probe"
    def score(self, images, prompts=None):
        out = []
        for image in images:
            time.sleep(0.01)
            ident = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
            with open(log, "a") as f:  # one line per computation, flushed at close
                f.write(f"{ident}\\n")
            out.append(ident)
        return np.array(out, dtype=float)

paths = sorted(Path(folder).glob("*.png"))
score_images(paths, [SlowProbe()], store=store, workers=workers, batch_size=8, progress=False)
"""


def _stored_values(store: Path) -> list[float]:
    try:
        with sqlite3.connect(store, timeout=30) as conn:
            return [row[0] for row in conn.execute("SELECT value FROM scores")]
    except sqlite3.OperationalError:  # not created yet
        return []


def _processes_running(script: Path) -> list[str]:
    """Ids of live processes whose command line names ``script`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(script).encode() in (entry / "cmdline").read_bytes():
                status = (entry / "status").read_text()
                if "\nState:\tZ" not in status:  # a zombie has exited already
                    found.append(entry.name)
        except OSError:
            continue
    return found


def _log(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_run_then_rerun_loses_and_duplicates_nothing(tmp_path, workers):
    """Guarantee: after kill -9 and a re-run, every image has exactly one stored score, no
    score committed before the kill is computed again, and only images in flight at the kill
    (at most batch_size × 2 × workers, plus the batch being committed) are computed twice."""
    n, batch_size = 200, 8
    make_images(tmp_path / "imgs", n)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SIGKILL_SCRIPT))
    store = tmp_path / "scores.sqlite"
    args = [sys.executable, str(script), str(tmp_path / "imgs")]
    log1, log2 = tmp_path / "calls1.log", tmp_path / "calls2.log"
    proc = subprocess.Popen([*args, str(log1), str(store), str(workers)])
    deadline = time.monotonic() + 60
    while len(_stored_values(store)) < 40:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no scores committed within 60 s"
        time.sleep(0.02)
    proc.kill()  # SIGKILL
    proc.wait(timeout=30)
    committed = {int(v) for v in _stored_values(store)}
    assert 40 <= len(committed) < n, "the kill must land mid-run"
    if Path("/proc").is_dir():  # orphaned workers notice their parent is gone and exit
        deadline = time.monotonic() + 10
        while _processes_running(script):
            assert time.monotonic() < deadline, "worker processes outlived the killed run"
            time.sleep(0.1)

    rerun = subprocess.run([*args, str(log2), str(store), str(workers)], timeout=120)
    assert rerun.returncode == 0
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT metric_key, input_hash, value FROM scores").fetchall()
    assert len(rows) == n
    assert len({(k, h) for k, h, _ in rows}) == n
    assert sorted(int(v) for _, _, v in rows) == list(range(n))
    second = _log(log2)
    assert len(second) == len(set(second)), "an image was computed twice in one run"
    assert not set(second) & committed, "a committed score was computed again"
    assert set(second) == set(range(n)) - committed
    recomputed = set(_log(log1)) & set(second)  # in flight at the kill
    assert len(recomputed) <= batch_size * (2 * workers + 1)


def _tiny_database(folder: Path, n: int = 16):
    """A Database of n tiny images: two splits, two generators, a cfg hyper-parameter, MOS that
    follows the image number (noisily), and image 5 corrupt."""
    from aigiqa.databases.base import Database, DatabaseInfo, Record

    paths = make_images(folder, n)
    paths[5].write_bytes(b"corrupt")
    rng = np.random.default_rng(1)
    records = [
        Record(
            name=p.name, path=p, prompt=f"prompt {i}", generator="GenA" if i % 2 else "GenB",
            split="train" if i < 12 else "test", targets={"mos": i / 4 + rng.normal(0, 0.3)},
            hyper={"cfg": 5.0 if i % 3 else 7.5},
        )
        for i, p in enumerate(paths)
    ]
    info = DatabaseInfo(name="tiny", score_range=(0.0, 5.0), target_names=("mos",))
    return Database(info, records, folder)


def test_run_benchmark_end_to_end(tmp_path):
    from aigiqa.benchmark.runner import BenchmarkResult, run_benchmark

    db = _tiny_database(tmp_path / "db")
    store, out = tmp_path / "scores.sqlite", tmp_path / "out"
    result = run_benchmark(db, ["test-runner-probe", ProbeMetric(offset=1.0)], store=store,
                           out=out, progress=False, bootstrap=20, seed=0)
    assert isinstance(result, BenchmarkResult)
    specs = ["test-runner-probe", "test-runner-probe:offset=1.0"]
    assert list(result.frame.columns[-2:]) == specs
    assert result.frame["name"].tolist() == [rec.name for rec in db]
    assert result.frame["test-runner-probe"].isna().tolist() == [i == 5 for i in range(16)]
    assert result.frame["test-runner-probe:offset=1.0"].dropna().tolist() == [
        i + 1.0 for i in range(16) if i != 5
    ]
    assert {(f["name"], f["metric"]) for f in result.failures} == {
        ("img_0005.png", spec) for spec in specs
    }
    meta = result.meta
    assert (meta["computed"], meta["cached"]) == (32, 0)
    assert meta["database"] == "tiny" and meta["target"] == "mos"
    assert meta["score_range"] == [0.0, 5.0]
    assert [m["spec"] for m in meta["metrics"]] == specs
    assert meta["metrics"] == [metric_metadata(metric_from_spec(s)) for s in specs]
    assert {"spec", "name", "key", "kind", "lower_better", "needs_prompt", "score_range",
            "version", "options"} <= set(meta["metrics"][0])
    results = result.results
    overall = results[(results["group"] == "all") & (results["metric"] == specs[0])]
    assert overall["n"].item() == 15 and overall["n_failed"].item() == 1
    assert overall["srcc"].item() > 0.8  # MOS follows the image number
    assert {"split", "generator", "cfg"} <= set(results["group"])
    assert set(result.outputs) >= {"results_csv", "results_json", "report"}
    for path in result.outputs.values():
        assert path.is_file() and path.parent == out
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["meta"]["failures"]) == 2
    again = run_benchmark(db, specs, store=store, progress=False, bootstrap=0)
    assert (again.meta["computed"], again.meta["cached"]) == (0, 32)
    assert again.outputs == {}
    pd.testing.assert_frame_equal(again.frame, result.frame)
