"""`aigiqa mos --pairs` and `aigiqa databases show` on a preference database."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
from typer.testing import CliRunner

from aigiqa.cli import app
from aigiqa.comparisons import read_comparisons
from aigiqa.subjective import scale_pairs

runner = CliRunner()


def test_mos_pairs_writes_the_scale(tmp_path):
    rows = [("x", "y", "a"), ("y", "z", "a"), ("z", "x", "b"), ("x", "z", "tie"),
            ("y", "x", "a"), ("z", "y", "b"), ("x", "y", "tie")]
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame(rows, columns=["a", "b", "outcome"]).to_csv(pairs, index=False)
    out = tmp_path / "scale.csv"
    result = runner.invoke(app, ["mos", str(pairs), "--out", str(out), "--pairs", "--model",
                                 "thurstone"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 items, 7 comparisons, thurstone" in result.output
    table = pd.read_csv(out)
    expected = scale_pairs(read_comparisons(pairs), "thurstone")
    assert list(table.columns) == ["item", "score", "se", "ci_low", "ci_high", "wins", "losses",
                                   "ties"]
    assert table["item"].tolist() == expected["item"].tolist()
    assert (table["score"] - expected["score"]).abs().max() < 1e-12


def test_mos_pairs_bad_rows_are_one_error(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b,outcome\nx,y,a\nx,x,b\ny,x,left\n")
    proc = subprocess.run([sys.executable, "-m", "aigiqa.cli", "mos", str(pairs), "--out",
                           str(tmp_path / "o.csv"), "--pairs"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {pairs}: 2 bad comparison(s)")
    assert "pairs.csv row 3: image 'x' is compared with itself" in proc.stderr
    assert "pairs.csv row 4: outcome 'left' is not one of" in proc.stderr
    assert not (tmp_path / "o.csv").exists()
    bad = runner.invoke(app, ["mos", str(pairs), "--out", str(tmp_path / "o.csv"), "--pairs",
                              "--method", "mle"])
    assert bad.exit_code != 0 and "--pairs takes --model" in str(bad.exception)


def test_databases_show_counts_comparisons(shared):
    root = shared / "reference" / "imagereward"
    counts = {"a": 0, "b": 0, "tie": 0}
    items = json.loads((root / "test.json").read_text())
    for it in items:
        r = it["ranking"]
        for i in range(len(r)):
            for j in range(i + 1, len(r)):
                counts["a" if r[i] < r[j] else "b" if r[i] > r[j] else "tie"] += 1
    result = runner.invoke(app, ["databases", "show", "imagereward-test", str(root)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (f"{len(items)} groups, {sum(counts.values())} comparisons: a {counts['a']}, "
            f"b {counts['b']}, tie {counts['tie']}") in result.output
