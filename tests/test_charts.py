"""costmodel.faces.charts: pure plotly figures of planner output (no Streamlit)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

import costmodel
from costmodel.faces import charts
from costmodel.search.grid import plan
from costmodel.faces.report import COST_PARTS, MEMORY_PARTS
from costmodel.specs.scenario import Constraints, Job, Scenario
from costmodel.formulas.timing import STEP_COMPONENTS


@pytest.fixture(scope="module")
def result():
    sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12),
                  constraints=Constraints(max_devices=1024))
    return plan(sc, top=30)


def _rows(result):
    # A spread of plans: the best, a pipeline-parallel one if any, the last ranked.
    plans = result.plans
    rows = [plans.iloc[0], plans.iloc[-1]]
    pp = plans[plans["pp"] > 1]
    if not pp.empty:
        rows.append(pp.iloc[0])
    return rows


def test_charts_module_does_not_import_streamlit():
    import importlib

    source = importlib.util.find_spec("costmodel.faces.charts").origin
    with open(source) as fh:
        text = fh.read()
    assert "import streamlit" not in text and "from streamlit" not in text


def test_pareto_has_log_axes_with_units_and_both_traces(result):
    fig = charts.fig_pareto(result.pareto, result.plans)
    assert isinstance(fig, go.Figure)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "hours" in fig.layout.xaxis.title.text
    assert "USD" in fig.layout.yaxis.title.text
    names = [t.name for t in fig.data]
    assert names == ["Ranked plans", "Pareto front (cost vs time)"]
    ranked, front = fig.data
    assert len(ranked.x) == len(result.plans)
    assert len(front.x) == len(result.pareto)
    # The front is drawn in time order and holds exactly the Pareto rows.
    assert list(front.x) == sorted(result.pareto["time_total_hours"])
    assert sorted(front.y) == sorted(result.pareto["cost_total_usd"])
    # customdata[0] is the planner's plan key (what a click selects); hover names the plan.
    assert set(ranked.customdata[:, 0]) == set(result.plans["plan_id"])
    assert set(front.customdata[:, 0]) == set(result.pareto["plan_id"])
    assert "%{customdata[2]}" in ranked.hovertemplate  # the accelerator
    # Error bars span the lower/upper time bounds.
    order = np.argsort(result.pareto["time_total_hours"].to_numpy())
    lower = result.pareto["time_total_lower_hours"].to_numpy()[order]
    assert np.allclose(np.asarray(front.x) - np.asarray(front.error_x.arrayminus), lower)


def test_pareto_marks_the_selected_plan_and_works_without_plans(result):
    key = result.plans["plan_id"].iloc[3]
    fig = charts.fig_pareto(result.pareto, result.plans, selected_key=key)
    sel = fig.data[-1]
    assert sel.name == "Selected plan"
    assert sel.customdata[0][0] == key
    assert sel.x[0] == result.plans["time_total_hours"].iloc[3]
    only_front = charts.fig_pareto(result.pareto)
    assert [t.name for t in only_front.data] == ["Pareto front (cost vs time)"]
    empty = charts.fig_pareto(result.pareto.iloc[0:0])
    assert len(empty.data) == 0 and empty.layout.xaxis.type == "log"


def test_memory_bars_sum_to_the_plan_total_with_capacity_line(result):
    for row in _rows(result):
        fig = charts.fig_memory_breakdown(row)
        assert [t.meta for t in fig.data] == list(MEMORY_PARTS)
        total = sum(t.x[0] for t in fig.data)
        assert math.isclose(total, row["memory_per_device_gib"], rel_tol=1e-12)
        assert math.isclose(total * 2**30, row["memory_total_bytes"], rel_tol=1e-12)
        assert fig.layout.barmode == "stack"
        assert "GiB" in fig.layout.xaxis.title.text
        lines = [s for s in fig.layout.shapes if s.type == "line"]
        assert len(lines) == 1 and math.isclose(lines[0].x0, row["memory_capacity_gib"], rel_tol=1e-12)


def test_memory_breakdown_of_a_training_memory_estimate():
    spec = costmodel.preset("llama-3.1-8b")
    mem = costmodel.training_memory(spec, costmodel.ParallelLayout(dp=8, zero_stage=3),
                                    costmodel.TrainingSetup(micro_batch=2, seq_len=8192,
                                                            recompute="selective"))
    fig = charts.fig_memory_breakdown(mem, capacity_bytes=80 * 2**30)
    assert math.isclose(sum(t.x[0] for t in fig.data) * 2**30, float(mem.total), rel_tol=1e-12)
    assert [t.meta for t in fig.data] == list(mem.keys())
    assert fig.layout.shapes[0].x0 == 80


def test_step_bars_sum_to_the_step_time(result):
    for row in _rows(result):
        fig = charts.fig_step_breakdown(row)
        assert {t.meta for t in fig.data} <= set(STEP_COMPONENTS)
        assert "compute" in {t.meta for t in fig.data}
        assert math.isclose(sum(t.x[0] for t in fig.data), row["step_time_s"], rel_tol=1e-12)
        assert all(t.x[0] != 0 for t in fig.data)
        assert "(s)" in fig.layout.xaxis.title.text
    pp = result.plans[result.plans["pp"] > 1]
    if not pp.empty:
        fig = charts.fig_step_breakdown(pp.iloc[0])
        assert "bubble" in {t.meta for t in fig.data}


def test_cost_bars_sum_to_the_total(result):
    for row in _rows(result):
        fig = charts.fig_cost_breakdown(row)
        assert {t.meta for t in fig.data} <= set(COST_PARTS)
        assert math.isclose(sum(t.x[0] for t in fig.data), row["cost_total_usd"], rel_tol=1e-12)
        assert "USD" in fig.layout.xaxis.title.text


def test_infeasible_counts(result):
    fig = charts.fig_infeasible(result.infeasible)
    assert list(fig.data[0].y) == list(result.infeasible["reason"])
    assert list(fig.data[0].x) == list(result.infeasible["plans"])
    assert "Plans" in fig.layout.xaxis.title.text


def test_compare_has_one_bar_per_plan_and_metric(result):
    three = result.plans.head(3)
    fig = charts.fig_compare(three)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert len(bars) == 3 * len(charts.COMPARE_METRICS)
    for col, _, scale in charts.COMPARE_METRICS:
        values = [t.y[0] for t in bars if t.meta == col]
        assert np.allclose(values, three[col].to_numpy() * scale)
    caps = [t for t in fig.data if t.meta == "memory_capacity_gib"]
    assert [t.y[0] for t in caps] == list(three["memory_capacity_gib"])
    titles = [a.text for a in fig.layout.annotations]
    assert "Total cost (USD)" in titles and "Training time (hours)" in titles
    assert len([t for t in bars if t.showlegend]) == 3


def test_labels(result):
    row = result.plans.iloc[0]
    assert charts.layout_text(row) == "/".join(str(int(row[k])) for k in ("tp", "pp", "vpp", "dp", "cp", "ep"))
    label = charts.plan_label(row)
    assert label.startswith("#1 ") and row["accelerator"] in label and row["offer"] in label


# Serving ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def serving():
    load = costmodel.ServingLoad(requests_per_s=20, input_len=1000, output_len=250,
                                 ttft_p95_s=2.0, tpot_p95_s=0.1)
    return plan(Scenario(model="llama-3.1-8b", job=Job(kind="serve", load=load)), top=30)


def test_serving_pareto_axes_plan_ids_and_api_line(serving):
    from costmodel.jobs import job_kind

    plans, pareto = serving.plans, serving.pareto
    cost, latency = job_kind("serve").pareto_axes
    key = int(plans["plan_id"].iloc[2])
    fig = charts.fig_pareto_serving(pareto, plans, selected_key=key)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "latency" in fig.layout.xaxis.title.text and "USD" in fig.layout.yaxis.title.text
    by_name = {t.name: t for t in fig.data}
    ranked, front = by_name["Ranked plans"], by_name["Pareto front (monthly cost vs p95 latency)"]
    assert list(ranked.x) == list(plans[latency]) and list(ranked.y) == list(plans[cost])
    assert set(ranked.customdata[:, 0]) == set(plans["plan_id"])
    assert set(front.customdata[:, 0]) == set(pareto["plan_id"])
    assert list(front.x) == sorted(pareto[latency])
    sel = fig.data[-1]
    assert sel.name == "Selected plan" and sel.customdata[0][0] == key
    api = [t for t in fig.data if t.meta == "api_cost_per_month_usd"]
    if plans["api_cost_per_month_usd"].notna().any():
        assert len(api) == 1 and set(api[0].y) == {plans["api_cost_per_month_usd"].iloc[0]}
    # Without an API price there is no line; without plans only the front is drawn.
    no_api = plans.assign(api_cost_per_month_usd=np.nan)
    fig = charts.fig_pareto_serving(pareto.assign(api_cost_per_month_usd=np.nan), no_api)
    assert [t.name for t in fig.data] == ["Ranked plans", "Pareto front (monthly cost vs p95 latency)"]
    assert len(charts.fig_pareto_serving(pareto.iloc[0:0]).data) == 0


def test_serving_memory_and_decode_breakdowns(serving):
    from costmodel.jobs.serve import DECODE_PARTS
    from costmodel.jobs.serve import MEMORY_PARTS as SERVE_MEMORY

    for row in (serving.plans.iloc[0], serving.plans.iloc[-1]):
        fig = charts.fig_memory_breakdown(row)
        assert [t.meta for t in fig.data] == list(SERVE_MEMORY)
        assert math.isclose(sum(t.x[0] for t in fig.data), row["memory_per_device_gib"], rel_tol=1e-12)
        assert math.isclose(fig.layout.shapes[0].x0, row["memory_capacity_gib"], rel_tol=1e-12)
        fig = charts.fig_decode_breakdown(row)
        assert {t.meta for t in fig.data} <= set(DECODE_PARTS)
        parts = sum(row[f"decode_{p}_s"] for p in DECODE_PARTS)
        assert math.isclose(sum(t.x[0] for t in fig.data), parts * 1e3, rel_tol=1e-12)
        assert "(ms)" in fig.layout.xaxis.title.text


def test_latency_throughput_points_carry_their_batches(serving):
    row = serving.plans.iloc[0]
    curve = costmodel.batch_curve(
        "llama-3.1-8b", row["accelerator"],
        costmodel.ReplicaLayout(tp=int(row["tp"]), pp=int(row["pp"]), ep=int(row["ep"])),
        costmodel.ServingSetup(precision=row["precision"], kv_bits=int(row["kv_bits"]),
                               input_len=1000, output_len=250), system=row["system"])
    batch = int(row["batch_size"])
    fig = charts.fig_latency_throughput(curve, batch)
    by_name = {t.name: t for t in fig.data}
    fits = by_name["Fits in memory"]
    assert sorted(fits.customdata[:, 0]) == sorted(curve.loc[curve["fits_in_memory"], "batch"])
    assert list(fits.text) == [str(b) for b in curve.loc[curve["fits_in_memory"], "batch"]]
    assert np.allclose(fits.y, curve.loc[curve["fits_in_memory"], "tpot_s"] * 1e3)
    if (~curve["fits_in_memory"]).any():
        grey = by_name["Does not fit in memory"]
        assert sorted(grey.customdata[:, 0]) == sorted(curve.loc[~curve["fits_in_memory"], "batch"])
    sel = fig.data[-1]
    assert sel.customdata[0][0] == batch and sel.name == f"This plan (batch {batch})"
    assert "tokens/s per replica" in fig.layout.xaxis.title.text and "(ms" in fig.layout.yaxis.title.text
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert len(charts.fig_latency_throughput(curve).data) == len(fig.data) - 1


def test_serving_compare_and_labels(serving):
    three = serving.plans.head(3)
    fig = charts.fig_compare(three)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert len(bars) == 3 * len(charts.SERVING_COMPARE_METRICS)
    for col, _, scale in charts.SERVING_COMPARE_METRICS:
        assert np.allclose([t.y[0] for t in bars if t.meta == col], three[col].to_numpy() * scale)
    row = three.iloc[0]
    label = charts.plan_label(row)
    assert label.startswith("#1 ") and "replica" in label and charts.serving_layout_text(row) in label
    assert charts.serving_layout_text(row) == f"{int(row['tp'])}/{int(row['pp'])}/{int(row['ep'])}" + (
        ", disaggregated" if row["disaggregated"] else "")


def test_usd_compact_and_unique_plan_labels():
    import pandas as pd

    assert charts.usd_compact(24_124_531.6) == "$24.1M"
    assert charts.usd_compact(3_200) == "$3.2k"
    assert charts.usd_compact(1.5e9) == "$1.5B"
    assert charts.usd_compact(0.01234) == "$0.0123"
    base = {"accelerator": "h100", "n_devices": 64, "tp": 1, "pp": 1, "vpp": 1, "dp": 64, "cp": 1,
            "ep": 1, "provider": "p", "offer": "o", "precision": "bf16", "rank": None}
    df = pd.DataFrame([{**base, "region": "us", "pricing_model": "spot", "plan_id": 1},
                       {**base, "region": "eu", "pricing_model": "spot", "plan_id": 2},
                       {**base, "region": "eu", "pricing_model": "spot", "plan_id": 3}])
    for short in (False, True):
        labels = charts.plan_labels(df, short=short)
        assert len(set(labels)) == 3, labels
    assert charts.layout_texts(df) == [charts.layout_text(r) for _, r in df.iterrows()]


def test_compare_bars_carry_compact_labels(result):
    fig = charts.fig_compare(result.plans.head(2))
    cost = [t for t in fig.data if t.meta == "cost_total_usd"]
    assert all(t.text[0].startswith("$") and "," not in t.text[0] for t in cost)


def test_cost_quality_chart_draws_unknown_apart_never_as_a_number():
    import pandas as pd

    from costmodel.faces.charts import fig_cost_quality

    df = pd.DataFrame({"plan_id": [1, 2, 3], "precision": ["bf16", "w4a16", "fp8"],
                       "quality_impact": ["none (uncompressed)", "weight_only_int4: ppl +0.4", "fp8: unknown"],
                       "quality_loss_fraction": [0.0, 0.066, float("nan")],
                       "cost_per_month_usd": [3000.0, 1500.0, 1800.0]})
    fig = fig_cost_quality(df)
    known, unknown = fig.data
    assert [c[0] for c in known.customdata] == [1, 2] and list(known.x) == pytest.approx([0.0, 6.6])
    assert [c[0] for c in unknown.customdata] == [3] and unknown.name == "quality impact unknown"
