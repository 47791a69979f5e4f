"""Start the web UI warm: ``python -m app_pages.serve [streamlit flags]`` (what ``make run`` runs).

``streamlit run app.py`` loads the engine and runs the first search when the first visitor
arrives, which made a just-started server's first page take 4-5 s on a 2-core machine
(benchmarks/results/ui_speed.md). Streamlit has no start-up hook, so this launcher does that work
in the server's own process before handing it to Streamlit's command line: it runs the app's
script once, headless (Streamlit's AppTest), as a first visitor would. That imports the engine and
every element the page uses, and the page itself does the rest as for any first visit: it searches
the default scenario alone (filling the step-time memo and the page's cache), then starts the
worker processes, which time their blocks of that search in the background (``common.run_plan``).
The first real visitor is then served as the second always was, from results this process
computed at start, with this catalog and code (nothing is shipped precomputed). Arguments are
passed to ``streamlit run app.py`` as they are.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def warm() -> float:
    """Render the app's page once, headless (see the module docstring); seconds taken. A failure
    only leaves the server cold: it starts anyway."""
    started = time.perf_counter()
    # The page's caches are used before Streamlit's runtime exists (they fall back to its in-memory
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
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
        if at.exception:
            raise RuntimeError(at.exception[0].value)
    except Exception as exc:  # noqa: BLE001 - the server starts anyway, only cold
        print(f"costmodel: the default page was not rendered ahead ({type(exc).__name__}: {exc})",
              file=sys.stderr, flush=True)
    finally:
        for logger in quiet:
            logger.removeFilter(no_runtime)
    return time.perf_counter() - started


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
