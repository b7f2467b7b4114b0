"""A full subject session in a real browser (Playwright driving Debian's Chromium) against a real
uvicorn server: training, rating with keyboard and slider, pause, resume, finish, admin export.

Needs the ``playwright`` package and /usr/bin/chromium (``apt-get install chromium``); it never
downloads a browser. Set AIGIQA_SCREENSHOTS=DIR to keep the screenshots.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest

from aigiqa.demo import build_demo
from aigiqa.study import create_study
from aigiqa.testing.servers import free_port, start_study_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

# A missing driver or browser is a visible failure, never a skip.
try:
    from playwright import sync_api
except ImportError:  # pragma: no cover - environment problem
    pytest.fail("the playwright package is missing: pip install playwright (never run "
                "'playwright install': the test uses Debian's Chromium)", pytrace=False)
if not CHROMIUM.exists():
    pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium", pytrace=False)


@pytest.fixture
def served(tmp_path):
    root = build_demo(tmp_path / "demo", n=12)
    url = str(tmp_path / "study.db")
    study = create_study(url, "demo", root, subjects=2, training=2, repeats=1,
                         session_size=5, seed=4)
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


def wait_progress(page, done: int) -> None:
    page.wait_for_function(
        f"() => document.getElementById('progress-text').textContent.startsWith('{done} /')")


def rate_with_keys(page, keys: list[str], expected: float) -> float:
    """Press keys on the current trial, check the shown value, submit with Enter."""
    done = progress(page)
    page.wait_for_selector("#trial:not([hidden])")
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    assert page.inner_text("#value").startswith(f"{expected:.1f}")
    page.keyboard.press("Enter")
    wait_progress(page, done + 1)
    return expected


def rate_with_slider(page, value: float) -> float:
    """Set the slider (as a drag would) and click Submit."""
    done = progress(page)
    page.wait_for_selector("#trial:not([hidden])")
    page.locator("#slider").fill(str(value))
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    page.click("#submit")
    wait_progress(page, done + 1)
    return value


def test_full_session_in_chromium(served, browser, tmp_path):
    base, study = served
    link = base + study.subjects[0].path
    shots = Path(os.environ.get("AIGIQA_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1100, "height": 900},
                                  accept_downloads=True)
    page = context.new_page()
    page.goto(link)
    assert page.inner_text("#intro-title") == "Welcome"
    assert page.is_hidden("#trial")
    page.keyboard.press("Enter")  # start
    page.wait_for_selector("#trial:not([hidden])")
    assert page.is_visible("#kind-badge") and "Training image 1 of 2" in page.inner_text("#note")
    assert page.is_disabled("#submit")  # nothing submitted before the slider is touched
    given = []
    given.append(rate_with_keys(page, ["3", "ArrowRight", "ArrowRight"], 3.2))
    given.append(rate_with_slider(page, 1.5))  # second training image
    assert page.is_hidden("#kind-badge")  # now a rating trial
    prompt = page.inner_text("#prompt")
    assert len(prompt) > 10
    page.keyboard.press("4")
    page.keyboard.press("Shift+ArrowLeft")  # ten steps down
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    page.screenshot(path=str(shots / "study-trial.png"))
    page.keyboard.press("Enter")
    wait_progress(page, 3)
    given.append(3.0)
    given.append(rate_with_keys(page, ["ArrowLeft"], 2.4))  # from the mid-point 2.5
    position_before = progress(page)
    image_before = page.get_attribute("#image", "src")
    page.close()  # pause: leave in the middle of session 1

    page = context.new_page()  # resume another day: same link, same place
    page.goto(link)
    page.wait_for_selector("#trial:not([hidden])")
    assert progress(page) == position_before == 4
    assert page.get_attribute("#image", "src") == image_before
    given.append(rate_with_keys(page, ["End"], 5.0))
    given.append(rate_with_keys(page, ["Home", "ArrowUp"], 0.1))
    given.append(rate_with_slider(page, 2.0))  # 7 trials: session 1 (2 training + 5) done
    page.wait_for_selector("#intro:not([hidden])")
    assert page.inner_text("#intro-title") == "Session 2 of 3"
    page.click("#start")
    total = study.n_trials[study.subjects[0].label]
    while progress(page) < total:
        if page.is_visible("#intro"):
            page.keyboard.press("Enter")
        digit = len(given) % 6
        given.append(rate_with_keys(page, [str(digit)], float(digit)))
    page.wait_for_selector("#finished:not([hidden])")
    assert "Thank you" in page.inner_text("#finished")

    admin = context.new_page()
    admin.goto(base + study.admin_path)
    assert "S01" in admin.inner_text("#progress") and f"{total} / {total}" in admin.inner_text(
        "#progress")
    admin.screenshot(path=str(shots / "study-admin.png"))
    with admin.expect_download() as info:
        admin.click("#export-ratings")
    raw = pd.read_csv(Path(info.value.path()))
    mine = raw[raw["subject"] == "S01"]
    assert mine["score"].tolist() == pytest.approx(given)
    assert mine["kind"].value_counts().to_dict() == {"rating": 12, "training": 2, "repeat": 1}
    assert (raw["subject"] == "S02").sum() == 0
    with admin.expect_download() as info:
        admin.click("#export-mos")
    mos = pd.read_csv(Path(info.value.path()))
    ratings = mine[mine["kind"] == "rating"].set_index("image")["score"]
    assert len(mos) == 12
    assert (mos.set_index("image")["mos"] - ratings).abs().max() < 1e-6
    assert io.BytesIO((shots / "study-trial.png").read_bytes()).getbuffer().nbytes > 10_000
    context.close()
