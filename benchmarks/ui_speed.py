"""How fast the web UI answers in a real browser (not a unit test).

Starts the web UI as ``make run`` does, on a free localhost port, drives Debian's Chromium
(/usr/bin/chromium) with Playwright, launched as tests/test_browser.py launches it, and prints:

- the server's start: launch to accepting connections (``python -m app_pages.serve``, as
  ``make run`` starts it, loads the engine and searches the default scenario first; an older
  checkout without it is started with ``streamlit run app.py``);
- time to first page: navigation start to the ranked table visible, on a cold server (first
  visit: nothing cached) and on a warm one (a second browser session);
- training: time from clicking "Run plan" with changed inputs (the training tokens) to the new
  ranked table visible, and to the run finished (the whole page drawn), median of ``--runs``;
- training, every configuration re-timed: the same after changing the sequence length (the
  step-time memo cannot answer it: the slowest new plan);
- serving: the same with the job kind switched to serving and the request rate changed.

Times are measured inside the page (``performance.now()``, polled every animation frame), so the
Python <-> browser round trips do not count. Usage::

    .venv/bin/python benchmarks/ui_speed.py [--runs 5] [--app-dir DIR] [--markdown OUT.md]

``--app-dir`` runs another checkout's app.py (for a before/after comparison).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
VIEWPORT = {"width": 1440, "height": 1800}
WAIT_MS = 120_000

#: JS: the ranked table is on screen, drawn (its canvas), not faded as stale, and, when ``text``
#: is given, the page shows it (the new scenario's summary, written in the same run as the table).
_TABLE_READY = """
([text]) => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return false;
  if (text && !main.innerText.includes(text)) return false;
  const heads = [...main.querySelectorAll('h3')].filter(h => h.innerText.trim() === 'Ranked plans');
  if (!heads.length) return false;
  for (const t of main.querySelectorAll('[data-testid="stDataFrame"]')) {
    const box = t.getBoundingClientRect();
    if (box.height < 50 || !t.querySelector('canvas')) continue;
    // A stale element (one the current run has not re-sent yet) counts while it is not faded.
    const stale = t.closest('[data-stale="true"]');
    if (!stale || parseFloat(getComputedStyle(stale).opacity) > 0.9) return performance.now();
  }
  return false;
}
"""
#: JS: no Streamlit run in progress (the status widget is gone).
_IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && performance.now()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app_dir: Path) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="ui-speed-", suffix=".log")[1])
    # As `make run` starts it: app_pages/serve.py (load the engine and search the default scenario,
    # then `streamlit run app.py`) where the checkout has it, else `streamlit run app.py`.
    launcher = (["-m", "app_pages.serve"] if (app_dir / "app_pages" / "serve.py").exists()
                else ["-m", "streamlit", "run", "app.py"])
    proc = subprocess.Popen(
        [sys.executable, *launcher, "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=app_dir, stdout=log.open("w"), stderr=subprocess.STDOUT)
    started = time.monotonic()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    proc.startup_s = time.monotonic() - started  # launch to accepting connections
                    return proc, url, log
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"streamlit did not answer {url}/_stcore/health within 120 s")
        time.sleep(0.2)


def _wait(page, js: str, arg=None) -> float:
    """performance.now() (ms) of the first animation frame where ``js`` holds."""
    return float(page.wait_for_function(js, arg=[arg], polling="raf", timeout=WAIT_MS).json_value())


def first_page(browser, url: str) -> tuple[float, object, object]:
    """Seconds from navigation start to the ranked table visible; returns (s, context, page)."""
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    seconds = _wait(page, _TABLE_READY) / 1e3  # performance.now() counts from navigation start
    page.wait_for_function(_IDLE, polling=100, timeout=WAIT_MS)
    return seconds, ctx, page


def _click_run(page, expected: str) -> tuple[float, float]:
    """Click "Run plan"; (seconds to the fresh table showing ``expected``, seconds to idle)."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    button = sidebar.get_by_role("button", name="Run plan")
    button.wait_for(state="visible")
    t0 = float(page.evaluate("""() => new Promise(resolve => {
        const b = [...document.querySelectorAll('[data-testid="stSidebar"] button')]
            .find(x => x.innerText.includes('Run plan'));
        const t = performance.now(); b.click(); resolve(t); })"""))
    table = _wait(page, _TABLE_READY, expected)
    page.wait_for_timeout(50)
    idle = _wait(page, _IDLE)
    return (table - t0) / 1e3, (idle - t0) / 1e3


def _fill(page, label: str, value: str) -> None:
    box = page.locator('[data-testid="stSidebar"]').get_by_role("spinbutton", name=label)
    box.fill(value)
    box.press("Tab")
    page.wait_for_timeout(150)


def training_runs(page, runs: int) -> list[tuple[float, float]]:
    out = []
    for i in range(runs):
        tokens_b = 1100 + 37 * i  # a new value each time: the cache cannot answer
        _fill(page, "Training tokens (billions)", str(tokens_b))
        out.append(_click_run(page, f"pre-training on {tokens_b * 1e9:,.4g} tokens"))
    return out


def retime_runs(page, runs: int) -> list[tuple[float, float]]:
    """Training runs after changing the sequence length: every configuration is timed anew (no
    step-time memo answers it), the slowest kind of new plan."""
    out = []
    for i in range(runs):
        seq = 3072 + 128 * i
        _fill(page, "Sequence length (tokens)", str(seq))
        out.append(_click_run(page, f"{seq:,}-token sequences"))
    _fill(page, "Sequence length (tokens)", "4096")
    return out


def serving_runs(page, runs: int) -> list[tuple[float, float]]:
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Serving", exact=True).click()
    page.get_by_role("heading", name="Serving plans").wait_for(state="visible")
    _wait(page, _TABLE_READY)
    page.wait_for_function(_IDLE, polling=100, timeout=WAIT_MS)
    out = []
    for i in range(runs):
        rps = 12 + 3 * i
        _fill(page, "Requests per second (mean)", str(rps))
        out.append(_click_run(page, f"serving {rps:,.4g} requests/s"))
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    chromium = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True).stdout
    import streamlit
    return (f"{os.cpu_count()} CPU cores ({cpu}){mem}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, Streamlit {streamlit.__version__}, "
            f"{chromium.strip() or 'Chromium'} headless")


def measure(app_dir: Path, runs: int) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    proc, url, log = start_server(app_dir)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                        headless=True)
            cold, ctx, _ = first_page(browser, url)
            ctx.close()
            warm, ctx, page = first_page(browser, url)
            train = training_runs(page, runs)
            retime = retime_runs(page, runs)
            serve = serving_runs(page, runs)
            ctx.close()
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.unlink(missing_ok=True)
    return {"server_start_s": proc.startup_s, "first_page_cold_s": cold, "first_page_warm_s": warm,
            "train": train, "retime": retime, "serve": serve}


def _median(pairs: list[tuple[float, float]], i: int) -> float:
    return statistics.median(p[i] for p in pairs)


def report(r: dict, runs: int) -> str:
    lines = [
        f"| Server start (launch to accepting connections) | {r['server_start_s']:.2f} s |",
        f"| First page, cold server (navigation start to ranked table) | {r['first_page_cold_s']:.2f} s |",
        f"| First page, warm server (a second session) | {r['first_page_warm_s']:.2f} s |",
    ]
    for key, what in (("train", "Training"), ("retime", "Training, every configuration re-timed"),
                      ("serve", "Serving")):
        pairs = r[key]
        lines.append(f"| {what}: Run plan with changed inputs to new table (median of {runs}) | "
                     f"{_median(pairs, 0):.2f} s (runs: "
                     f"{', '.join(f'{p[0]:.2f}' for p in pairs)}) |")
        lines.append(f"| {what}: Run plan to page finished (median of {runs}) | "
                     f"{_median(pairs, 1):.2f} s |")
    return "| Measure | Time |\n|---|---|\n" + "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--app-dir", type=Path, default=REPO)
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = ap.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing (scripts/ensure_chromium.sh installs it)")
    text = f"Machine: {machine()}\n\nApp: {args.app_dir.resolve()}\n\n" + report(
        measure(args.app_dir.resolve(), args.runs), args.runs)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
