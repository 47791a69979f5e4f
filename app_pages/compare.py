"""Compare: two or three plans of the current scenario side by side (training or serving plans,
whichever the current job is)."""

from __future__ import annotations

import math

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
labels = {int(r["plan_id"]): charts.plan_label(r) for _, r in everything.iterrows()}
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
    ("energy_kwh", "Energy (kWh)", "f0"), ("price_as_of", "Price as of", "s"),
    ("price_source", "Price source", "s"),
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
)


def _fmt(value, how: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value):
        return "n/a"
    if how == "s":
        return str(value)
    if how == "d":
        return f"{int(value):,}"
    if how == "usd":
        return f"${value:,.0f}" if abs(value) >= 100 else f"${value:,.2f}"
    if how == "usd4":
        return f"${value:,.4f}"
    if how == "pct":
        return f"{value:.1%}"
    return f"{value:,.{how[1]}f}"


rows = SERVE_ROWS if serve else ROWS
columns = {}
for _, r in frame.iterrows():
    name = (f"#{int(r['rank'])}" if not pd.isna(r.get("rank")) else "Pareto") + \
        f" {r['accelerator']} x{int(r['n_devices'])}"
    values = []
    for col, _, how in rows:
        if col == "layout":
            values.append(charts.layout_text(r))
        elif col == "replica_layout":
            values.append(charts.serving_layout_text(r))
        else:
            values.append(_fmt(r.get(col), how))
    columns[name] = values
table = pd.DataFrame({"Quantity": [label for _, label, _ in rows], **columns})
st.dataframe(table, key="compare_table", height=38 + 35 * len(rows), hide_index=True,
             column_config={"Quantity": st.column_config.TextColumn(width="medium")})

st.plotly_chart(charts.fig_compare(frame), key="fig_compare")

st.subheader("Breakdowns")
cols = st.columns(len(frame))
for i, (col, (_, r)) in enumerate(zip(cols, frame.iterrows())):
    with col:
        st.markdown(f"**{charts.plan_label(r)}**")
        st.plotly_chart(charts.fig_memory_breakdown(r), key=f"cmp_mem_{i}")
        if serve:
            st.plotly_chart(charts.fig_decode_breakdown(r), key=f"cmp_decode_{i}")
        else:
            st.plotly_chart(charts.fig_step_breakdown(r), key=f"cmp_step_{i}")
            st.plotly_chart(charts.fig_cost_breakdown(r), key=f"cmp_cost_{i}")
