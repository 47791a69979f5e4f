"""Start the web UI warm: ``python -m app_pages.serve [streamlit flags]`` (what ``make run`` runs).

``streamlit run app.py`` loads the engine and runs the first search when the first visitor
arrives, which made a just-started server's first page take 4-5 s on a 2-core machine
(benchmarks/results/ui_speed.md). Streamlit has no start-up hook, so this launcher does that work
in the server's own process before handing it to Streamlit's command line: it imports the pages'
module (the engine, the catalog, the input defaults), runs the search of a new session's default
scenario (``common.default_scenario``, so the step-time memo holds it), starts the worker
processes (which time their blocks of it in the background), and runs the app's script once
headless, as a visitor would, which fills the page's caches. The first visitor is then served as
the second always was: from results this process computed at start, with this catalog and code
(nothing is shipped precomputed). Arguments are passed to ``streamlit run app.py`` as they are.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def warm() -> float:
    """Load the engine and search the default scenario once; seconds taken."""
    started = time.perf_counter()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # The pages' caches are used before Streamlit's runtime exists (they fall back to its in-memory
    # store, as they would use anyway); its "no runtime" and "no script context" warnings say
    # nothing to the person starting the server.
    quiet = [logging.getLogger(name) for name in ("streamlit.runtime.caching.cache_data_api",
                                                  "streamlit.runtime.scriptrunner_utils.script_run_context")]
    no_runtime = logging.Filter()
    no_runtime.filter = lambda record: not any(  # type: ignore[method-assign]
        text in record.getMessage() for text in ("No runtime found", "missing ScriptRunContext"))
    for logger in quiet:
        logger.addFilter(no_runtime)
    try:
        from app_pages import common
        from costmodel.search.grid import DEFAULT_CHUNK, plan
        from costmodel.search.workers import prefetch, warm_up

        sc = common.default_scenario()
        plan(sc, top=common.DEFAULT_TOP, workers=1)
        warm_up(common.WORKERS)
        prefetch(sc.to_yaml(), common.DEFAULT_TOP, DEFAULT_CHUNK, common.WORKERS)
        _render_default_page()
    finally:
        for logger in quiet:
            logger.removeFilter(no_runtime)
    return time.perf_counter() - started


def _render_default_page() -> None:
    """Run the app's script once, headless (Streamlit's AppTest), as a first visitor would: it
    imports every element the page uses and fills the page's own caches (the default scenario's
    plan in ``common.run_plan``, the catalog), so the first real visitor is served like the
    second. A failure here only costs the first visitor that time."""
    try:
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
        if at.exception:
            raise RuntimeError(at.exception[0].value)
    except Exception as exc:  # noqa: BLE001 - the server starts anyway, only less warm
        print(f"costmodel: the default page was not rendered ahead ({type(exc).__name__}: {exc})",
              file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    print("costmodel: loading the engine and searching the default scenario ...", file=sys.stderr, flush=True)
    seconds = warm()
    print(f"costmodel: ready in {seconds:.1f} s; starting the web UI", file=sys.stderr, flush=True)
    from streamlit.web.cli import main as streamlit_main

    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *args]
    streamlit_main()


if __name__ == "__main__":
    main()
