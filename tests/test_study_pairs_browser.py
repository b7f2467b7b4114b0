"""A whole paired-comparison session in a real browser (Playwright driving Debian's Chromium)
against a real uvicorn server: practice, choices with ← → = and a button, pause, resume,
sessions, finish, admin exports (comparisons, scores, position bias).

Needs the ``playwright`` package and /usr/bin/chromium; it never downloads a browser. Set
AIGIQA_SCREENSHOTS=DIR to keep the screenshots.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aigiqa.study.plan_pairs import create_pair_study
from aigiqa.subjective import scale_pairs
from aigiqa.testing.servers import free_port, start_study_server
from studies import pair_database

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

try:  # a missing driver or browser is a visible failure, never a skip
    from playwright import sync_api
except ImportError:  # pragma: no cover - environment problem
    pytest.fail("the playwright package is missing: pip install playwright (never run "
                "'playwright install': the test uses Debian's Chromium)", pytrace=False)
if not CHROMIUM.exists():
    pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium", pytrace=False)

KEYS = {"ArrowLeft": "left", "ArrowRight": "right", "=": "tie"}


@pytest.fixture
def served(tmp_path):
    db = pair_database(tmp_path / "db", size=96)
    url = str(tmp_path / "study.db")
    study = create_pair_study(url, db, subjects=2, training=1, repeats=1, session_size=5,
                              seed=4, allow_ties=True)
    port = free_port()
    proc = start_study_server(url, port=port, log=tmp_path / "server.log")
    try:
        yield f"http://127.0.0.1:{port}", study
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


def progress(page) -> int:
    return int(page.inner_text("#progress-text").split("/")[0])


def wait_ready(page) -> None:
    """The trial is shown and both images have loaded (the buttons are enabled then)."""
    page.wait_for_selector("#trial:not([hidden])")
    page.wait_for_function("() => !document.getElementById('choose-left').disabled")


def answer(page, key: str | None = None, button: str | None = None) -> str:
    """Answer the current pair with a key (or a button click); wait for the next one."""
    done = progress(page)
    wait_ready(page)
    if key is not None:
        page.keyboard.press(key)
    else:
        page.click(button)
    page.wait_for_function("() => document.getElementById('progress-text').textContent"
                           f".startsWith('{done + 1} /')")
    return KEYS[key] if key is not None else button.split("-")[-1]


def test_full_pair_session_in_chromium(served, browser, tmp_path):
    base, study = served
    link = base + study.subjects[0].path
    total = study.n_trials[study.subjects[0].label]
    shots = Path(os.environ.get("AIGIQA_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1200, "height": 900},
                                  accept_downloads=True)
    page = context.new_page()
    page.goto(link)
    assert page.inner_text("#intro-title") == "Welcome"
    assert "=" in page.inner_text(".keys") and page.is_hidden("#trial")
    page.keyboard.press("Enter")
    wait_ready(page)
    assert page.is_visible("#kind-badge") and "Practice pair 1 of 1" in page.inner_text("#note")
    assert page.inner_text("#prompt") in {"p0", "p1", "p2"}
    left, right = page.get_attribute("#left", "src"), page.get_attribute("#right", "src")
    assert left.endswith("/left") and right.endswith("/right") and left != right
    page.screenshot(path=str(shots / "pairs-trial.png"))
    given = [answer(page, "ArrowLeft")]  # the practice pair
    assert page.is_hidden("#kind-badge")
    given.append(answer(page, "ArrowRight"))
    given.append(answer(page, "="))
    given.append(answer(page, button="#choose-right"))
    before, src_before = progress(page), page.get_attribute("#left", "src")
    page.close()  # pause in the middle of session 1

    page = context.new_page()  # resume: same link, same pair
    page.goto(link)
    wait_ready(page)
    assert progress(page) == before == 4 and page.get_attribute("#left", "src") == src_before
    keys = list(KEYS)
    while progress(page) < total:
        if page.is_visible("#intro"):
            assert page.inner_text("#intro-title").startswith("Session ")
            page.keyboard.press("Enter")
        given.append(answer(page, keys[len(given) % 3]))
    page.wait_for_selector("#finished:not([hidden])")
    assert "Thank you" in page.inner_text("#finished") and len(given) == total == 12

    admin = context.new_page()
    admin.goto(base + study.admin_path)
    assert f"{total} / {total}" in admin.inner_text("#progress")
    assert "Position bias: left chosen in" in admin.inner_text("#position-bias")
    admin.screenshot(path=str(shots / "pairs-admin.png"))
    with admin.expect_download() as info:
        admin.click("#export-comparisons")
    comp = pd.read_csv(Path(info.value.path()), keep_default_na=False)
    mine = comp[comp["subject"] == "S01"]
    assert mine["choice"].tolist() == given and (comp["subject"] == "S01").all()
    assert mine["kind"].value_counts().to_dict() == {"training": 1, "rating": 10, "repeat": 1}
    assert (mine["response_ms"].astype(int) >= 0).all()  # measured by the page
    with admin.expect_download() as info:
        admin.click("#export-scores")
    scores = pd.read_csv(Path(info.value.path()), keep_default_na=False)
    rated = mine[mine["kind"] == "rating"].reset_index(drop=True)
    again = scale_pairs(rated[["group", "a", "b", "outcome"]], alpha=0.01, by_group=True)
    assert list(scores["item"]) == list(again["item"])
    np.testing.assert_allclose(scores["score"], again["score"], rtol=1e-8, atol=1e-9)
    context.close()


def test_adaptive_pair_session_in_chromium(tmp_path, browser):
    """The same page on an adaptive study: each pair chosen when the last one is answered."""
    db = pair_database(tmp_path / "db", size=32)
    url = str(tmp_path / "study.db")
    study = create_pair_study(url, db, subjects=1, training=1, adaptive=True,
                              pairs_per_subject=4, seed=2)
    port = free_port()
    proc = start_study_server(url, port=port, log=tmp_path / "server.log")
    try:
        base = f"http://127.0.0.1:{port}"
        page = browser.new_page()
        page.goto(base + study.subjects[0].path)
        page.keyboard.press("Enter")
        given = [answer(page, "ArrowLeft")]  # the practice pair
        assert page.inner_text("#progress-text").startswith("1 / 5")
        while progress(page) < 5:
            given.append(answer(page, "ArrowRight"))
        page.wait_for_selector("#finished:not([hidden])")
        admin = browser.new_page()
        admin.goto(base + study.admin_path)
        assert "5 / 5" in admin.inner_text("#progress")
        with admin.expect_download() as info:
            admin.click("#export-comparisons")
        comp = pd.read_csv(Path(info.value.path()), keep_default_na=False)
        assert comp["choice"].tolist() == given == ["left"] + ["right"] * 4
        assert len(set(zip(comp["a"], comp["b"], strict=True))) == 5  # never a pair twice
    finally:
        proc.terminate()
        proc.wait(timeout=10)
