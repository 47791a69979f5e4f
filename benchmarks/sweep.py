"""Planner and engine throughput, peak memory and the default scenario's end-to-end time.

Run:  .venv/bin/python benchmarks/sweep.py            (all sizes; ~1-2 minutes on 2 cores)
      .venv/bin/python benchmarks/sweep.py --quick    (1e4 and 1e6 only)

What is measured, each grid size in a fresh subprocess (so peak RSS is per size):
- search: the first N rows of a large training grid (llama-3.1-70b on every catalog system, device
  counts to 16384, tp/pp/vpp/cp/ZeRO/recompute/micro-batch/precision) through the planner's chunk
  loop: feasibility checks on every row, the full engine (memory, FLOPs, communication, step time)
  on the structurally valid rows, the offer join and cost, constraints, running top-k and Pareto;
- engine: N rows that are all valid, straight through ``engine.evaluate_training`` plus cost, so
  no row is skipped by a cheap check;
- default scenario: ``plan(Scenario(model, Job(train_tokens)))`` end to end;
- serving: the same loop over a serving grid (layout, formats, memory, continuous batching, replicas
  under SLOs from the queueing model, offers, monthly cost), and the default serving scenario;
- llm-analysis: one configuration through llm-analysis 0.2.2's ``LLMAnalysis.train`` versus one
  through ``costmodel.estimate_training``.
The last line is ``configs_per_s=<search rate of the 1e6 grid>``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def big_scenario():
    from costmodel.specs.scenario import Constraints, Job, Scenario, SearchSpace

    return Scenario(
        model="llama-3.1-70b",
        job=Job(train_tokens=2e12, seq_len=4096),
        constraints=Constraints(pricing_models=["on-demand", "spot", "commit-1y", "capacity-block"]),
        search=SearchSpace(device_counts=[2**i for i in range(15)], tp=[1, 2, 4, 8],
                           pp=[1, 2, 4, 8, 16], vpp=[1, 2, 4], cp=[1, 2, 4], zero_stage=[0, 1, 2, 3],
                           recompute=["none", "selective", "full"], micro_batch=[1, 2, 4, 8],
                           precision=["bf16", "fp8"]),
    )


def child_search(n: int, chunk: int) -> dict:
    from costmodel.search.grid import evaluate_chunk, prepare
    from costmodel.search.pareto import Running

    sc = big_scenario()
    prep = prepare(sc)
    assert prep.size >= n, (prep.size, n)
    # N rows evenly spaced over the whole grid (generated per chunk, so the benchmark itself holds
    # no N-sized array): every system, device count and layout is represented, not just the first.
    step = prep.size / n
    running = Running(50, (*prep.job.objectives["cost"], "_key"), prep.job.pareto_axes)
    plan_rows = feasible = 0
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        flat = np.floor(np.arange(start, min(n, start + chunk)) * step).astype(np.int64)
        cand, counts = evaluate_chunk(prep, 0, 0, flat)
        plan_rows += int(counts.sum())
        feasible += int(counts[0])
        if cand is not None:
            running.add(cand.light, cand.materialize)
    seconds = time.perf_counter() - t0
    return {"rows": n, "grid": prep.size, "seconds": seconds, "plan_rows": plan_rows,
            "feasible_plan_rows": feasible, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_engine(n: int, chunk: int) -> dict:
    """N valid rows straight through the training job's evaluation and pricing functions."""
    from costmodel.jobs.train import evaluate_configurations, price_training
    from costmodel.specs.codes import PRECISION_CODES, RANK_ORDER_CODES
    from costmodel.specs.columns import ModelColumns
    from costmodel.specs.spec import preset
    from costmodel.tables.catalog import engine_catalog, hardware_table
    from costmodel.tables.knobs import knob_columns
    from costmodel.tables.offers import OfferTable

    cat = engine_catalog()
    table = hardware_table(cat)
    h100 = table.system_code("hgx-h100-8")
    offers_frame = cat.offers_frame()
    offers = OfferTable.build(cat, offers_frame[offers_frame["system"] == "hgx-h100-8"].head(1),
                              table.system_code)
    m = ModelColumns.from_spec(preset("llama-3.1-70b"))
    knobs = knob_columns("nemo")
    rng = np.random.default_rng(0)
    fixed = {"optimizer": 1.0, "master_weights": -1.0, "gradient_precision": 0.0,
             "optimizer_state_bits": 32.0, "flash_attention": 1.0, "dropout": 0.0, "vocab_head": 1.0,
             "causal_discount": 1.0, "seq_len": 4096.0, "ep": 1.0, "sequence_parallel": 1.0,
             "rank_order": float(RANK_ORDER_CODES["tp-cp-dp-pp"])}
    t0 = time.perf_counter()
    total = 0.0
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        c = {"tp": rng.choice([1.0, 2.0, 4.0, 8.0], k), "pp": rng.choice([1.0, 2.0, 4.0, 8.0], k),
             "cp": rng.choice([1.0, 2.0], k), "dp": rng.choice([1.0, 2.0, 4.0, 8.0, 16.0], k),
             "micro_batch": rng.choice([1.0, 2.0, 4.0], k),
             "zero_stage": rng.choice([0.0, 1.0, 2.0, 3.0], k), "recompute": rng.choice([0.0, 1.0, 2.0], k),
             "precision": rng.choice([float(PRECISION_CODES["bf16"]), float(PRECISION_CODES["fp8"])], k)}
        c["vpp"] = np.where(c["pp"] > 1, rng.choice([1.0, 2.0], k), 1.0)
        c["n_micro"] = 1024 / (c["dp"] * c["micro_batch"])
        ev = evaluate_configurations(m, {**fixed, **c}, np.full(k, h100), table, knobs)
        rows = np.arange(ev.live.size)
        cost = price_training(ev, rows, offers, np.zeros(rows.size, dtype=np.int64), 2e12, knobs)
        fits = (ev.reason[ev.live] == 0) & (cost["time_total_hours"] < 1e9)
        total += float(np.sum(cost["cost_total_usd"][fits]))
    seconds = time.perf_counter() - t0
    return {"rows": n, "seconds": seconds, "checksum": total,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_default() -> dict:
    from costmodel.search.grid import plan
    from costmodel.specs.scenario import Job, Scenario

    t0 = time.perf_counter()
    result = plan(Scenario(model="llama-3.1-70b", job=Job(train_tokens=2e12)), top=50)
    seconds = time.perf_counter() - t0
    best = result.plans.iloc[0]
    return {"seconds": seconds, "configurations": result.n_configurations,
            "best": f"{best['accelerator']} x{best['n_devices']} {best['offer']} ${best['cost_total_usd']:,.0f}"}


def child_edits(workers: int) -> dict:
    """The web page's default training scenario (llama-3.1-8b, 1e12 tokens) searched with
    ``workers`` processes (workers started and ready first): the first search, then a new token
    count (the step-time memo answers it), then a new sequence length (every configuration timed
    anew), then the default serving scenario at a new request rate."""
    from costmodel.search.grid import plan
    from costmodel.search.workers import wait_ready
    from costmodel.specs.scenario import Job, Scenario
    from costmodel.specs.serving import ServingLoad

    assert wait_ready(workers)

    def timed(sc) -> float:
        t0 = time.perf_counter()
        plan(sc, top=50, workers=workers)
        return time.perf_counter() - t0

    train = lambda tokens, seq=4096: Scenario(model="llama-3.1-8b", job=Job(train_tokens=tokens, seq_len=seq))  # noqa: E731
    serve = lambda rps: Scenario(model="llama-3.1-8b", job=Job(kind="serve", load=ServingLoad(  # noqa: E731
        requests_per_s=rps, input_len=1000, output_len=250)))
    out = {"workers": workers, "first_s": timed(train(1e12))}
    out["new_tokens_s"] = [timed(train(t)) for t in (1.1e12, 1.2e12, 1.3e12)]
    out["new_seq_len_s"] = [timed(train(1e12, s)) for s in (3072, 3200, 3328)]
    timed(serve(10))
    out["serving_new_rate_s"] = [timed(serve(r)) for r in (12, 15, 18)]
    return out


def serving_scenario(batches):
    from costmodel.specs.scenario import Constraints, Job, Scenario, SearchSpace
    from costmodel.specs.serving import ServingLoad

    return Scenario(
        model="llama-3.1-70b",
        job=Job(kind="serve", load=ServingLoad(requests_per_s=20, input_len=1000, output_len=250,
                                               ttft_p95_s=2.0, tpot_p95_s=0.1)),
        constraints=Constraints(pricing_models=["on-demand", "spot", "commit-1y", "capacity-block"]),
        search=SearchSpace(tp=[1, 2, 4, 8], pp=[1, 2, 4, 8], batch=batches,
                           quantization=["bf16", "fp16", "fp8"], kv_bits=[16, 8]))


def child_serve(n: int, chunk: int) -> dict:
    """N serving configurations (every system x tp x pp x batch 1..1024 x precision x KV bits,
    sampled evenly) through the planner's chunk loop: layout, formats, memory, steady-state
    continuous batching, replicas under the SLOs, offer join, monthly cost, top-k, Pareto."""
    from costmodel.search.grid import evaluate_chunk, prepare
    from costmodel.search.pareto import Running

    prep = prepare(serving_scenario(list(range(1, 1025))))
    assert prep.size >= n, (prep.size, n)
    step = prep.size / n
    running = Running(50, (*prep.job.objectives["cost"], "_key"), prep.job.pareto_axes)
    feasible = 0
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        flat = np.floor(np.arange(start, min(n, start + chunk)) * step).astype(np.int64)
        cand, counts = evaluate_chunk(prep, 0, 0, flat)
        feasible += int(counts[0])
        if cand is not None:
            running.add(cand.light, cand.materialize)
    return {"rows": n, "grid": prep.size, "seconds": time.perf_counter() - t0, "feasible_plan_rows": feasible,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_serve_default() -> dict:
    from costmodel.search.grid import plan
    from costmodel.specs.scenario import Job, Scenario
    from costmodel.specs.serving import ServingLoad

    t0 = time.perf_counter()
    result = plan(Scenario(model="llama-3.1-70b", job=Job(kind="serve", load=ServingLoad(
        requests_per_s=20, input_len=1000, output_len=250, ttft_p95_s=2.0, tpot_p95_s=0.1))), top=50)
    seconds = time.perf_counter() - t0
    best = result.plans.iloc[0]
    return {"seconds": seconds, "configurations": result.n_configurations,
            "best": f"{best['accelerator']} {best['replicas']}x{best['devices_per_replica']} "
                    f"{best['offer']} ${best['cost_per_month_usd']:,.0f}/month"}


def child_llm_analysis(repeats: int) -> dict:
    """One configuration through both tools: the 22B GPT of Korthikanti et al. 2022 Table 3 on
    8 A100s with tp=8 (llm-analysis 0.2.2 requires d_ff divisible by d_model, so no Llama)."""
    import contextlib
    import io

    from costmodel import ModelSpec, ParallelLayout, TrainingSetup
    from costmodel.faces.api import estimate_training

    spec = ModelSpec(name="gpt-22b", n_layers=48, d_model=6144, n_heads=64, d_ff=24576,
                     vocab_size=51200, max_position_embeddings=2048, position_embedding="learned",
                     tied_embeddings=True, mlp_activation="gelu", norm="layernorm", qkv_bias=True,
                     attn_out_bias=True, mlp_bias=True)
    layout = ParallelLayout(tp=8, sequence_parallel=True)
    setup = TrainingSetup(micro_batch=4, seq_len=2048, global_batch=4, recompute="selective")
    estimate_training(spec, "a100-sxm4-80gb", layout, setup, train_tokens=1e9)  # warm caches
    t0 = time.perf_counter()
    for _ in range(repeats):
        estimate_training(spec, "a100-sxm4-80gb", layout, setup, train_tokens=1e9)
    ours = (time.perf_counter() - t0) / repeats
    try:
        from llm_analysis.analysis import ActivationRecomputation, DSZeRO, LLMAnalysis
        from llm_analysis.config import DtypeConfig, GPUConfig, ModelConfig, ParallelismConfig
    except ImportError as exc:
        return {"costmodel_s": ours, "llm_analysis": f"not importable: {exc}"}
    model = ModelConfig(name="gpt-22b", num_layers=48, n_head=64, hidden_dim=6144,
                        vocab_size=51200, max_seq_len=2048, ffn_embed_dim=24576)
    gpu = GPUConfig(name="a100-sxm4-80gb", mem_per_GPU_in_GB=80, hbm_bandwidth_in_GB_per_sec=2039,
                    intra_node_bandwidth_in_GB_per_sec=300, intra_node_min_message_latency=8e-6,
                    peak_fp16_TFLOPS=312, peak_i8_TFLOPS=624, peak_i4_TFLOPS=1248,
                    inter_node_bandwidth_in_GB_per_sec=25)

    def run_once():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            a = LLMAnalysis(model, gpu, DtypeConfig(), ParallelismConfig(tp_size=8, pp_size=1, dp_size=1, sp_size=8))
            return a.training(batch_size_per_gpu=4, seq_len=2048, total_num_tokens=1e9,
                              activation_recomputation=ActivationRecomputation.SELECTIVE,
                              ds_zero=DSZeRO.NONE)

    run_once()
    t0 = time.perf_counter()
    for _ in range(repeats):
        run_once()
    theirs = (time.perf_counter() - t0) / repeats
    return {"costmodel_s": ours, "llm_analysis_s": theirs}


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the 1e7 grid")
    ap.add_argument("--chunk", type=int, default=1 << 16)
    ap.add_argument("--child", choices=("search", "engine", "default", "llm", "serve", "serve-default", "edits"))
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="processes for --child edits")
    args = ap.parse_args()
    if args.child == "search":
        print(json.dumps(child_search(args.rows, args.chunk)))
        return
    if args.child == "engine":
        print(json.dumps(child_engine(args.rows, args.chunk)))
        return
    if args.child == "default":
        print(json.dumps(child_default()))
        return
    if args.child == "llm":
        print(json.dumps(child_llm_analysis(20)))
        return
    if args.child == "serve":
        print(json.dumps(child_serve(args.rows, args.chunk)))
        return
    if args.child == "serve-default":
        print(json.dumps(child_serve_default()))
        return
    if args.child == "edits":
        print(json.dumps(child_edits(args.workers)))
        return

    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]} numpy={np.__version__} chunk={args.chunk}")
    sizes = [10_000, 1_000_000] + ([] if args.quick else [10_000_000])
    search_rate = {}
    for n in sizes:
        r = run_child(["--child", "search", "--rows", str(n), "--chunk", str(args.chunk)])
        search_rate[n] = n / r["seconds"]
        print(f"search  rows={n:>10,} of {r['grid']:,} seconds={r['seconds']:7.2f} configs_per_s={search_rate[n]:>12,.0f} "
              f"plan_rows={r['plan_rows']:>11,} feasible={r['feasible_plan_rows']:>10,} "
              f"peak_rss_mib={r['peak_rss_mib']:7.1f}")
    for n in sizes:
        r = run_child(["--child", "engine", "--rows", str(n), "--chunk", str(args.chunk)])
        print(f"engine  rows={n:>10,} seconds={r['seconds']:7.2f} configs_per_s={n / r['seconds']:>12,.0f} "
              f"(every row valid: memory, FLOPs, comm, time, cost, fits) peak_rss_mib={r['peak_rss_mib']:7.1f}")
    d = run_child(["--child", "default"])
    print(f"default scenario (llama-3.1-70b, 2e12 tokens, default search space): "
          f"{d['configurations']:,} configurations in {d['seconds']:.2f} s end to end; best: {d['best']}")
    ll = run_child(["--child", "llm"])
    if "llm_analysis_s" in ll:
        print(f"one configuration: costmodel.estimate_training {ll['costmodel_s'] * 1e3:.2f} ms, "
              f"llm-analysis LLMAnalysis.training {ll['llm_analysis_s'] * 1e3:.2f} ms, "
              f"ratio llm-analysis/costmodel = {ll['llm_analysis_s'] / ll['costmodel_s']:.2f}; "
              f"per configuration in the 1e6 search costmodel takes {1e3 / search_rate[1_000_000]:.5f} ms "
              f"(llm-analysis/costmodel grid = {ll['llm_analysis_s'] * search_rate[1_000_000]:,.0f}x)")
    else:
        print(f"one configuration: costmodel {ll['costmodel_s'] * 1e3:.2f} ms; llm-analysis {ll['llm_analysis']}")
    for n in (10_000, 1_000_000):
        r = run_child(["--child", "serve", "--rows", str(n), "--chunk", str(args.chunk)])
        print(f"serve   rows={n:>10,} of {r['grid']:,} seconds={r['seconds']:7.2f} "
              f"configs_per_s={n / r['seconds']:>12,.0f} feasible={r['feasible_plan_rows']:>10,} "
              f"peak_rss_mib={r['peak_rss_mib']:7.1f}")
    d = run_child(["--child", "serve-default"])
    print(f"default serving scenario (llama-3.1-70b, 20 req/s, 1000 in / 250 out, p95 TTFT 2 s, TPOT 0.1 s): "
          f"{d['configurations']:,} configurations in {d['seconds']:.2f} s end to end; best: {d['best']}")
    from costmodel.search.workers import machine_workers

    for w in sorted({1, machine_workers()}):
        e = run_child(["--child", "edits", "--workers", str(w)])
        fmt = lambda xs: "/".join(f"{x:.2f}" for x in xs)  # noqa: E731
        print(f"web page's scenarios with {w} process(es): first 8B search {e['first_s']:.2f} s; new token "
              f"count {fmt(e['new_tokens_s'])} s (step-time memo); new sequence length "
              f"{fmt(e['new_seq_len_s'])} s (all re-timed); serving at a new rate {fmt(e['serving_new_rate_s'])} s")
    print(f"configs_per_s={search_rate[1_000_000]:.0f}")


if __name__ == "__main__":
    main()
