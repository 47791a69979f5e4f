"""Model: the chosen architecture, its parameter count by component, and its training memory
footprint per device under one parallel layout (``costmodel.training_memory``), immediately."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import costmodel
from app_pages import common as c
from costmodel import ParallelLayout, TrainingSetup
from costmodel.faces import charts

st.title("Model footprint")

with st.sidebar:
    st.header("Model")
    spec = c.model_picker()

if spec is None:
    st.error(f"The model is not valid, so there is nothing to show yet: "
             f"{st.session_state.get('_model_error', 'see the sidebar')}. Fix it in the sidebar.",
             icon=":material/error:")
    st.stop()

total = costmodel.parameter_count(spec)
active = costmodel.active_parameter_count(spec)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Parameters", f"{float(total.total) / 1e9:,.3f} B")
m2.metric("Active per token", f"{float(active.total) / 1e9:,.3f} B")
m3.metric("Layers x hidden size", f"{spec.n_layers:,} x {spec.d_model:,}")
m4.metric("Heads (query / key-value)", f"{spec.n_heads} / {spec.kv_heads}")
if spec.source:
    st.caption(f"Source: {spec.source}")

left, right = st.columns([1, 1], gap="large")
with left:
    st.subheader("Parameters by component")
    params = pd.DataFrame({
        "component": list(total.keys()),
        "parameters": [round(float(v)) for v in total.values()],
        "active per token": [round(float(active[k])) for k in total],
    })
    st.dataframe(params, hide_index=True, key="param_table", column_config={
        "parameters": st.column_config.NumberColumn("parameters", format="localized"),
        "active per token": st.column_config.NumberColumn("active per token", format="localized"),
    })
    with st.expander("All architecture fields"):
        st.dataframe(pd.DataFrame({"field": list(spec.model_dump()),
                                   "value": [c.text(v) for v in spec.model_dump().values()]}),
                     hide_index=True, key="spec_table")

with right:
    st.subheader("Training memory per device")
    cat = c.catalog()
    p1, p2, p3, p4, p5 = st.columns(5)
    p1.selectbox("tp", [1, 2, 4, 8, 16, 32, 64], key="in_m_tp", persist_state=c.PERSIST)
    p2.selectbox("pp", [1, 2, 4, 8, 16, 32, 64], key="in_m_pp", persist_state=c.PERSIST)
    p3.number_input("dp", min_value=1, step=1, key="in_m_dp", persist_state=c.PERSIST)
    p4.selectbox("cp", [1, 2, 4, 8, 16], key="in_m_cp", persist_state=c.PERSIST)
    p5.selectbox("ep", [1, 2, 4, 8, 16, 32, 64], key="in_m_ep", persist_state=c.PERSIST)
    q1, q2, q3, q4 = st.columns(4)
    q1.selectbox("ZeRO stage", [0, 1, 2, 3], key="in_m_zero", persist_state=c.PERSIST)
    q2.selectbox("Precision", c.SEARCH_CHOICES["precision"], key="in_m_precision", persist_state=c.PERSIST)
    q3.selectbox("Recompute", c.SEARCH_CHOICES["recompute"], key="in_m_recompute", persist_state=c.PERSIST)
    q4.number_input("Micro-batch", min_value=1, step=1, key="in_m_micro_batch", persist_state=c.PERSIST)
    r1, r2, r3 = st.columns(3)
    r1.number_input("Sequence length", min_value=1, step=1024, key="in_m_seq_len", persist_state=c.PERSIST)
    r2.selectbox("Framework", sorted(c.frameworks()), key="in_m_framework", persist_state=c.PERSIST)
    r3.selectbox("Device (capacity line)", list(cat.accelerator_ids), key="in_m_accelerator",
                 persist_state=c.PERSIST)
    st.checkbox("Sequence parallelism (with tp > 1)", key="in_m_sp", persist_state=c.PERSIST)
    try:
        layout = ParallelLayout(tp=c.state("in_m_tp"), pp=c.state("in_m_pp"), dp=c.state("in_m_dp"),
                                cp=c.state("in_m_cp"), ep=c.state("in_m_ep"),
                                zero_stage=c.state("in_m_zero"),
                                sequence_parallel=bool(c.state("in_m_sp")) and c.state("in_m_tp") > 1)
        setup = TrainingSetup(precision=c.state("in_m_precision"), recompute=c.state("in_m_recompute"),
                              micro_batch=c.state("in_m_micro_batch"), seq_len=c.state("in_m_seq_len"))
        mem = costmodel.training_memory(spec, layout, setup, framework=c.state("in_m_framework"))
    except c.INPUT_ERRORS as exc:
        st.error(f"Cannot estimate memory for this layout: {c.message(exc)}", icon=":material/error:")
    else:
        device = cat.accelerator(c.state("in_m_accelerator"))
        st.plotly_chart(charts.fig_memory_breakdown(mem, capacity_bytes=device.memory_bytes),
                        key="fig_model_memory")
        gib = charts.memory_parts_gib(mem)
        st.dataframe(pd.DataFrame({"component": [charts.MEMORY_LABELS.get(k, k) for k in gib],
                                   "GiB per device": list(gib.values())}),
                     hide_index=True, key="memory_table",
                     column_config={"GiB per device": st.column_config.NumberColumn(format="%.2f")})
        st.caption(f"{float(mem.total) / 2**30:,.1f} GiB per device on the most loaded pipeline stage "
                   f"({c.state('in_m_framework')} profile); {device.name} holds "
                   f"{device.memory_bytes / 2**30:,.0f} GiB. The Plan page searches every layout.")
