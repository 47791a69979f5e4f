"""The planner: Pareto front, ranking against brute force, constraints, scenarios and reports."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel

from costmodel.jobs.train import batch_sequences

from costmodel import ParallelLayout, TrainingSetup
from costmodel.faces.api import estimate_training
from costmodel.tables.catalog import engine_catalog
from costmodel.jobs.train import REASONS
from costmodel.search.grid import pareto_mask, plan
from costmodel.faces.report import guard_text, write_reports
from costmodel.specs.scenario import Constraints, Job, PriceOverride, Scenario, ScenarioError, SearchSpace

SMALL_SEARCH = SearchSpace(
    accelerators=["h100-sxm5-80gb"], device_counts=[8, 16], tp=[1, 2], pp=[1, 2], vpp=[1],
    cp=[1], zero_stage=[1], recompute=["none", "full"], micro_batch=[1, 2], precision=["bf16"])


def small_scenario(**kw):
    base = dict(model="llama-3.1-8b", job=Job(train_tokens=1e11, seq_len=4096),
                search=SMALL_SEARCH)
    base.update(kw)
    return Scenario(**base)


def brute_force_pareto(cost, time_):
    keep = []
    for i in range(len(cost)):
        dominated = any((cost[j] <= cost[i] and time_[j] <= time_[i]
                         and (cost[j] < cost[i] or time_[j] < time_[i])) for j in range(len(cost)))
        duplicate_earlier = any(cost[j] == cost[i] and time_[j] == time_[i] for j in range(i))
        if not dominated and not duplicate_earlier:
            keep.append(i)
    return sorted(keep)


@pytest.mark.parametrize("seed", range(5))
def test_pareto_mask_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    cost = rng.integers(0, 30, 200).astype(float)  # integers: many ties and duplicates
    time_ = rng.integers(0, 30, 200).astype(float)
    assert sorted(pareto_mask(cost, time_).tolist()) == brute_force_pareto(cost, time_)


def test_best_plan_equals_brute_force_through_scalar_api():
    """Every configuration x offer of a small grid evaluated one at a time with
    ``estimate_training`` (the scalar API); the cheapest equals the planner's first row."""
    sc = small_scenario()
    result = plan(sc, top=5)
    cat = engine_catalog()
    best = None
    for offer in cat.offers_for(accelerator="h100-sxm5-80gb", pricing_model="on-demand"):
        for n in (8, 16):
            for tp in (1, 2):
                for pp in (1, 2):
                    dp = n // (tp * pp)
                    for rec in ("none", "full"):
                        for mb in (1, 2):
                            layout = ParallelLayout(tp=tp, pp=pp, dp=dp, zero_stage=1,
                                                    sequence_parallel=tp > 1)
                            setup = TrainingSetup(micro_batch=mb, seq_len=4096, recompute=rec,
                                                  global_batch=batch_sequences(sc))
                            e = estimate_training("llama-3.1-8b", "h100-sxm5-80gb", layout, setup,
                                                  train_tokens=1e11, system=offer.system,
                                                  offer=offer.offer, framework="nemo")
                            headroom = sc.constraints.min_memory_headroom  # 0.1 by default
                            if e.memory_per_device_bytes > e.memory_capacity_bytes * (1 - headroom):
                                continue
                            key = (e.cost_total_usd, e.time_total_hours, e.memory_per_device_bytes)
                            if best is None or key < best[0]:
                                best = (key, offer, layout, setup, e)
    top = result.plans.iloc[0]
    (cost, hours, _), offer, layout, setup, e = best
    assert top["cost_total_usd"] == pytest.approx(cost, rel=1e-9)
    assert top["time_total_hours"] == pytest.approx(hours, rel=1e-9)
    assert (top["provider"], top["offer"]) == (offer.provider, offer.offer)
    assert (top["tp"], top["pp"], top["dp"]) == (layout.tp, layout.pp, layout.dp)
    assert (top["micro_batch"], top["recompute"]) == (setup.micro_batch, setup.recompute)


def all_feasible(sc):
    return plan(sc, top=100_000).plans


def plan_keys(df):
    return set(zip(df["offer"], df["region"], df["n_devices"], df["tp"], df["pp"], df["dp"],
                   df["recompute"], df["micro_batch"]))


def test_constraints_exclude_exactly_the_violating_rows():
    free = all_feasible(small_scenario())
    assert len(free) > 10
    budget = float(free["cost_total_usd"].median())
    deadline_days = float(free["time_total_hours"].median()) / 24
    cases = [
        (Constraints(budget_usd=budget), free["cost_total_usd"] <= budget),
        (Constraints(deadline_days=deadline_days), free["time_total_hours"] <= deadline_days * 24),
        (Constraints(max_devices=8), free["n_devices"] <= 8),
        (Constraints(providers=["AWS"]), free["provider"] == "AWS"),
        (Constraints(min_memory_headroom=0.25),
         free["memory_per_device_gib"] <= 0.75 * free["memory_capacity_gib"]),
    ]
    for constraints, expected in cases:
        got = all_feasible(small_scenario(constraints=constraints))
        assert plan_keys(got) == plan_keys(free[expected]), constraints


def test_infeasible_reasons_are_counted():
    sc = small_scenario(search=SMALL_SEARCH.model_copy(update={"precision": ["bf16", "fp8"],
                                                               "accelerators": ["a100-sxm4-80gb"],
                                                               "device_counts": [8, 16, 6]}))
    r = plan(sc, top=5)
    reasons = dict(zip(r.infeasible["reason"], r.infeasible["plans"]))
    assert reasons["format unsupported on hardware"] > 0  # fp8 on A100
    assert reasons["layout does not divide the model"] > 0  # 6 devices with tp=4 etc.
    assert set(reasons) <= set(REASONS)
    assert r.n_plans == r.context["feasible"] + sum(reasons.values())


def test_ranking_is_deterministic_and_chunk_size_independent():
    sc = small_scenario()
    a = plan(sc, top=20).plans
    b = plan(sc, top=20, chunk_size=7).plans
    pd.testing.assert_frame_equal(a.drop(columns=["price_source"]), b.drop(columns=["price_source"]))


def test_objectives_sort_their_column():
    for objective, column in (("time", "time_total_hours"), ("cost", "cost_total_usd"),
                              ("energy", "energy_kwh")):
        df = plan(small_scenario(objective=objective), top=15).plans
        assert df[column].is_monotonic_increasing, objective


def test_price_override_changes_the_ranking_input():
    sc = small_scenario()
    top = plan(sc, top=1).plans.iloc[0]
    doubled = PriceOverride(provider=top["provider"], offer=top["offer"], region=top["region"],
                            pricing_model=top["pricing_model"],
                            usd_per_device_hour=2 * top["usd_per_device_hour"])
    again = plan(small_scenario(price_overrides=[doubled]), top=100_000).plans
    same = again[(again["offer"] == top["offer"]) & (again["n_devices"] == top["n_devices"])
                 & (again["tp"] == top["tp"]) & (again["pp"] == top["pp"])
                 & (again["micro_batch"] == top["micro_batch"]) & (again["recompute"] == top["recompute"])]
    assert same["usd_per_device_hour"].iloc[0] == pytest.approx(2 * top["usd_per_device_hour"])


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_scenario_file_round_trip(tmp_path, suffix):
    sc = small_scenario(constraints=Constraints(budget_usd=1e6, providers=["AWS", "Lambda"]),
                        objective="time", overrides={"pue": 1.1},
                        price_overrides=[PriceOverride(provider="AWS", offer="p5.48xlarge",
                                                       region="us-east-1", pricing_model="on-demand",
                                                       usd_per_device_hour=4.0)])
    path = sc.save(tmp_path / f"s{suffix}")
    again = Scenario.load(path)
    assert again == sc
    assert again.to_dict() == sc.to_dict()


@pytest.mark.parametrize("data, field", [
    ({"model": "llama-3.1-8b", "job": {"train_tokens": -1}}, "job.train_tokens"),
    ({"model": "llama-3.1-8b", "job": {"train_tokens": 1e9},
      "constraints": {"pricing_models": ["reserved"]}}, "constraints.pricing_models"),
    ({"model": "llama-3.1-8b", "job": {"train_tokens": 1e9}, "search": {"tp": []}}, "search"),
    ({"model": "llama-3.1-8b", "job": {"train_tokens": 1e9}, "colour": "red"}, "colour"),
    ({"model": "no-such-model", "job": {"train_tokens": 1e9}}, "model"),
    ({"model": "llama-3.1-8b", "job": {"train_tokens": 1e9}, "constraints": {"kinds": ["npu"]}},
     "constraints.kinds"),
])
def test_malformed_scenario_names_the_field(data, field):
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        Scenario.from_dict(data)


def test_malformed_scenario_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: llama-3.1-8b\njob: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        Scenario.load(path)


def test_empty_search_space_is_a_clear_error():
    with pytest.raises(ScenarioError, match="no offer matches"):
        plan(small_scenario(constraints=Constraints(providers=["Lambda"], pricing_models=["spot"])))


def test_reports_have_one_header_and_units(tmp_path):
    result = plan(small_scenario(), top=5)
    paths = write_reports(result, tmp_path / "plans.csv")
    first_line = paths["plans"].read_text().splitlines()[0]
    assert first_line.startswith("rank,accelerator,kind,provider,offer,region,pricing_model")
    for col in ("n_devices", "tp", "pp", "dp", "cp", "ep", "zero_stage", "recompute",
                "micro_batch", "precision", "time_total_hours", "cost_total_usd",
                "memory_per_device_gib", "mfu"):
        assert col in first_line.split(",")
    wide = pd.read_csv(paths["plans"])
    assert wide["rank"].tolist() == [1, 2, 3, 4, 5]
    assert wide["cost_total_usd"].iloc[0] == pytest.approx(result.plans["cost_total_usd"].iloc[0])
    long = pd.read_csv(paths["breakdown"])
    mem = long[(long["rank"] == 1) & (long["quantity"] == "memory_per_device")]["value"].sum()
    assert mem == pytest.approx(result.plans["memory_per_device_gib"].iloc[0])
    step = long[(long["rank"] == 1) & (long["quantity"] == "step_time")]["value"].sum()
    assert step == pytest.approx(result.plans["step_time_s"].iloc[0])
    meta = json.loads(paths["metadata"].read_text())
    assert meta["scenario"]["model"] == "llama-3.1-8b"
    assert meta["prices"] and all(p["as_of"] and p["source"] for p in meta["prices"])
    assert any(a["name"] == "pue" for a in meta["assumptions"])


def test_plan_breakdown_shares_are_parts_of_the_plan_totals():
    """``plan_breakdown``: the Breakdown CSV's rows for one plan, each with its share of the
    quantity's total; memory shares are the plan's memory parts over memory_total_bytes, cost
    shares the cost parts over cost_total_usd, step shares sum to one over step_time_s."""
    from costmodel.search.result import breakdown_table, plan_breakdown

    result = plan(small_scenario(), top=3)
    best = result.plans.iloc[0]
    df = plan_breakdown(best, "pretrain")
    csv = breakdown_table(result)
    pd.testing.assert_frame_equal(df.drop(columns="share"),
                                  csv[csv["rank"] == 1].drop(columns="rank").reset_index(drop=True))
    mem = df[df["quantity"] == "memory_per_device"].set_index("component")["share"]
    assert mem["weights"] == pytest.approx(best["memory_weights_bytes"] / best["memory_total_bytes"], rel=1e-12)
    cost = df[df["quantity"] == "cost"].set_index("component")["share"]
    assert cost["compute"] == pytest.approx(best["cost_compute_usd"] / best["cost_total_usd"], rel=1e-12)
    step = df[df["quantity"] == "step_time"]
    assert step["share"].sum() == pytest.approx(1.0, rel=1e-12)
    assert (step["value"].sum() == pytest.approx(best["step_time_s"], rel=1e-12))


def test_formula_injection_is_neutralised():
    assert guard_text("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert guard_text("+1") == "'+1" and guard_text("@SUM(A1)") == "'@SUM(A1)"
    assert guard_text("AWS") == "AWS" and guard_text(3.5) == 3.5


def test_injection_guard_applies_to_catalog_text_in_reports(tmp_path):
    user = tmp_path / "offers.csv"
    from hardware_catalog.paths import data_dir

    header = (data_dir() / "hardware" / "offers.csv").read_text().splitlines()[0] + "\n"
    cols = header.strip().split(",")
    row = {c: "" for c in cols}
    row.update(provider="=cmd|' /C calc'!A0", offer="evil", accelerator="h100-sxm5-80gb",
               system="hgx-h100-8", devices_per_instance="8", region="us-east-1",
               pricing_model="on-demand", usd_per_instance_hour="0.8",
               usd_per_device_hour="0.1", as_of="2026-11-01", source="test")
    user.write_text(header + ",".join(f'"{row[c]}"' for c in cols) + "\n")
    cat = engine_catalog([user])
    result = plan(small_scenario(), top=1, catalog=cat)
    assert result.plans.iloc[0]["provider"].startswith("=")
    paths = write_reports(result, tmp_path / "plans.csv")
    text = paths["plans"].read_text()
    assert "'=cmd" in text and ",=cmd" not in text


@pytest.mark.parametrize("top", [1, 5, 50])
def test_pareto_front_does_not_depend_on_top(top):
    """The front is over every feasible plan, whatever number of ranked plans is kept
    (llama-3.1-70b on H100s: more devices buy time at a rising communication cost)."""
    sc = Scenario(model="llama-3.1-70b", job=Job(train_tokens=1e11, seq_len=4096),
                  search=SearchSpace(accelerators=["h100-sxm5-80gb"],
                                     device_counts=[16, 32, 64, 128, 256, 512, 1024],
                                     tp=[4, 8], pp=[1, 2, 4], vpp=[1], cp=[1], zero_stage=[1],
                                     recompute=["none", "full"], micro_batch=[1], precision=["bf16"]),
                  constraints=Constraints(pricing_models=["on-demand", "spot"]))
    everything = all_feasible(sc)
    expected = everything.iloc[brute_force_pareto(everything["cost_total_usd"].tolist(),
                                                  everything["time_total_hours"].tolist())]
    front = plan(sc, top=top, chunk_size=97).pareto
    assert len(expected) >= 4
    assert sorted(zip(front["cost_total_usd"], front["time_total_hours"])) == sorted(
        zip(expected["cost_total_usd"], expected["time_total_hours"]))


def test_plan_batch_default_follows_the_model_size_like_train():
    """One default for every face: a blank global batch is the size rule of
    specs.setup.default_global_batch (GPT-3 Table 2.1: ~0.5M tokens under 1B parameters, i.e. 128
    x 4096-token sequences for GPT-2 124M; Llama 2's 4M tokens = 1024 x 4096 for 7B-70B), in plan
    as in train and the validation rows."""
    from costmodel import Job, Scenario

    small = Scenario(model="gpt2", job=Job(train_tokens=1e10))
    large = Scenario(model="llama-3.1-70b", job=Job(train_tokens=1e12))
    assert batch_sequences(small) == 128 and batch_sequences(large) == 1024
    assert batch_sequences(Scenario(model="gpt2", job=Job(train_tokens=1e10, global_batch=64))) == 64


FAST_PATH_SCENARIOS = {
    "default-8b": lambda: Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12)),
    "deadline-energy": lambda: Scenario(model="gpt2", job=Job(train_tokens=1e10), objective="energy",
                                        constraints=Constraints(deadline_days=0.5, max_instances_per_offer=4)),
    "qlora": lambda: Scenario(model="llama-3.1-8b", job=Job(kind="finetune", train_tokens=1e9, peft="qlora"),
                              objective="cost-per-token"),
    "moe": lambda: Scenario(model="mixtral-8x7b", job=Job(train_tokens=1e10),
                            search=SearchSpace(device_counts=[8, 64, 512], accelerators=["h100-sxm5-80gb",
                                                                                         "a100-sxm4-80gb"])),
    # Experts faster than dense GEMMs (the knob's upper range) under a deadline that binds: the
    # run-time floor must use the same expert rate as the engine or it stops being a floor.
    "moe-fast-experts": lambda: Scenario(
        model="mixtral-8x7b", job=Job(train_tokens=3e11), overrides={"expert_gemm_efficiency_scale": 1.5},
        constraints=Constraints(deadline_days=2),
        search=SearchSpace(device_counts=[64, 128, 256], accelerators=["h100-sxm5-80gb", "a100-sxm4-80gb"])),
}


@pytest.mark.parametrize("name", sorted(FAST_PATH_SCENARIOS))
def test_sub_grid_and_deadline_pruning_change_nothing(name, monkeypatch):
    """The planner's fast path (system-independent checks looked up in a sub-grid, the engine only
    on rows that fit, configurations whose run-time floor misses the deadline counted without the
    engine) gives exactly the result of evaluating every row in full."""
    import costmodel.jobs.train as train

    sc = FAST_PATH_SCENARIOS[name]()
    fast = plan(sc, top=30)
    monkeypatch.setattr(train, "SUBGRID_LIMIT", 0)
    full = plan(sc, top=30)
    for attr in ("plans", "pareto", "infeasible"):
        pd.testing.assert_frame_equal(getattr(fast, attr), getattr(full, attr), check_exact=True)
    assert (fast.n_plans, fast.n_configurations) == (full.n_plans, full.n_configurations)
    assert fast.context == full.context


@pytest.mark.parametrize("sc", [
    Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12)),
    # Routed experts faster than dense GEMMs (the knob's upper range): the floor follows the knob.
    # DeepSeek-V3's MoE block (8 x 2048 routed + 2048 shared) is lighter than its dense block
    # (18432) only once the experts run faster, so the floor's least loaded block must follow it.
    Scenario(model="deepseek-v3", job=Job(train_tokens=1e12), overrides={"expert_gemm_efficiency_scale": 1.5},
             search=SearchSpace(device_counts=[1024, 2048], accelerators=["h100-sxm5-80gb"])),
], ids=["llama-3.1-8b", "deepseek-fast-experts"])
def test_run_time_floor_is_below_every_run_time(sc):
    """``timing.compute_floor_flops`` / the achieved matmul rate never exceeds the step time
    (every row of a grid of layouts, recomputation, precisions and systems)."""
    import costmodel.jobs.train as train
    from costmodel.search.grid import _decode, prepare

    prep = prepare(sc)
    sub = prep.ctx.sub
    assert sub is not None and sub.floor_hours_flops is not None
    checked = 0
    for start in range(0, prep.size, 1 << 15):
        cols = _decode(prep, start, min(prep.size, start + (1 << 15)), None)
        sidx = cols["system"].astype(np.int64)
        ev = prep.job.evaluate(prep.ctx, cols, prep.system_codes[sidx])
        if ev.live.size == 0:
            continue
        r = cols["_flat"][ev.live] - sidx[ev.live] * sub.size
        floor = sub.floor_hours_flops[r] / sub.matmul_rate[sidx[ev.live], r % sub.shape[-1]]
        goodput = float(prep.ctx.knobs["goodput_fraction"])
        steps = np.ceil(sc.job.train_tokens / ev.out["tokens_per_step"])
        hours = steps * ev.out["step_time_s"] / 3600.0 / goodput
        assert np.all(floor <= hours * (1 + 1e-12))
        checked += ev.live.size
    assert checked > 1000


def test_run_time_floor_follows_the_expert_gemm_rate():
    """The floor prices routed experts at ``expert_gemm_efficiency_scale`` like the engine: for
    DeepSeek-V3 (8 x 2048 routed + 2048 shared vs an 18432-wide dense MLP) at 1.5 the MoE block is
    the lighter one and the floor drops; at 0.5 the dense block stays the lighter one."""
    from costmodel.formulas.timing import TimingKnobs, compute_floor_flops
    from costmodel.specs.columns import ModelColumns
    from costmodel.specs.layout import ParallelLayout
    from costmodel.specs.setup import TrainingSetup, training_columns

    m = ModelColumns.from_spec(costmodel.preset("deepseek-v3"))
    t = training_columns(ParallelLayout(tp=8, pp=16, dp=8, ep=8), TrainingSetup(global_batch=64, seq_len=4096))
    floor = {s: float(compute_floor_flops(m, t, TimingKnobs(expert_gemm_efficiency_scale=s))) for s in (0.5, 1.0, 1.5)}
    assert floor[1.5] < floor[1.0] and floor[0.5] == floor[1.0]


@pytest.mark.parametrize("seed", range(4))
def test_running_sets_equal_one_pass_over_all_rows(seed):
    """Running top-k and Pareto over chunks (with its pre-filters against the running sets) equal
    the top-k and front of all rows at once, with many ties."""
    from costmodel.search.pareto import Running

    rng = np.random.default_rng(seed)
    n = 5000
    rows = {"cost": rng.integers(0, 60, n).astype(float), "time": rng.integers(0, 60, n).astype(float),
            "mem": rng.integers(0, 3, n).astype(float), "_key": rng.permutation(n).astype(float)}
    keys = ("cost", "time", "mem", "_key")
    running = Running(25, keys, ("cost", "time"))
    for start in range(0, n, 300):
        chunk = {k: v[start:start + 300] for k, v in rows.items()}
        running.add(chunk, lambda idx, chunk=chunk: {k: v[idx] for k, v in chunk.items()})
    order = np.lexsort(tuple(rows[k] for k in reversed(keys)))[:25]
    assert running.top["_key"].tolist() == rows["_key"][order].tolist()
    front = pareto_mask(rows["cost"], rows["time"], rows["_key"])
    assert sorted(running.front["_key"].tolist()) == sorted(rows["_key"][front].tolist())


# The step-time memo ------------------------------------------------------------------------------

def _memo_base(**kw) -> dict:
    base = dict(model="llama-3.1-8b", job=dict(train_tokens=1e11),
                constraints=dict(deadline_days=20),
                search=dict(device_counts=[8, 64, 512], accelerators=["h100-sxm5-80gb", "a100-sxm4-80gb",
                                                                       "mi300x-192gb"]))
    for k, v in kw.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


#: Edits after which every configuration times as before: the memo answers them.
MEMO_EDITS = {
    "tokens": dict(job=dict(train_tokens=3.7e11)),
    "deadline": dict(constraints=dict(deadline_days=2)),
    "budget": dict(constraints=dict(budget_usd=20_000)),
    "providers": dict(constraints=dict(providers=["AWS", "Lambda"])),
    "headroom": dict(constraints=dict(min_memory_headroom=0.3)),
    "objective": dict(objective="time"),
    "price": dict(price_overrides=[dict(provider="AWS", offer="p5.48xlarge", region="us-east-1",
                                        pricing_model="on-demand", usd_per_device_hour=1.0)]),
}
#: Edits that change step times: another memo entry (knobs, job setup) or another system key
#: (hardware figures).
RETIME_EDITS = {
    "efficiency": dict(efficiency_overrides=[dict(accelerator="h100-sxm5-80gb", quantity="matmul",
                                                  precision="bf16", value=0.5)]),
    "knob": dict(overrides={"matmul_efficiency_scale": 0.8}),
    "seq_len": dict(job=dict(seq_len=2048)),
}


@pytest.mark.parametrize("edit", sorted(MEMO_EDITS) + sorted(RETIME_EDITS))
def test_step_time_memo_never_changes_a_plan(edit, monkeypatch):
    """A plan after an edit equals the same plan with an empty memo (frames, counts, closest
    misses), whether the memo could answer the edit or not; edits that leave step times alone
    time fewer configurations than a plan from scratch."""
    import costmodel.jobs.train as train

    rows = []
    real = train.evaluate_training

    def counting(m, t, *a, **kw):
        rows.append(np.size(t.tp))
        return real(m, t, *a, **kw)

    monkeypatch.setattr(train, "evaluate_training", counting)
    change = {**MEMO_EDITS, **RETIME_EDITS}[edit]
    edited = Scenario.from_dict(_memo_base(**change), where="scenario")
    train.STEP_MEMO.clear()
    plan(Scenario.from_dict(_memo_base(), where="scenario"), top=20)
    rows.clear()
    warm = plan(edited, top=20)
    warm_rows = sum(rows)
    train.STEP_MEMO.clear()
    rows.clear()
    cold = plan(edited, top=20)
    cold_rows = sum(rows)
    for attr in ("plans", "pareto", "infeasible"):
        pd.testing.assert_frame_equal(getattr(warm, attr), getattr(cold, attr), check_exact=True)
    assert warm.context == cold.context and warm.n_plans == cold.n_plans
    assert cold_rows > 0
    if edit in MEMO_EDITS:
        assert warm_rows < cold_rows / 2, (warm_rows, cold_rows)
    elif edit == "efficiency":  # only the H100 systems' figures changed: they alone are re-timed
        assert 0 < warm_rows < cold_rows
    else:
        assert warm_rows == cold_rows


def test_step_time_memo_keeps_the_latest_entries():
    from costmodel.jobs.train import MEMO_KEYS, StepMemo

    memo = StepMemo(entries=2)
    a, b = memo.entry("a", 10, 3), memo.entry("b", 10, 3)
    assert memo.entry("a", 10, 3) is a  # a is now the most recent
    memo.entry("c", 10, 3)
    assert memo.entry("a", 10, 3) is a and memo.entry("b", 10, 3) is not b  # b was dropped
    assert StepMemo(entries=0).entry("a", 10, 3) is None
    assert StepMemo(max_values=len(MEMO_KEYS) * 10 * 3 - 1).entry("a", 10, 3) is None


# Worker processes -------------------------------------------------------------------------------

WORKER_SCENARIOS = {
    **{k: v for k, v in FAST_PATH_SCENARIOS.items() if k != "default-8b"},
    "nothing-feasible": lambda: Scenario(model="llama-3.1-70b", job=Job(train_tokens=1e13),
                                         constraints=Constraints(deadline_days=1),
                                         search=SearchSpace(device_counts=[8, 64, 512])),
    "serving": lambda: Scenario(model="llama-3.1-8b", job=Job(kind="serve", load=dict(
        requests_per_s=20.0, input_len=1000, output_len=250, ttft_p95_s=2.0, tpot_p95_s=0.1))),
}


@pytest.mark.parametrize("name", sorted(WORKER_SCENARIOS))
def test_workers_give_the_one_process_result(name):
    """Blocks of chunks on worker processes, merged, equal one pass in one process: plans, front,
    reasons, counts and the closest misses (each block prunes with its own)."""
    from costmodel.search import workers

    sc = WORKER_SCENARIOS[name]()
    one = plan(sc, top=25, chunk_size=8192, workers=1)
    assert workers.wait_ready(3)
    served = sum(w.served for w in workers._workers(2))
    three = plan(sc, top=25, chunk_size=8192, workers=3)
    assert sum(w.served for w in workers._workers(2)) == served + 2  # both blocks went to workers
    for attr in ("plans", "pareto", "infeasible"):
        pd.testing.assert_frame_equal(getattr(one, attr), getattr(three, attr), check_exact=True)
    assert (one.n_plans, one.n_configurations) == (three.n_plans, three.n_configurations)
    assert one.context == three.context


def test_busy_or_dead_workers_are_not_waited_for():
    """A block whose worker serves another search, or died, is evaluated by the caller."""
    from costmodel.search import workers

    sc = WORKER_SCENARIOS["deadline-energy"]()
    expected = plan(sc, top=10, chunk_size=4096, workers=1)
    assert workers.wait_ready(3)
    pool = workers._workers(2)
    pool[0].proc.kill()
    pool[0].proc.wait()
    assert pool[1].busy.acquire(blocking=False)
    try:
        got = plan(sc, top=10, chunk_size=4096, workers=3)
    finally:
        pool[1].busy.release()
    pd.testing.assert_frame_equal(expected.plans, got.plans, check_exact=True)
    assert expected.context == got.context
    assert all(w.alive() for w in workers._workers(2))  # the dead one was replaced


def test_worker_warm_up_searches_plan():
    from costmodel.search.workers import warm_scenarios

    for sc in warm_scenarios():
        assert not plan(sc, top=5, workers=1).plans.empty


def test_prefetch_fills_the_workers_block_and_changes_no_plan():
    """After a search run in one process, ``prefetch`` has each worker time its block of it in
    the background; the next search (an edit the memo answers) gives the one-process result."""
    from costmodel.search import workers
    from costmodel.search.grid import DEFAULT_CHUNK

    sc = Scenario(model="gpt2", job=Job(train_tokens=1e10))
    alone = plan(sc, top=10, workers=1)
    assert alone.n_configurations > DEFAULT_CHUNK  # two blocks: one here, one on the worker
    assert workers.wait_ready(2)
    pool = workers._workers(1)
    served = pool[0].served
    thread = workers.prefetch(alone, 10, 2)
    thread.join(120)
    assert not thread.is_alive() and pool[0].served == served + 1
    edited = Scenario(model="gpt2", job=Job(train_tokens=3e10))
    one, two = plan(edited, top=10, workers=1), plan(edited, top=10, workers=2)
    pd.testing.assert_frame_equal(one.plans, two.plans, check_exact=True)
    assert one.context == two.context
    serve = Scenario(model="gpt2", job=Job(kind="serve", load=dict(requests_per_s=1.0, input_len=512,
                                                                   output_len=128)),
                     search=SearchSpace(accelerators=["h100-sxm5-80gb"]))
    assert workers.prefetch(plan(serve, top=10, workers=1), 10, 2) is None  # no memo to fill


@pytest.mark.parametrize("value, message", [("x", "not a whole number"), ("0", "give 1 or more")])
def test_worker_count_from_the_environment_is_checked(value, message, monkeypatch):
    monkeypatch.setenv("COSTMODEL_WORKERS", value)
    with pytest.raises(ValueError, match=f"COSTMODEL_WORKERS.*{message}"):
        plan(small_scenario())
    for bad in (0, 2.5, True, "2"):
        with pytest.raises(ScenarioError, match=f"workers: {bad!r}"):
            plan(small_scenario(), workers=bad)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.booleans(), st.text(max_size=4),
                 st.lists(st.integers(), max_size=2)))
def test_any_bad_worker_count_is_a_clear_error(value):
    with pytest.raises(ScenarioError, match="workers: .*whole number of processes, 1 or more"):
        plan(small_scenario(), workers=value)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=6),
                 st.sampled_from(["nan", "inf", "-inf", "1e3", "2.0", " 3 ", "0", "-1"])))
def test_worker_count_from_any_environment_text(text):
    """COSTMODEL_WORKERS: a whole number >= 1 (spaces around allowed) is taken as it is; any other
    text (NaN, inf, decimals, negatives, words) is an error naming the variable."""
    import os

    from costmodel.search.workers import default_workers

    old = os.environ.get("COSTMODEL_WORKERS")
    os.environ["COSTMODEL_WORKERS"] = text
    try:
        stripped = text.strip()
        try:
            whole = int(stripped)
        except ValueError:
            whole = None
        if not stripped:
            assert default_workers() == 1
        elif whole is not None and whole >= 1:
            assert default_workers() == whole
        else:
            with pytest.raises(ValueError, match="COSTMODEL_WORKERS"):
                default_workers()
    finally:
        if old is None:
            os.environ.pop("COSTMODEL_WORKERS", None)
        else:
            os.environ["COSTMODEL_WORKERS"] = old
