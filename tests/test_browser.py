"""The web UI in a real browser: Playwright's Python API driving Debian's Chromium.

Starts ``streamlit run app.py`` on a free port, then: picks a preset and a job, runs the plan,
sees the ranked table and the Pareto chart drawn, clicks a Pareto point to select it, downloads
the CSV report and checks it against ``costmodel.search.grid.plan`` (it must be the CLI's file byte
for byte), tours every page, and uploads a broken config.json to see the error in the page.

Screenshots of the main views go to ``test-output/screenshots/`` (gitignored) and are copied,
palette-compressed, to ``docs/screenshots/`` for docs/ui.md and the README only when
``UPDATE_DOC_SCREENSHOTS=1`` (so an ordinary test run leaves the committed ones alone).

The browser is the system Chromium at /usr/bin/chromium (``scripts/ensure_chromium.sh`` installs
it with apt-get); ``playwright install`` is never used. Without it this test FAILS, on purpose.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

from costmodel.search.grid import plan
from costmodel.faces.report import write_reports
from costmodel.specs.scenario import Job, Scenario

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
SHOTS = REPO / "test-output" / "screenshots"
DOC_SHOTS = REPO / "docs" / "screenshots"
TIMINGS = REPO / "test-output" / "browser_timings.json"
VIEWPORT = {"width": 1440, "height": 1800}
WAIT_MS = 90_000
#: What the browser test plans (and checks against the planner).
PRESET, TOKENS_B, TOP = "mistral-7b", 500, 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="streamlit-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer {url}/_stcore/health within 120 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        os.unlink(log.name)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser test drives Debian's Chromium. Install it "
                    "with `scripts/ensure_chromium.sh` (as root: apt-get install -y chromium); "
                    "`make test` and .ci/run call it for you.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def timings():
    data: dict[str, float] = {}
    yield data
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS.write_text(json.dumps(data, indent=2) + "\n")


def _page(browser, url: str):
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    return ctx, page


def _wait_idle(page) -> None:
    """Until Streamlit has finished the current run (no running-app indicator)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=WAIT_MS)


def _wait_chart(page):
    page.locator(".js-plotly-plot .scatterlayer .point").first.wait_for(state="visible")


def _wait_table(page):
    """Until the ranked table is drawn (the grid is a canvas)."""
    page.locator('[data-testid="stMain"] [data-testid="stDataFrame"] canvas').first.wait_for(state="visible")


def _open_tab(page, name: str) -> None:
    """Open one of the plan page's lazy tabs (its content runs when opened)."""
    page.locator('[data-testid="stMain"]').get_by_role("tab", name=name).click()
    _wait_idle(page)


def _shot(page, name: str) -> None:
    """Viewport screenshot cropped to the page content; raw to test-output, compressed to docs."""
    from PIL import Image

    _wait_idle(page)
    page.wait_for_timeout(600)  # let plotly finish its transitions
    SHOTS.mkdir(parents=True, exist_ok=True)
    bottoms = [b["y"] + b["height"] for b in (
        page.locator(sel).first.bounding_box() for sel in
        ('[data-testid="stMainBlockContainer"]', '[data-testid="stSidebarUserContent"]')) if b]
    height = int(min(VIEWPORT["height"], max(bottoms, default=VIEWPORT["height"]) + 16))
    png = page.screenshot(clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height})
    (SHOTS / f"{name}.png").write_bytes(png)
    if os.environ.get("UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        out = DOC_SHOTS / f"{name}.png"
        img.save(out, optimize=True)
        assert out.stat().st_size < 600_000, f"{out} is too large for the repository"


def _expected_csv(tmp_path: Path) -> bytes:
    sc = Scenario(model=PRESET, job=Job(train_tokens=TOKENS_B * 1e9))
    paths = write_reports(plan(sc, top=TOP), tmp_path / "expected.csv")
    return paths["plans"].read_bytes()


def test_plan_table_pareto_and_csv_download(server, browser, timings, tmp_path):
    from playwright.sync_api import expect

    started = time.perf_counter()
    ctx, page = _page(browser, server)
    try:
        main = page.locator('[data-testid="stMain"]')
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(main.get_by_role("heading", name="Training plans")).to_be_visible()
        _wait_table(page)
        timings["default_page_to_ranked_table_s"] = round(time.perf_counter() - started, 2)
        # The first page loads no chart library: charts are drawn when their tab or view is opened.
        assert page.locator(".js-plotly-plot").count() == 0

        # Choose a preset (applies at once: the parameter count updates), then the job.
        sidebar.get_by_role("combobox", name="Preset").click()
        page.get_by_role("option", name=PRESET, exact=True).click()
        expect(sidebar.get_by_text(f"{PRESET}: 7.24 B parameters")).to_be_visible()
        tokens = sidebar.get_by_role("spinbutton", name="Training tokens (billions)")
        tokens.fill(str(TOKENS_B))
        tokens.press("Tab")
        t0 = time.perf_counter()
        sidebar.get_by_role("button", name="Run plan").click()
        expect(main.get_by_text(f"pre-training on {TOKENS_B * 1e9:,.4g} tokens")).to_be_visible()
        _wait_idle(page)
        _wait_table(page)
        timings["run_plan_to_results_s"] = round(time.perf_counter() - t0, 2)

        # The best plan's cost reads compact in its metric ($312.5k, $24.1M), never cut off.
        expect(main.locator('[data-testid="stMetricValue"]').first).to_have_text(
            re.compile(r"^\$\d{1,3}(\.\d)?[kMBT]?$"))

        # The table is drawn; the selected plan's numbers are shown under it.
        expect(main.get_by_role("heading", name="Ranked plans")).to_be_visible()
        table = main.locator('[data-testid="stDataFrame"]').first
        expect(table).to_be_visible()
        expect(main.locator('[data-testid="stDataFrame"]').nth(1)).to_be_visible()  # "Numbers"

        # Clicking a table row selects that plan (the grid is a canvas: rows are 35 px high
        # under a 35 px header, the selection checkbox sits in the first column).
        selected = main.get_by_role("combobox").first  # the "Selected plan" box
        assert selected.input_value().startswith("#1 ")
        grid = table.bounding_box()
        page.mouse.click(grid["x"] + 14, grid["y"] + 35 + 35 * 2 + 17)
        _wait_idle(page)
        expect(selected).to_have_value(re.compile(r"^#3 "))
        before = selected.input_value()

        # The Pareto chart (its own tab) is drawn, with points.
        _open_tab(page, "Cost against time")
        _wait_chart(page)
        chart = main.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first
        expect(chart).to_be_visible()
        assert chart.locator(".scatterlayer .point").count() >= 2
        assert "log" in chart.locator(".xtitle").text_content()
        assert "USD" in chart.locator(".ytitle").text_content()
        _shot(page, "plan")

        # Clicking a Pareto point selects that plan and shows it in the Selected plan tab.
        front = chart.locator(".scatterlayer .trace").nth(1).locator(".point")
        assert front.count() >= 2
        front.first.click(force=True)  # the fastest (dearest) Pareto plan, not rank 1
        _wait_idle(page)
        selected = main.get_by_role("combobox").first
        expect(selected).to_be_visible()
        expect(selected).not_to_have_value(before)
        main.get_by_role("radio", name="Step time").or_(main.get_by_role("button", name="Step time")).first.click()
        main.locator(".js-plotly-plot").first.wait_for(state="visible")
        _shot(page, "plan-selected")

        # The CSV download is the CLI's file; its first row is the planner's best plan.
        with page.expect_download() as info:
            main.get_by_role("button", name="Plans CSV").click()
        download = info.value
        assert download.suggested_filename == "costmodel_plans.csv"
        got = Path(download.path()).read_bytes()
        assert got.decode().startswith("rank,accelerator")
        expected = _expected_csv(tmp_path)
        got_df = pd.read_csv(io.BytesIO(got))
        exp_df = pd.read_csv(io.BytesIO(expected))
        assert list(got_df.columns) == list(exp_df.columns)
        first, best = got_df.iloc[0], exp_df.iloc[0]
        for col in got_df.columns:
            if isinstance(best[col], float):  # an empty column (NaN) matches an empty one
                assert (math.isnan(first[col]) and math.isnan(best[col])) or math.isclose(
                    first[col], best[col], rel_tol=1e-9), col
            else:
                assert first[col] == best[col], col
        best_plan = plan(Scenario(model=PRESET, job=Job(train_tokens=TOKENS_B * 1e9)), top=1).best
        assert first["accelerator"] == best_plan["accelerator"]
        assert first["offer"] == best_plan["offer"]
        assert int(first["n_devices"]) == int(best_plan["n_devices"])
        assert math.isclose(first["cost_total_usd"], best_plan["cost_total_usd"], rel_tol=1e-9)
        assert got == expected  # byte for byte what `costmodel plan --csv` writes

        with page.expect_download() as info:
            main.get_by_role("button", name="Scenario YAML").click()
        sc = Scenario.from_dict(__import__("yaml").safe_load(Path(info.value.path()).read_text()))
        assert sc.model == PRESET and sc.job.train_tokens == TOKENS_B * 1e9
    finally:
        ctx.close()


def test_every_page_in_the_browser(server, browser):
    from playwright.sync_api import expect

    ctx, page = _page(browser, server)
    try:
        main = page.locator('[data-testid="stMain"]')
        _wait_table(page)
        nav = page.locator('[data-testid="stSidebarNav"]')
        for title, heading, shot in (("Compare", "Compare plans", "compare"),
                                     ("Assumptions", "Assumptions and overrides", "assumptions"),
                                     ("Catalog", "Hardware catalog", "catalog"),
                                     ("Model", "Model footprint", "model")):
            nav.get_by_role("link", name=title).click()
            expect(main.get_by_role("heading", name=heading)).to_be_visible()
            _wait_idle(page)
            assert page.locator('[data-testid="stException"]').count() == 0, title
            if shot in ("compare", "model"):
                main.locator(".js-plotly-plot").first.wait_for(state="visible")
            _shot(page, shot)
    finally:
        ctx.close()


def test_bad_config_upload_shows_the_error(server, browser, tmp_path):
    from playwright.sync_api import expect

    ctx, page = _page(browser, server)
    try:
        main = page.locator('[data-testid="stMain"]')
        sidebar = page.locator('[data-testid="stSidebar"]')
        _wait_table(page)
        sidebar.get_by_text("Hugging Face config.json", exact=True).click()
        uploader = sidebar.locator('[data-testid="stFileUploader"] input[type="file"]')
        uploader.wait_for(state="attached")
        bad = tmp_path / "config.json"
        bad.write_text('{"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,')
        uploader.set_input_files(str(bad))
        error = sidebar.locator('[data-testid="stAlertContentError"]')
        expect(error).to_contain_text("config.json is not valid JSON")
        expect(main.locator('[data-testid="stAlertContentError"]')).to_contain_text(
            "config.json is not valid JSON")
        assert page.locator('[data-testid="stException"]').count() == 0
        assert "Traceback" not in page.content()
        _shot(page, "bad-config")
    finally:
        ctx.close()
