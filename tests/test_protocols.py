"""Protocols that compare across papers: public:7/1/2 (fixed, hash-assigned, stratified), logo
(leave one generator out) and prompt-disjoint, on the real AIGIQA-20K annotations and on small
databases built here."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import aigiqa
from aigiqa.cli import app
from aigiqa.databases.base import Database, Record
from aigiqa.errors import AigiqaError, SplitError
from aigiqa.protocols import logo_sweep, normalise_prompt
from aigiqa.splits import resolve_split, training_records

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def aigiqa20k(shared):
    return aigiqa.load_database("aigiqa20k", shared / "reference" / "aigiqa20k",
                                check_images=False)


def _names_sha256(names) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


def _readme_public_table() -> dict[str, tuple[int, str]]:
    rows = re.findall(r"^\s*\| (train|val|test) \| (\d+) \| `([0-9a-f]{64})` \|$",
                      README.read_text(), flags=re.MULTILINE)
    return {part: (int(n), sha) for part, n, sha in rows}


def _database(records) -> Database:
    from aigiqa.databases.base import DatabaseInfo

    info = DatabaseInfo(name="toy", score_range=(0.0, 5.0), target_names=("mos",))
    return Database(info, records, "/nowhere")


def _toy(n_per_generator=(30, 20, 10), prompts=None) -> Database:
    records = []
    for g, n in enumerate(n_per_generator):
        for i in range(n):
            name = f"G{g}_{i:03d}.png"
            prompt = prompts(g, i) if prompts else f"prompt {g} {i}"
            records.append(Record(name=name, path=Path("/nowhere") / name, prompt=prompt,
                                  generator=f"Gen {g}", split="train",
                                  targets={"mos": float(i % 5)}))
    return _database(records)


# public:7/1/2 ------------------------------------------------------------------------------------
def test_public_split_of_aigiqa20k_is_the_one_the_readme_publishes(aigiqa20k):
    parts = resolve_split(aigiqa20k, "public:7/1/2")
    published = _readme_public_table()
    assert set(published) == {"train", "val", "test"}
    for part, names in parts.items():
        assert (len(names), _names_sha256(names)) == published[part], part
    assert resolve_split(aigiqa20k, "public") == parts
    assert resolve_split(aigiqa20k, "Public:7/1/2", seed=123) == parts  # no seed, any case


def test_public_split_is_stratified_and_a_partition(aigiqa20k):
    parts = resolve_split(aigiqa20k, "public")
    labelled = [rec.name for rec in aigiqa20k.labelled()]
    assert sorted(sum(parts.values(), [])) == sorted(labelled)
    total = Counter(rec.generator for rec in aigiqa20k.labelled())
    for part, share in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        counts = Counter(aigiqa20k.record(n).generator for n in parts[part])
        for generator, n in total.items():
            assert abs(counts[generator] - share * n) <= 2, (part, generator)


def test_public_split_does_not_depend_on_record_order():
    db = _toy()
    reversed_db = _database(list(reversed(db.records)))
    for part, names in resolve_split(db, "public").items():
        assert sorted(resolve_split(reversed_db, "public")[part]) == sorted(names)


def test_public_parts_are_parsed_and_checked():
    db = _toy()
    assert set(resolve_split(db, "public:8/2")) == {"train", "test"}
    assert len(resolve_split(db, "public:8/2")["test"]) == 12
    for bad in ("public:7/x/2", "public:1/2/3/4", "public:0/1", "public:7"):
        with pytest.raises(SplitError, match="public"):
            resolve_split(db, bad)


# logo --------------------------------------------------------------------------------------------
def test_logo_tests_on_one_generator_and_trains_on_the_others(aigiqa20k):
    parts = resolve_split(aigiqa20k, "logo:sdxl turbo")
    assert {aigiqa20k.record(n).generator for n in parts["test"]} == {"SDXL Turbo"}
    assert len(parts["test"]) == 700
    assert "SDXL Turbo" not in {aigiqa20k.record(n).generator for n in parts["train"]}
    assert len(parts["train"]) + len(parts["test"]) == 14000


def test_logo_sweep_puts_every_image_in_one_test_part():
    db = _toy()
    sweep = logo_sweep(db)
    assert list(sweep) == ["Gen 0", "Gen 1", "Gen 2"]
    tested = Counter(n for parts in sweep.values() for n in parts["test"])
    assert set(tested.values()) == {1} and len(tested) == len(db)


def test_logo_errors_name_the_generators():
    db = _toy()
    with pytest.raises(SplitError, match="Gen 0, Gen 1, Gen 2"):
        resolve_split(db, "logo:Gen 7")
    with pytest.raises(SplitError, match="logo:GENERATOR"):
        resolve_split(db, "logo")
    unnamed = _database([*db.records, Record(name="x.png", path=Path("/nowhere/x.png"),
                                             prompt="p", generator="", split="train",
                                             targets={"mos": 1.0})])
    with pytest.raises(SplitError, match="no generator"):
        resolve_split(unnamed, "logo:Gen 0")


# prompt-disjoint ----------
def test_no_prompt_is_in_two_parts_of_aigiqa20k(aigiqa20k):
    parts = resolve_split(aigiqa20k, "prompt-disjoint:7/1/2")
    seen: dict[str, str] = {}
    for part, names in parts.items():
        for name in names:
            prompt = normalise_prompt(aigiqa20k.record(name).prompt)
            assert seen.setdefault(prompt, part) == part, prompt
    largest = max(Counter(normalise_prompt(r.prompt) for r in aigiqa20k.labelled()).values())
    for part, share in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs(len(parts[part]) - share * 14000) <= largest


def test_prompts_match_after_folding_case_and_space_and_seed_moves_groups():
    db = _toy(prompts=lambda g, i: (f"A  Cat {i % 7}" if g == 0 else f"a cat {i % 7}"))
    parts = resolve_split(db, "prompt-disjoint:7/1/2", seed=0)
    part_of = {n: p for p, names in parts.items() for n in names}
    for i in range(7):  # "A  Cat i" and "a cat i" are one prompt: all their images together
        group = {part_of[r.name] for r in db.records if r.prompt.casefold().split()[-1] == str(i)}
        assert len(group) == 1
    assert resolve_split(db, "prompt-disjoint:7/1/2", seed=1) != parts


def test_images_without_a_prompt_are_groups_of_their_own():
    db = _toy(prompts=lambda g, i: "")
    parts = resolve_split(db, "prompt-disjoint:8/2")
    assert len(parts["test"]) == 12 and len(parts["train"]) == 48


# Where the specs are taken -----------------------------------------------------------------------
def test_training_takes_the_protocols():
    db = _toy()
    train = training_records(db, "logo:gen 2")
    assert {r.generator for r in train} == {"Gen 0", "Gen 1"}
    assert len(training_records(db, "public:7/1/2")) == 42


def test_cli_shows_the_logo_sweep(tmp_path):
    from aigiqa.demo import build_demo

    root = build_demo(tmp_path / "demo", n=40, seed=0)
    out = tmp_path / "logo.csv"
    result = CliRunner().invoke(app, ["splits", "demo", str(root), "--split", "logo",
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    import pandas as pd

    frame = pd.read_csv(out)
    db = aigiqa.load_database("demo", root)
    assert set(frame["held_out"]) == set(db.generators)
    assert (frame[frame["split"] == "test"].groupby("held_out").size().sum()
            == len(db.labelled()))
    for generator in db.generators:
        assert generator in result.output


def test_cli_refuses_a_split_csv_it_cannot_write_before_reading(tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    result = CliRunner().invoke(app, ["splits", "demo", str(tmp_path / "no-database"),
                                      "--split", "logo", "--out", str(folder)])
    message = str(result.exception)  # aigiqa's main() prints an AigiqaError as one line
    assert isinstance(result.exception, AigiqaError), result.output
    assert "the split CSV must be a file" in message and "--out" in message
