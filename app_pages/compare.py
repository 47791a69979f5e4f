"""Compare: two or three plans of the current scenario side by side (training or serving plans,
whichever the current job is)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common as c
from costmodel.faces import charts

st.title("Compare plans")

sc, view = c.plan_current()
serve = sc.job.kind == "serve"
st.markdown(c.scenario_summary(sc, view["model_name"]))
if serve:
    st.caption("The current job is serving: the plans below are serving plans (monthly cost, "
               "replicas, p95 latencies).")
everything = c.all_plans(view)
if everything.empty:
    st.warning("No feasible plan to compare: see the reasons on the Plan page.",
               icon=":material/warning:")
    st.stop()

keys = [int(k) for k in everything["plan_id"]]
labels = dict(zip(keys, charts.plan_labels(everything)))
selected = st.session_state.get("selected_plan")
default = ([selected] if selected in keys else []) + [k for k in keys[:3] if k != selected]
default = default[:3] if len(keys) >= 3 else default[:len(keys)]
current = st.session_state.get("cmp_plans")
if current is None or not current or any(k not in keys for k in current):
    st.session_state["cmp_plans"] = default
st.multiselect("Plans to compare (two or three)", keys, key="cmp_plans", max_selections=3,
               format_func=labels.get,
               help="Ranked plans first, then Pareto-front plans outside the ranking.")
chosen = st.session_state["cmp_plans"]
if len(chosen) < 2:
    st.info("Pick at least two plans.", icon=":material/info:")
    st.stop()

frame = pd.concat([everything[everything["plan_id"] == k] for k in chosen], ignore_index=True)

ROWS = (
    ("accelerator", "Accelerator", "s"), ("kind", "Kind", "s"), ("provider", "Provider", "s"),
    ("offer", "Offer", "s"), ("region", "Region", "s"), ("pricing_model", "Pricing model", "s"),
    ("n_devices", "Devices", "d"), ("instances", "Instances", "d"),
    ("layout", "Layout tp/pp/vpp/dp/cp/ep", "s"), ("zero_stage", "ZeRO stage", "d"),
    ("recompute", "Activation recompute", "s"), ("micro_batch", "Micro-batch (sequences)", "d"),
    ("global_batch", "Global batch (sequences)", "d"), ("precision", "Precision", "s"),
    ("cost_total_usd", "Total cost (USD)", "usd"), ("cost_compute_usd", "Compute cost (USD)", "usd"),
    ("cost_storage_usd", "Checkpoint storage cost (USD)", "usd"),
    ("cost_per_million_tokens_usd", "Cost per 1M tokens (USD)", "usd4"),
    ("usd_per_device_hour", "Price (USD per device-hour)", "usd4"),
    ("time_total_hours", "Training time (hours)", "f1"),
    ("time_total_lower_hours", "Time, all communication hidden (hours)", "f1"),
    ("time_total_upper_hours", "Time, no communication hidden (hours)", "f1"),
    ("device_hours", "Device-hours", "f0"), ("step_time_s", "Step time (s)", "f3"),
    ("tokens_per_s_per_device", "Tokens per second per device", "f0"),
    ("memory_per_device_gib", "Memory per device (GiB)", "f1"),
    ("memory_capacity_gib", "Device memory (GiB)", "f0"),
    ("mfu", "MFU (model FLOPs utilisation)", "pct"), ("hfu", "HFU (hardware FLOPs utilisation)", "pct"),
    ("efficiency_basis", "GEMM efficiency basis", "s"),
    ("energy_kwh", "Energy (kWh)", "f0"), ("price_as_of", "Price as of", "s"),
    ("price_source", "Price source", "s"),
    ("usd_per_device_hour_low", "Spot price sampled, low (USD per device-hour)", "usd4"),
    ("usd_per_device_hour_high", "Spot price sampled, high (USD per device-hour)", "usd4"),
    ("preemption_risk", "Preemption risk", "s"),
    ("commitment_total_usd", "Owed for the commitment term (USD)", "usd"),
)
SERVE_ROWS = (
    ("accelerator", "Accelerator", "s"), ("kind", "Kind", "s"), ("provider", "Provider", "s"),
    ("offer", "Offer", "s"), ("region", "Region", "s"), ("pricing_model", "Pricing model", "s"),
    ("replicas", "Replicas", "d"), ("devices_per_replica", "Devices per replica", "d"),
    ("n_devices", "Devices", "d"), ("instances", "Instances", "d"),
    ("replica_layout", "Replica layout tp/pp/ep", "s"), ("precision", "Precision", "s"),
    ("kv_bits", "KV-cache bits", "d"), ("batch_size", "Batch (sequences per replica)", "d"),
    ("max_batch", "Largest batch that fits", "d"),
    ("cost_per_month_usd", "Cost per month (USD)", "usd"),
    ("cost_autoscaled_per_month_usd", "Cost per month with hourly scaling (USD)", "usd"),
    ("cost_per_replica_month_usd", "Cost per replica-month (USD)", "usd"),
    ("usd_per_million_input_tokens", "USD per 1M input tokens", "usd4"),
    ("usd_per_million_output_tokens", "USD per 1M output tokens", "usd4"),
    ("usd_per_device_hour", "Price (USD per device-hour)", "usd4"),
    ("ttft_p95_s", "p95 time to first token (s)", "f3"),
    ("tpot_p95_s", "p95 time per output token (s)", "f4"),
    ("e2e_p95_s", "p95 end-to-end latency (s)", "f3"), ("utilization", "Utilisation at peak", "pct"),
    ("output_tokens_per_s_per_replica", "Output tokens per second per replica", "f0"),
    ("output_tokens_per_s_per_device", "Output tokens per second per device", "f0"),
    ("memory_per_device_gib", "Memory per device (GiB)", "f1"),
    ("memory_capacity_gib", "Device memory (GiB)", "f0"),
    ("energy_kwh_per_month", "Energy per month (kWh)", "f0"),
    ("api_provider", "Cheapest API", "s"),
    ("api_cost_per_month_usd", "API cost per month at the mean load (USD)", "usd"),
    ("breakeven_requests_per_s", "Break-even against the API (requests/s)", "f3"),
    ("price_as_of", "Price as of", "s"), ("price_source", "Price source", "s"),
    ("usd_per_device_hour_low", "Spot price sampled, low (USD per device-hour)", "usd4"),
    ("usd_per_device_hour_high", "Spot price sampled, high (USD per device-hour)", "usd4"),
    ("preemption_risk", "Preemption risk", "s"),
    ("commitment_total_usd", "Owed for the commitment term (USD)", "usd"),
)


FORMATS = {"s": c.text, "d": c.count, "usd": c.usd_full, "usd4": c.usd_rate,
           "pct": lambda v: c.MISSING if c.is_missing(v) else f"{float(v):.1%}",
           "f0": lambda v: c.number(v, 1), "f1": lambda v: c.number(v, 3),
           "f3": lambda v: c.number(v, 4), "f4": lambda v: c.number(v, 4)}

rows = SERVE_ROWS if serve else ROWS
names = charts.plan_labels(frame, short=True)  # unique: rank, part, layout, offer (+ region ...)
layouts = charts.layout_texts(frame, serving=serve)
columns = {}
for name, layout, (_, r) in zip(names, layouts, frame.iterrows()):
    columns[name] = [layout if col in ("layout", "replica_layout") else FORMATS[how](r.get(col))
                     for col, _, how in rows]
table = pd.DataFrame({"Quantity": [label for _, label, _ in rows], **columns})
st.dataframe(table, key="compare_table", height=38 + 35 * len(rows), hide_index=True,
             column_config={"Quantity": st.column_config.TextColumn(width="medium")})

st.plotly_chart(charts.fig_compare(frame), key="fig_compare")

st.subheader("Breakdowns")
# One breakdown at a time for every plan (each chart costs the browser more than the server).
KINDS = ("Memory", "Decode iteration") if serve else ("Memory", "Step time", "Cost")
kind = st.segmented_control("Breakdown", KINDS, default=KINDS[0], key="cmp_breakdown", required=True,
                            label_visibility="collapsed")
draw = {"Memory": charts.fig_memory_breakdown, "Decode iteration": charts.fig_decode_breakdown,
        "Step time": charts.fig_step_breakdown, "Cost": charts.fig_cost_breakdown}[kind]
cols = st.columns(len(frame))
for i, (col, label, (_, r)) in enumerate(zip(cols, names, frame.iterrows())):
    with col:
        st.markdown(f"**{label}**")
        st.plotly_chart(draw(r), key=f"cmp_{kind}_{i}")
