"""One search on several processes: the grid's chunks are independent (``grid`` module docstring),
so ``plan(..., workers=n)`` splits them into ``n`` contiguous blocks, evaluates the first itself
and hands the others to worker processes, then merges their running top-k and Pareto sets and
their counts. The result is the result of one process (tests/test_planner.py compares them frame
by frame): the top-k and the front are exact whatever the order of the chunks, the counts add up,
and each block prunes with its own closest misses (a block prunes less than one pass would, never
differently).

Why processes: a chunk is a few hundred numpy calls on ~20k-row arrays, so Python's own work
between them holds the GIL and threads do not run in parallel (measured: no speed-up); processes
do (README "Performance").

Workers are plain ``python -m costmodel.search.workers`` processes started once and kept, each
serving one request at a time over its stdin/stdout (length-prefixed pickles). They import only
the engine (never the caller's main module, so scripts, notebooks and Streamlit need no
``__main__`` guard), keep their own step-time memo, and a block always goes to the same worker, so
a repeated search reuses the memo there too. A worker that is still starting, busy with another
search (another web session), or that died, is not waited for: the caller evaluates that block
itself. Only
searches over the shipped catalog go to workers (a worker rebuilds the scenario from its YAML and
reads the catalog from ``data/``); a caller's own ``Catalog`` object is searched in one process.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import subprocess
import sys
import threading
from typing import Any

__all__ = ["default_workers", "machine_workers", "prefetch", "run_blocks", "search_block", "started",
           "wait_ready", "warm_up"]

_LOCK = threading.Lock()
_WORKERS: list[_Worker] = []
_READY = b"R"
#: What a worker that died, closed its pipe or failed on a block raises at the caller.
_FAILURES = (EOFError, OSError, ValueError, RuntimeError, pickle.UnpicklingError)


def default_workers() -> int:
    """Processes a search uses when the caller does not say: ``COSTMODEL_WORKERS`` when set, else
    1 (a library call never starts processes unasked; the web UI asks for the machine's cores)."""
    text = os.environ.get("COSTMODEL_WORKERS", "").strip()
    if not text:
        return 1
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"COSTMODEL_WORKERS: {text!r} is not a whole number of processes") from None
    if n < 1:
        raise ValueError(f"COSTMODEL_WORKERS: {n} processes; give 1 or more")
    return n


def machine_workers(cap: int = 4) -> int:
    """The cores this process may run on, at most ``cap`` (what the web UI uses)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(cap, n))


class _Worker:
    """One worker process and the lock that gives it to one search at a time."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen([sys.executable, "-m", "costmodel.search.workers"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.busy = threading.Lock()
        self.ready = False
        self.served = 0  # blocks this worker has returned

    def alive(self) -> bool:
        return self.proc.poll() is None

    def is_ready(self) -> bool:
        """Whether the worker has imported the engine and loaded the catalog (it says so with one
        byte); a worker still starting is not waited for."""
        if not self.ready:
            try:
                waiting = not select.select([self.proc.stdout], [], [], 0)[0]
            except (OSError, ValueError):  # no select() on pipes (Windows): wait for the byte
                waiting = False
            if not waiting:
                self.ready = self.proc.stdout.read(1) == _READY
        return self.ready

    def send(self, scenario_yaml: str, top: int, chunk_size: int, block: tuple[int, int]) -> None:
        """Ask for chunks ``block`` of the scenario's grid (``search_block``'s arguments)."""
        request = {"scenario_yaml": scenario_yaml, "top": top, "chunk_size": chunk_size,
                   "start": block[0], "stop": block[1]}
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.write(len(data).to_bytes(8, "little") + data)
        self.proc.stdin.flush()

    def receive(self) -> Any:
        head = self.proc.stdout.read(8)
        if len(head) < 8:
            raise EOFError("worker exited")
        status, value = pickle.loads(self.proc.stdout.read(int.from_bytes(head, "little")))
        if status != "ok":
            raise RuntimeError(value)
        self.served += 1
        return value

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at exit
            self.proc.kill()


def _workers(n: int) -> list[_Worker]:
    """``n`` live workers (started when missing; dead ones replaced)."""
    with _LOCK:
        for i, w in enumerate(_WORKERS):
            if not w.alive():
                _WORKERS[i] = _Worker()
        while len(_WORKERS) < n:
            _WORKERS.append(_Worker())
        return _WORKERS[:n]


@atexit.register
def _close_all() -> None:
    for w in _WORKERS:
        w.close()


def started(workers: int) -> bool:
    """Whether ``workers - 1`` live worker processes exist (ready or still starting)."""
    with _LOCK:
        return sum(w.alive() for w in _WORKERS) >= workers - 1


def warm_up(workers: int) -> None:
    """Start ``workers - 1`` worker processes now (they import the engine and load the catalog
    while the caller goes on), so that the first search does not wait for them."""
    if workers > 1:
        _workers(workers - 1)


def wait_ready(workers: int, timeout_s: float = 60.0) -> bool:
    """Start ``workers - 1`` workers and wait until each has loaded the engine (benchmarks and
    tests that must measure or exercise the workers, not their start); False on timeout."""
    import time

    deadline = time.monotonic() + timeout_s
    pool = _workers(workers - 1) if workers > 1 else []
    while not all(w.is_ready() for w in pool):
        if time.monotonic() > deadline or not all(w.alive() for w in pool):
            return False
        time.sleep(0.02)
    return True


def run_blocks(scenario_yaml: str, top: int, chunk_size: int, blocks: list[tuple[int, int]],
               local: Any) -> list[dict[str, Any]]:
    """Evaluate chunk ranges ``blocks``: the first with ``local(start, stop)`` in this process, the
    others on idle workers (each block that finds no idle worker, or whose worker fails, with
    ``local`` after the first). Results in the order of ``blocks``."""
    pending: list[tuple[int, _Worker]] = []
    results: list[dict[str, Any] | None] = [None] * len(blocks)
    for i, w in enumerate(_workers(len(blocks) - 1), start=1):
        if w.busy.acquire(blocking=False):
            if not w.is_ready():
                w.busy.release()
                continue
            try:
                w.send(scenario_yaml, top, chunk_size, blocks[i])
            except _FAILURES:  # its pipe is closed: the worker is gone
                w.busy.release()
                continue
            pending.append((i, w))
    results[0] = local(*blocks[0])
    for i, w in pending:
        try:
            results[i] = w.receive()
        except _FAILURES:
            results[i] = None  # evaluated here below
        finally:
            w.busy.release()
    for i, r in enumerate(results):
        if r is None:
            results[i] = local(*blocks[i])
    return results  # type: ignore[return-value]


def prefetch(result: Any, top: int, workers: int) -> threading.Thread | None:
    """In the background, have each worker evaluate (and discard) its block of ``result``'s
    search (a ``PlanResult`` this process has just found alone, with the default chunk size), so
    that the worker's step-time memo holds its block when the next search comes (an edit the
    memo answers). Training searches only (the serving job keeps no memo); a worker busy when its
    turn comes is skipped, and a search that finds a worker busy with this evaluates that block
    here, from this process's own memo."""
    from costmodel.search.grid import DEFAULT_CHUNK, block_ranges

    if workers < 2 or result.context.get("job") != "train":
        return None
    scenario_yaml = result.scenario.to_yaml()
    n_chunks = -(-result.n_configurations // DEFAULT_CHUNK)
    blocks = block_ranges(n_chunks, min(workers, n_chunks))

    def run() -> None:
        import time

        for block, w in zip(blocks[1:], _workers(len(blocks) - 1)):
            deadline = time.monotonic() + 60
            while w.alive() and time.monotonic() < deadline:
                if not w.busy.acquire(blocking=False):
                    break  # a search is using it (and so fills its memo)
                if w.is_ready():
                    try:
                        w.send(scenario_yaml, top, DEFAULT_CHUNK, block)
                        w.receive()
                    except _FAILURES:
                        pass
                    finally:
                        w.busy.release()
                    break
                w.busy.release()
                time.sleep(0.05)

    thread = threading.Thread(target=run, name="costmodel-prefetch", daemon=True)
    thread.start()
    return thread


def search_block(scenario_yaml: str, top: int, chunk_size: int, start: int, stop: int) -> dict[str, Any]:
    """A worker's share of ``grid.plan``: chunks [start, stop) of the scenario's grid, evaluated
    as ``plan`` evaluates them."""
    import yaml

    from costmodel.search.grid import evaluate_block, prepare
    from costmodel.specs.scenario import Scenario

    scenario = Scenario.from_dict(yaml.safe_load(scenario_yaml), where="scenario")
    return evaluate_block(prepare(scenario), top, chunk_size, start, stop)


def warm_scenarios() -> list:
    """The two small searches a worker runs before it says it is ready (one training, one
    serving: every module imported, every table built)."""
    from costmodel.specs.scenario import Job, Scenario, SearchSpace
    from costmodel.specs.serving import ServingLoad

    small = SearchSpace(accelerators=["h100-sxm5-80gb"], device_counts=[8])
    load = ServingLoad(requests_per_s=1.0, input_len=512, output_len=128)
    return [Scenario(model="gpt2", job=Job(train_tokens=1e9), search=small),
            Scenario(model="gpt2", job=Job(kind="serve", load=load), search=small)]


def _warm_paths() -> None:
    """Run ``warm_scenarios`` before saying ready, so that the first real request finds every
    module imported and every table built (a first request to a fresh worker took about a second
    longer than the next); tests/test_planner.py plans them, so a failure here is not silent."""
    from costmodel.jobs.train import STEP_MEMO
    from costmodel.search.grid import plan

    try:
        for sc in warm_scenarios():
            plan(sc, top=5, workers=1)
    except Exception:  # noqa: BLE001 - a warm-up that fails only costs the first request time
        pass
    STEP_MEMO.clear()


def _serve() -> None:
    """The worker's loop: one request in, one ('ok' | 'error', value) out, until stdin closes."""
    from costmodel.tables.catalog import engine_catalog

    engine_catalog()  # the catalog is read once, before the first request
    _warm_paths()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the replies
    replies.write(_READY)
    replies.flush()
    while True:
        head = requests.read(8)
        if len(head) < 8:
            return
        request = pickle.loads(requests.read(int.from_bytes(head, "little")))
        try:
            reply: tuple[str, Any] = ("ok", search_block(**request))
        except Exception as exc:  # noqa: BLE001 - the caller evaluates the block itself
            reply = ("error", f"{type(exc).__name__}: {exc}")
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        replies.write(len(data).to_bytes(8, "little") + data)
        replies.flush()


if __name__ == "__main__":
    _serve()
