"""Pairwise accuracy under each benchmark's rule, its bootstrap over groups, and MOS pairs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from aigiqa.comparisons import comparisons_frame, ranking_pairs
from aigiqa.databases import load_database
from aigiqa.errors import AigiqaError, EvaluationError
from aigiqa.evaluation import bootstrap_counts, mos_pairs, pairwise_accuracy


# Written from the benchmarks' descriptions, loop by loop, independently of the module ---------
def imagereward_acc(groups, scores):
    """ImageReward test.py: skip human ties; a prediction tie is wrong; pooled."""
    total = correct = 0
    for names, ranks in groups:
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                if ranks[i] == ranks[j]:
                    continue
                total += 1
                better_i = ranks[i] < ranks[j]
                si, sj = scores[names[i]], scores[names[j]]
                correct += (si > sj) if better_i else (si < sj)
    return correct / total


def hpsv2_acc(groups, scores):
    """HPS v2: predicted ranks by sorting scores (stable); 1 - inversions / C(n, 2); mean."""
    accs = []
    for names, ranks in groups:
        order = sorted(range(len(names)), key=lambda k: -scores[names[k]])
        pred = [order.index(k) for k in range(len(names))]
        n = len(names)
        inv = sum(1 for i in range(n) for j in range(i + 1, n)
                  if (ranks[i] - ranks[j]) * (pred[i] - pred[j]) < 0)
        accs.append(1 - inv / (n * (n - 1) / 2))
    return sum(accs) / len(accs)


def pickscore_acc(pairs, scores):
    """PickScore: label_0 * [s0 > s1] + label_1 * [s0 < s1], averaged."""
    got = []
    for a, b, outcome in pairs:
        l0, l1 = {"a": (1, 0), "b": (0, 1), "tie": (0.5, 0.5)}[outcome]
        got.append(l0 * (scores[a] > scores[b]) + l1 * (scores[a] < scores[b]))
    return sum(got) / len(got)


def _groups(rng, n_groups=40, ties=True):
    groups, rows = [], []
    for g in range(n_groups):
        n = int(rng.integers(2, 7))
        names = [f"g{g}i{k}" for k in range(n)]
        ranks = rng.integers(1, n + 1 if ties else 10**9, size=n).tolist()
        groups.append((names, ranks))
        rows += ranking_pairs(str(g), names, ranks)
    return groups, comparisons_frame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rules_match_the_benchmarks_definitions(seed):
    rng = np.random.default_rng(seed)
    groups, comp = _groups(rng)
    names = [n for g in groups for n in g[0]]
    scores = {n: float(v) for n, v in zip(names, rng.integers(0, 4, len(names)), strict=True)}
    assert len(set(scores.values())) < len(scores)  # equal scores occur: the tie rules matter
    ir = pairwise_accuracy(comp, scores, rule="imagereward", bootstrap=0)
    assert ir.accuracy == pytest.approx(imagereward_acc(groups, scores), abs=1e-12)
    assert ir.n_pairs == int((comp["outcome"] != "tie").sum()) and ir.ci is None
    hps = pairwise_accuracy(comp, scores, rule="hpsv2", bootstrap=0)
    assert hps.accuracy == pytest.approx(hpsv2_acc(groups, scores), abs=1e-12)
    pairs = comp[["a", "b", "outcome"]].itertuples(index=False)
    pick = pairwise_accuracy(comp, scores, rule="pickscore", bootstrap=0)
    assert pick.accuracy == pytest.approx(pickscore_acc(list(pairs), scores), abs=1e-12)
    neg = pairwise_accuracy(comp, {k: -v for k, v in scores.items()}, rule="pickscore",
                            lower_better=True, bootstrap=0)
    assert neg.accuracy == pick.accuracy


def test_oracle_and_reversed_scores_on_real_imagereward(shared):
    root = shared / "reference" / "imagereward"
    items = json.loads((root / "test.json").read_text())
    db = load_database("imagereward-test", root, check_images=False)
    oracle = {g: -r for it in items for g, r in zip(it["generations"], it["ranking"],
                                                    strict=True)}
    for rule in ("imagereward", "hpsv2"):
        assert pairwise_accuracy(db, oracle, rule=rule, bootstrap=0).accuracy == 1.0
    assert pairwise_accuracy(db, oracle, rule="imagereward", lower_better=True,
                             bootstrap=0).accuracy == 0.0
    # a constant score: every counted pair is a prediction tie, wrong under ImageReward's rule
    const = pairwise_accuracy(db, dict.fromkeys(oracle, 1.0), bootstrap=0)
    assert const.accuracy == 0.0 and const.n_pairs == 6399
    groups = [(it["generations"], it["ranking"]) for it in items]
    first = {g: -k for it in items for k, g in enumerate(it["generations"])}
    got = pairwise_accuracy(db, first, bootstrap=200)
    assert got.accuracy == pytest.approx(imagereward_acc(groups, first), abs=1e-12)
    assert got.ci[0] < got.accuracy < got.ci[1] and got.n_groups == 466


def test_bootstrap_is_over_groups_and_per_group_breakdown():
    rng = np.random.default_rng(5)
    groups, comp = _groups(rng, n_groups=30)
    scores = {n: float(rng.random()) for g in groups for n in g[0]}
    res = pairwise_accuracy(comp, scores, bootstrap=300, seed=3)
    per = res.per_group.set_index("group")
    assert per.loc["0", "n_images"] == len(groups[0][0])
    assert (per["n_pairs"] == comp.assign(c=comp.outcome != "tie").groupby("group")["c"]
            .sum().reindex(per.index)).all()
    # the same statistic recomputed by hand on the same group resamples
    used = per[per["n_pairs"] > 0]
    counts = bootstrap_counts(len(used), 300, 3).astype(float)
    manual = (used["credit"].to_numpy() @ counts) / (used["n_pairs"].to_numpy() @ counts)
    lo, hi = np.quantile(manual, [0.025, 0.975])
    assert res.ci == pytest.approx((lo, hi), abs=1e-12)
    again = pairwise_accuracy(comp, scores, bootstrap=300, seed=3)
    assert again.ci == res.ci
    assert pairwise_accuracy(comp, scores, bootstrap=300, seed=4).ci != res.ci


def test_all_tie_group_is_listed_not_counted():
    comp = comparisons_frame(ranking_pairs("t", ["x", "y"], [1, 1])
                             + ranking_pairs("u", ["p", "q"], [1, 2]))
    res = pairwise_accuracy(comp, {"x": 1, "y": 2, "p": 2, "q": 1}, bootstrap=10)
    per = res.per_group.set_index("group")
    assert per.loc["t", "n_pairs"] == 0 and math.isnan(per.loc["t", "accuracy"])
    assert res.n_groups == 1 and res.accuracy == 1.0
    with pytest.raises(EvaluationError, match="no comparison counts"):
        pairwise_accuracy(comp.iloc[:1], {"x": 1, "y": 2})


def test_missing_scores_and_bad_options_are_errors():
    comp = comparisons_frame(ranking_pairs("g", ["x", "y", "z"], [1, 2, 3]))
    with pytest.raises(EvaluationError) as err:
        pairwise_accuracy(comp, {"x": 1.0, "y": float("nan")})
    assert err.value.problems == ["image 'y': score nan", "image 'z': score missing"]
    with pytest.raises(EvaluationError, match="values must be numbers"):
        pairwise_accuracy(comp, {"x": 1.0, "y": "high", "z": 0.0})
    with pytest.raises(EvaluationError, match="unknown rule 'nope'"):
        pairwise_accuracy(comp, {"x": 1, "y": 2, "z": 3}, rule="nope")
    bad = comp.assign(outcome=["a", "b", "up"])
    with pytest.raises(AigiqaError, match="outcome 'up'"):
        pairwise_accuracy(bad, {"x": 1, "y": 2, "z": 3})


def test_mos_pairs_with_gap_and_groups():
    mos = pd.Series({"a": 1.0, "b": 1.0, "c": 2.0, "d": 4.0, "e": 3.5})
    comp = mos_pairs(mos)
    assert len(comp) == 10 and set(comp["group"]) == {"all"}
    row = comp[(comp.a == "a") & (comp.b == "b")]
    assert row["outcome"].tolist() == ["tie"]
    assert comp[(comp.a == "c") & (comp.b == "d")]["outcome"].tolist() == ["b"]
    gap = mos_pairs(mos, min_gap=1.0)
    diffs = [abs(mos[a] - mos[b]) for a, b in zip(gap["a"], gap["b"], strict=True)]
    assert len(gap) == 8 and min(diffs) >= 1.0 and "tie" not in set(gap["outcome"])
    by = mos_pairs(mos, groups={"a": "p", "b": "p", "c": "p", "d": "q", "e": "q"})
    assert len(by) == 4 and sorted(set(by["group"])) == ["p", "q"]
    # MOS itself is a perfect score on the pairs it implies
    assert pairwise_accuracy(gap, mos, bootstrap=0).accuracy == 1.0
    with pytest.raises(EvaluationError, match="exceed max_pairs"):
        mos_pairs(mos, max_pairs=3)
    with pytest.raises(EvaluationError, match="min_gap"):
        mos_pairs(mos, min_gap=-1)


def test_mos_pairs_from_a_database(tmp_path):
    from aigiqa.databases import Database, DatabaseInfo, Record

    info = DatabaseInfo("t", (0.0, 5.0), ("mos", "alignment"))
    recs = [Record("a", tmp_path / "a", "p1", targets={"mos": 1.0, "alignment": 3.0}),
            Record("b", tmp_path / "b", "p1", targets={"mos": 2.0, "alignment": 1.0}),
            Record("c", tmp_path / "c", "p2", targets={"mos": 4.0}),
            Record("d", tmp_path / "d", "p2", targets={"mos": 3.0}),
            Record("e", tmp_path / "e", "p2")]  # blind: never paired
    db = Database(info, recs, tmp_path)
    comp = mos_pairs(db, group_by="prompt")
    assert comp[["group", "a", "b", "outcome"]].values.tolist() == [
        ["p1", "a", "b", "b"], ["p2", "c", "d", "a"]]
    assert len(mos_pairs(db)) == 6
    assert mos_pairs(db, target="alignment")["outcome"].tolist() == ["a"]
    with pytest.raises(EvaluationError, match="group_by='cfg'"):
        mos_pairs(db, group_by="cfg")
    with pytest.raises(EvaluationError, match="apply to a Database"):
        mos_pairs({"a": 1.0}, group_by="prompt")
