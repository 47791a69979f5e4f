"""Compare: two or three plans of the current scenario side by side."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from app_pages import common as c
from costmodel.faces import charts

st.title("Compare plans")

sc, view = c.plan_current()
st.markdown(c.scenario_summary(sc, view["model_name"]))
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


def _fmt(value, how: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
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


columns = {}
for _, r in frame.iterrows():
    name = (f"#{int(r['rank'])}" if not pd.isna(r.get("rank")) else "Pareto") + \
        f" {r['accelerator']} x{int(r['n_devices'])}"
    values = []
    for col, _, how in ROWS:
        values.append(charts.layout_text(r) if col == "layout" else _fmt(r[col], how))
    columns[name] = values
table = pd.DataFrame({"Quantity": [label for _, label, _ in ROWS], **columns})
st.dataframe(table, key="compare_table", height=38 + 35 * len(ROWS), hide_index=True,
             column_config={"Quantity": st.column_config.TextColumn(width="medium")})

st.plotly_chart(charts.fig_compare(frame), key="fig_compare")

st.subheader("Breakdowns")
cols = st.columns(len(frame))
for i, (col, (_, r)) in enumerate(zip(cols, frame.iterrows())):
    with col:
        st.markdown(f"**{charts.plan_label(r)}**")
        st.plotly_chart(charts.fig_memory_breakdown(r), key=f"cmp_mem_{i}")
        st.plotly_chart(charts.fig_step_breakdown(r), key=f"cmp_step_{i}")
        st.plotly_chart(charts.fig_cost_breakdown(r), key=f"cmp_cost_{i}")
