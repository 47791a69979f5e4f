"""Plan: the model, the job, constraints and search space in the sidebar; the ranked plans, the
Pareto chart (cost vs time for training, monthly cost vs p95 latency for serving), the selected
plan's breakdowns and assumptions, the infeasibility reasons and the report downloads in the page."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common as c
from costmodel.faces import charts
from costmodel.specs.scenario import OBJECTIVES
from hardware_catalog import KINDS, PRICING_MODELS

# The first detail view is a table: the page draws no chart until one is asked for (a chart's
# library costs the browser about a second; benchmarks/ui_speed.py).
DETAILS = ("Numbers", "Memory", "Step time", "Cost", "Assumptions used")
SERVE_DETAILS = ("Numbers", "Memory", "Decode iteration", "Latency vs throughput", "Assumptions used")
SELECTED_TAB = "Selected plan"
INFEASIBLE_TAB = "Why other plans are infeasible"

SERVE = c.is_serving()
st.title("Serving plans" if SERVE else "Training plans")


def _training_job_form() -> None:
    """Tokens, sequences, optimizer, framework and numerics of a training job."""
    st.number_input("Training tokens (billions)", min_value=1e-6, step=100.0, format="%.6g",
                    key="in_train_tokens_b", persist_state=c.PERSIST,
                    help="Tokens processed over the whole run, in billions (1000 = 1e12).")
    st.number_input("Sequence length (tokens)", min_value=1, step=1024, key="in_seq_len",
                    persist_state=c.PERSIST)
    st.number_input("Global batch (sequences per step)", min_value=1, step=64, value=None,
                    key="in_global_batch", persist_state=c.PERSIST,
                    placeholder="default: by model size (~0.5M-16M tokens), 128 (fine-tuning)")
    col1, col2 = st.columns(2)
    col1.selectbox("Optimizer", c.OPTIMIZERS, key="in_optimizer", persist_state=c.PERSIST)
    col2.selectbox("Framework", sorted(c.frameworks()), key="in_framework",
                   persist_state=c.PERSIST, help="Framework profile of data/frameworks.yaml.")
    numerics = st.expander("Numerics (optimizer state, gradients, attention)", key="exp_numerics",
                           on_change="rerun")
    with numerics:
        if not numerics.open:  # lazy: the browser draws these fields only when opened
            return
        col1, col2 = st.columns(2)
        col1.selectbox("Optimizer-state bits", [32, 16, 8], key="in_optimizer_state_bits",
                       persist_state=c.PERSIST, help="8 = 8-bit Adam (Dettmers et al. 2022).")
        col2.selectbox("Gradient precision", ["param", "fp32"], key="in_gradient_precision",
                       persist_state=c.PERSIST,
                       help="param: gradients in the weights' format; fp32: Megatron's main_grad.")
        col1.selectbox("fp32 master weights", ["auto", "yes", "no"], key="in_master_weights",
                       persist_state=c.PERSIST, help="auto: yes below 32-bit training.")
        col2.checkbox("Fused (flash) attention", key="in_flash_attention", persist_state=c.PERSIST)
        col1.checkbox("Dropout", key="in_dropout", persist_state=c.PERSIST)
        col2.checkbox("Count causal attention at half cost", key="in_causal_discount",
                      persist_state=c.PERSIST, help="Off: Megatron-LM's FLOP convention (eq. 7).")


def _serving_job_form() -> None:
    """The load and the SLOs of a serving job (inside the plan form)."""
    st.number_input("Requests per second (mean)", min_value=1e-6, step=1.0, format="%.6g",
                    key="in_serve_rps", persist_state=c.PERSIST)
    col1, col2 = st.columns(2)
    col1.number_input("Input tokens per request", min_value=1, step=100, key="in_serve_input_len",
                      persist_state=c.PERSIST, help="Mean prompt length.")
    col2.number_input("Output tokens per request", min_value=1, step=50, key="in_serve_output_len",
                      persist_state=c.PERSIST, help="Mean generated length.")
    st.number_input("Peak-to-mean request rate", min_value=1.0, step=0.5, format="%.3g",
                    key="in_serve_peak_to_mean", persist_state=c.PERSIST,
                    help="The fleet is sized for the peak (ignored when an hourly profile is given).")
    st.text_input("Hourly profile (24 comma-separated values, optional)", key="in_serve_hourly",
                  persist_state=c.PERSIST, placeholder="e.g. 0.4, 0.3, ..., 1.8 (hour 0 to 23)",
                  help="Relative request rate per hour of the day, normalised to a mean of 1. The "
                       "fleet is sized for the busiest hour; hourly scaling is priced beside it.")
    st.markdown("**Service-level objectives (p95, empty = none)**")
    col1, col2, col3 = st.columns(3)
    col1.number_input("TTFT (s)", min_value=1e-4, step=0.5, format="%.4g", value=None,
                      key="in_serve_ttft", persist_state=c.PERSIST, placeholder="none",
                      help="Time to first token.")
    col2.number_input("TPOT (s)", min_value=1e-5, step=0.01, format="%.4g", value=None,
                      key="in_serve_tpot", persist_state=c.PERSIST, placeholder="none",
                      help="Time per output token.")
    col3.number_input("E2E (s)", min_value=1e-4, step=1.0, format="%.4g", value=None,
                      key="in_serve_e2e", persist_state=c.PERSIST, placeholder="none",
                      help="End-to-end latency of a request.")
    st.number_input("Largest utilisation of the replicas at peak", min_value=0.05, max_value=1.0,
                    step=0.05, format="%.2f", key="in_serve_max_util", persist_state=c.PERSIST,
                    help="1 - headroom: the busy fraction of the batch slots at the peak rate.")
    st.selectbox("Framework", sorted(c.frameworks()), key="in_framework", persist_state=c.PERSIST,
                 help="Framework profile of data/frameworks.yaml (its assumption knobs).")


def _serving_search_fields() -> None:
    """The serving dimensions of the search space (tp, pp, ep, batch, precision, KV bits, ...)."""
    for dim in c.SERVE_DIMENSIONS:
        st.multiselect(c.SERVE_LABELS.get(dim, dim), c.SERVE_CHOICES[dim], key=c.SERVE_KEYS[dim],
                       persist_state=c.PERSIST,
                       **({"format_func": c.SERVE_FORMAT[dim]} if dim in c.SERVE_FORMAT else {}))

def _constraint_fields() -> None:
    """Deadline, budget, device count, offers and memory headroom (the Constraints expander)."""
    if not SERVE:  # a serving job states latency objectives instead of a deadline
        st.number_input("Deadline (days)", min_value=0.001, step=1.0, value=None,
                        key="in_deadline_days", persist_state=c.PERSIST,
                        placeholder="default: 90 (pre-training), 14 (fine-tuning)")
    st.number_input("Budget (USD per month)" if SERVE else "Budget (USD)", min_value=1.0,
                    step=1000.0 if SERVE else 10000.0, value=None,
                    key="in_budget_usd", persist_state=c.PERSIST, placeholder="none")
    st.number_input("Largest device count", min_value=1, step=64, value=None,
                    key="in_max_devices", persist_state=c.PERSIST, placeholder="none")
    st.multiselect("Accelerator kinds", list(KINDS), key="in_kinds",
                   persist_state=c.PERSIST, format_func=str.upper)
    st.multiselect("Pricing models", list(PRICING_MODELS), key="in_pricing",
                   persist_state=c.PERSIST)
    st.multiselect("Providers (empty = any)", list(c.catalog().providers),
                   key="in_providers", persist_state=c.PERSIST)
    st.multiselect("Regions (empty = any)", c.catalog_regions(), key="in_regions",
                   persist_state=c.PERSIST)
    st.number_input("Memory headroom (fraction kept free)", min_value=0.0, max_value=0.9,
                    step=0.05, format="%.2f", key="in_headroom", persist_state=c.PERSIST)


def _search_fields() -> None:
    """Accelerators and the parallel / numeric dimensions searched (the Search space expander)."""
    st.multiselect("Accelerators (empty = all)", list(c.catalog().accelerator_ids),
                   key="in_accelerators", persist_state=c.PERSIST)
    if SERVE:
        _serving_search_fields()
    else:
        for dim in c.SEARCH_DIMENSIONS:
            st.multiselect(c.SEARCH_LABELS[dim], c.SEARCH_CHOICES[dim], key=f"in_{dim}",
                           persist_state=c.PERSIST)
        st.checkbox("Sequence parallelism when tp > 1", key="in_sp", persist_state=c.PERSIST)
        st.selectbox("Rank placement (innermost first)", c.RANK_ORDERS, key="in_rank_order",
                     persist_state=c.PERSIST,
                     help="Which parallel groups sit on consecutive ranks and so stay inside a "
                          "node; Megatron-LM's default is tp-cp-dp-pp.")


# ---------------------------------------------------------------------------------------------
# Inputs (sidebar). The model applies at once; the job, constraints and search space are a form
# so that editing several fields does not re-run the search until "Run plan".
with st.sidebar:
    st.header("Model")
    spec = c.model_picker()
    st.page_link("app_pages/model.py", label="Parameters and memory footprint",
                 icon=":material/memory:")

    st.header("Job")
    # Outside the form: switching the kind shows its own fields at once.
    st.radio("Job kind", list(c.JOB_KINDS), format_func=c.JOB_KINDS.get, key="in_job_kind",
             persist_state=c.PERSIST, horizontal=True)
    with st.form("plan_form", border=False):
        if SERVE:
            _serving_job_form()
        else:
            _training_job_form()
        col1, col2 = st.columns(2)
        col1.selectbox("Rank by", OBJECTIVES, key="in_objective", persist_state=c.PERSIST,
                       help=("cost (USD per month), time (p95 end-to-end latency), cost-per-token "
                             "(USD per 1M output tokens) or energy (kWh per month)." if SERVE else
                             "cost (USD), time, cost-per-token or energy (kWh)."))
        col2.number_input("Plans to keep", min_value=1, max_value=1000, step=10, key="in_top",
                          persist_state=c.PERSIST, help="Like `costmodel plan --top`.")

        # Lazy expanders: their fields are drawn only when opened (values persist while closed).
        constraints = st.expander("Constraints", key="exp_constraints", on_change="rerun")
        with constraints:
            if constraints.open:
                _constraint_fields()
        search = st.expander("Search space", key="exp_search", on_change="rerun")
        with search:
            if search.open:
                _search_fields()

        st.form_submit_button("Run plan", type="primary", key="run_plan", icon=":material/play_arrow:",
                              width="stretch")

# ---------------------------------------------------------------------------------------------
if spec is None:
    st.error(f"The model is not valid, so there is nothing to show yet: "
             f"{st.session_state.get('_model_error', 'see the sidebar')}. Fix it in the sidebar.",
             icon=":material/error:")
    st.stop()

def _serving_metrics(best: pd.Series) -> None:
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Best plan: cost per month", c.usd(best["cost_per_month_usd"]),
              help=c.usd_full(best["cost_per_month_usd"]))
    m2.metric("p95 end-to-end latency", f"{c.number(best['e2e_p95_s'])} s")
    m3.metric(f"Devices ({best['accelerator']})",
              f"{c.count(best['n_devices'])} ({c.count(best['replicas'])} replica"
              f"{'' if int(best['replicas']) == 1 else 's'})")
    m4.metric("USD per 1M output tokens", c.usd_rate(best["usd_per_million_output_tokens"]),
              help=f"Input tokens: {c.usd_rate(best['usd_per_million_input_tokens'])} per 1M")


def _api_text(row: pd.Series) -> str | None:
    """The cheapest published API for the model against this plan (None when none is known)."""
    if pd.isna(row.get("api_cost_per_month_usd")):
        return None
    be = row["breakeven_requests_per_s"]
    tail = ("this plan never costs less than the API at any load" if pd.isna(be) else
            f"this plan costs less than the API above {be:,.3g} requests/s")
    return (f"Cheapest API: {row['api_provider']} at {c.usd_rate(row['api_usd_per_million_input_tokens'])} / "
            f"{c.usd_rate(row['api_usd_per_million_output_tokens'])} per 1M input / output tokens = "
            f"{c.usd_full(row['api_cost_per_month_usd'])} per month at the mean load; {tail}.")


def _assumptions_used(row: pd.Series, view: dict) -> None:
    det = view["details"]
    price = [p for p in det["prices"] if (p["provider"], p["offer"], p["region"],
                                           p["pricing_model"]) == (row["provider"], row["offer"],
                                                                   row["region"], row["pricing_model"])]
    st.markdown("**Price**")
    st.dataframe(c.price_display(price or [{"provider": row["provider"], "offer": row["offer"],
                                            "usd_per_device_hour": row["usd_per_device_hour"],
                                            "as_of": row["price_as_of"],
                                            "source": row["price_source"]}]),
                 hide_index=True, key="assume_price")
    st.markdown("**Hardware**")
    st.dataframe(c.hardware_display([h for h in det["hardware"] if h["accelerator"] == row["accelerator"]]),
                 hide_index=True, key="assume_hw")
    st.markdown("**Efficiencies** (fraction of peak; `row` says whose data: the part's own "
                "or its kind's default)")
    st.dataframe(c.readable(pd.DataFrame([e for e in det["efficiency"]
                                          if e["accelerator"] == row["accelerator"]])),
                 hide_index=True, key="assume_eff",
                 column_config={"value": st.column_config.NumberColumn(format="%.3f")})
    st.markdown("**Assumption knobs** (value and allowed range in the knob's unit)")
    st.dataframe(c.knob_display(det["assumptions"]), hide_index=True, key="assume_knobs")


def _latency_curve(row: pd.Series, scenario_yaml: str) -> None:
    try:
        curve = c.serving_curve(scenario_yaml, c.curve_inputs(row))
    except c.INPUT_ERRORS as exc:
        st.error(f"Cannot evaluate the replica's batch curve: {c.message(exc)}", icon=":material/error:")
        return
    st.plotly_chart(charts.fig_latency_throughput(curve, int(row["batch_size"])), key="fig_curve")
    st.caption("One replica of this plan (same accelerator, layout, precision and KV bits) at each "
               "batch, from `costmodel.batch_curve`: throughput rises with the batch until the "
               "replica is compute-bound, while each token takes longer; grey batches do not fit in "
               "memory. The ring is the plan's batch.")


def _serving_selected(row: pd.Series, scenario_yaml: str, view: dict) -> None:
    """The selected serving plan: key figures, its offer and layout, and one detail view."""
    a, b, d = st.columns(3)
    a.metric("Cost per month", c.usd(row["cost_per_month_usd"]), help=c.usd_full(row["cost_per_month_usd"]))
    b.metric("p95 end-to-end", f"{c.number(row['e2e_p95_s'])} s")
    d.metric("Replicas", c.count(row["replicas"]))
    st.caption(f"{row['provider']} {row['offer']} ({row['region']}, {row['pricing_model']}) at "
               f"{c.usd_rate(row['usd_per_device_hour'])} per device-hour · {int(row['replicas']):,} "
               f"replica(s) x {int(row['devices_per_replica'])} = {int(row['n_devices']):,} devices on "
               f"{int(row['instances']):,} instance(s) · replica tp/pp/ep "
               f"{charts.serving_layout_text(row)} · {row['precision']}, KV {int(row['kv_bits'])}-bit · "
               f"batch {int(row['batch_size'])} (up to {int(row['max_batch']):,} fit) · utilisation "
               f"{row['utilization']:.0%} · p95 TTFT {row['ttft_p95_s']:,.3f} s, TPOT "
               f"{row['tpot_p95_s']:,.4f} s · {c.usd_rate(row['usd_per_million_input_tokens'])} / "
               f"{c.usd_rate(row['usd_per_million_output_tokens'])} per 1M input / output tokens")
    for line in c.price_caveats(row):
        st.warning(line, icon=":material/warning:")
    if row["cost_autoscaled_per_month_usd"] != row["cost_per_month_usd"]:
        st.caption(f"Following the 24-hour profile hour by hour: "
                   f"{c.usd_full(row['cost_autoscaled_per_month_usd'])} per month.")
    api = _api_text(row)
    if api:
        st.caption(api)
    detail = st.segmented_control("Detail", SERVE_DETAILS, default=SERVE_DETAILS[0],
                                  key="serve_detail_view", required=True, label_visibility="collapsed")
    if detail == "Numbers":
        _numbers(row, "serve")
    elif detail == "Memory":
        st.plotly_chart(charts.fig_memory_breakdown(row), key="fig_memory")
    elif detail == "Decode iteration":
        st.plotly_chart(charts.fig_decode_breakdown(row), key="fig_decode")
        st.caption(f"{row['output_tokens_per_s_per_replica']:,.0f} output tokens/s per replica "
                   f"({row['output_tokens_per_s_per_device']:,.0f} per device) · GEMMs memory-bound "
                   f"share {row['gemms_memory_bound_share']:.0%}")
    elif detail == "Latency vs throughput":
        _latency_curve(row, scenario_yaml)
    else:
        _assumptions_used(row, view)


def _numbers(row: pd.Series, kind: str) -> None:
    """The selected plan's breakdown as a table (the rows the Breakdown CSV has for it)."""
    st.dataframe(c.breakdown_display(row, kind), hide_index=True, key="numbers_table")
    st.caption("Each quantity by component, with its share of the quantity; the other views draw "
               "them as charts.")


def _training_selected(row: pd.Series, view: dict) -> None:
    """The selected training plan: cost, time, MFU, its offer and layout, and one detail view."""
    a, b, d = st.columns(3)
    a.metric("Cost", c.usd(row["cost_total_usd"]), help=c.usd_full(row["cost_total_usd"]))
    b.metric("Time", c.duration(row["time_total_hours"]), help=c.hours(row["time_total_hours"]))
    d.metric("MFU", f"{row['mfu']:.1%}")
    st.caption(f"{row['provider']} {row['offer']} ({row['region']}, {row['pricing_model']}) at "
               f"{c.usd_rate(row['usd_per_device_hour'])} per device-hour · {int(row['n_devices']):,} "
               f"devices on {int(row['instances']):,} instance(s) · layout tp/pp/vpp/dp/cp/ep "
               f"{charts.layout_text(row)} · ZeRO {int(row['zero_stage'])} · recompute "
               f"{row['recompute']} · micro-batch {int(row['micro_batch'])} · "
               f"{row['precision']}")
    for line in c.price_caveats(row):
        st.warning(line, icon=":material/warning:")
    # One detail view at a time (a chart costs the browser more than the server).
    detail = st.segmented_control("Detail", DETAILS, default=DETAILS[0], key="detail_view",
                                  required=True, label_visibility="collapsed")
    if detail == "Numbers":
        _numbers(row, "pretrain")
    elif detail == "Memory":
        st.plotly_chart(charts.fig_memory_breakdown(row), key="fig_memory")
    elif detail == "Step time":
        st.plotly_chart(charts.fig_step_breakdown(row), key="fig_step")
        st.caption(f"{row['tokens_per_s_per_device']:,.0f} tokens/s per device · step "
                   f"{row['step_time_s']:,.3f} s · HFU {row['hfu']:.1%}")
    elif detail == "Cost":
        st.plotly_chart(charts.fig_cost_breakdown(row), key="fig_cost")
        st.caption(f"{row['device_hours']:,.0f} device-hours ({row['billed_device_hours']:,.0f} "
                   f"billed) · energy {row['energy_kwh']:,.0f} kWh")
    else:
        _assumptions_used(row, view)


sc, view = c.plan_current()
serve = sc.job.kind == "serve"
st.markdown(c.scenario_summary(sc, view["model_name"]))
n_over = c.overrides_count()
if n_over:
    st.info(f"{n_over} override(s) of prices, efficiencies or assumptions apply to this ranking "
            "(see the Assumptions page).", icon=":material/tune:")

plans, pareto = view["plans"], view["pareto"]
st.caption(f"Searched {view['n_configurations']:,} configurations x offers = {view['n_plans']:,} "
           f"plans in {view['seconds']:.2f} s; {view['feasible']:,} feasible. "
           f"Showing the best {len(plans):,} by {sc.objective}.")

if plans.empty:
    st.warning("No feasible plan: every configuration breaks a constraint. The reasons are below; "
               "relax the constraints or widen the search space.", icon=":material/warning:")
elif serve:
    _serving_metrics(plans.iloc[0])
else:
    best = plans.iloc[0]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Best plan: cost", c.usd(best["cost_total_usd"]), help=c.usd_full(best["cost_total_usd"]))
    m2.metric("Time", c.duration(best["time_total_hours"]), help=c.hours(best["time_total_hours"]))
    m3.metric(f"Devices ({best['accelerator']})", c.count(best["n_devices"]))
    m4.metric("USD per 1M tokens", c.usd_rate(best["cost_per_million_tokens_usd"]))

# Selection: one plan (a plan_id) shown in detail; set by a table row, a Pareto point or the box.
everything = c.all_plans(view)
keys = [int(k) for k in everything["plan_id"]] if not everything.empty else []
if keys and st.session_state.get("selected_plan") not in keys:
    st.session_state["selected_plan"] = keys[0]
display = c.plans_display(plans, pareto, serve=serve)
st.session_state["_table_keys"] = [int(k) for k in display["plan_id"]]
labels = dict(zip(keys, charts.plan_labels(everything))) if keys else {}


def _select(plan_id: int) -> None:
    """Show plan ``plan_id`` in the Selected plan tab (a table row or a Pareto point chose it)."""
    st.session_state["selected_plan"] = plan_id
    st.session_state["plan_tab"] = SELECTED_TAB


def _on_table_select() -> None:
    rows = st.session_state["plans_table"].selection.rows
    table_keys = st.session_state.get("_table_keys", [])
    if rows and rows[0] < len(table_keys):
        _select(table_keys[rows[0]])


def _on_chart_select() -> None:
    points = st.session_state["pareto_chart"].selection.points
    for p in points:
        data = p.get("customdata")
        if data:
            _select(int(data[0]))
            return


def _pareto_tab() -> None:
    pareto_fig = charts.fig_pareto_serving if serve else charts.fig_pareto
    fig = pareto_fig(pareto, plans, selected_key=st.session_state["selected_plan"])
    fig.update_layout(height=480)
    st.plotly_chart(fig, key="pareto_chart", on_select=_on_chart_select,
                    selection_mode="points", config={"displaylogo": False})
    if serve:
        st.caption("Hover a point for the plan; click one to inspect it. Latency is the p95 "
                   "end-to-end time of a request at the peak load; the dashed line, when "
                   "shown, is the cheapest published API's bill for the mean load.")
        st.plotly_chart(charts.fig_cost_quality(plans).update_layout(height=360), key="quality_chart",
                        config={"displaylogo": False})
    else:
        st.caption("Hover a point for the plan; click one to inspect it. Error bars span the time "
                   "between all communication hidden and none hidden.")


def _selected_tab() -> None:
    st.selectbox("Plan", keys, key="selected_plan", format_func=lambda k: labels.get(k, str(k)),
                 label_visibility="collapsed", persist_state=c.PERSIST)
    row = c.plan_row(view, st.session_state["selected_plan"])
    if serve:
        _serving_selected(row, view["scenario_yaml"], view)
    else:
        _training_selected(row, view)


def _infeasible() -> None:
    if view["infeasible"].empty:
        st.write("Every plan searched is feasible.")
        return
    i1, i2 = st.columns([2, 1])
    i2.dataframe(view["infeasible"].rename(columns={"reason": "Reason", "plans": "Plans"}),
                 hide_index=True, key="infeasible_table",
                 column_config={"Plans": st.column_config.NumberColumn("Plans", format="%,d")})
    i1.plotly_chart(charts.fig_infeasible(view["infeasible"]), key="fig_infeasible")


if not plans.empty:
    st.subheader("Ranked plans")
    st.caption("Click a column header to sort, a row to inspect the plan below.")
    st.dataframe(display, column_config=c.table_config(display), column_order=c.table_columns(serve),
                 hide_index=True, key="plans_table", on_select=_on_table_select,
                 selection_mode="single-row", height=min(38 + 35 * len(display), 420))

if keys:
    # Lazy tabs: only the open one runs and is drawn, so the first page and a new plan show the
    # table without loading the chart library.
    tabs = st.tabs([SELECTED_TAB, "Monthly cost against p95 latency" if serve else "Cost against time",
                    INFEASIBLE_TAB], key="plan_tab", on_change="rerun")
    for tab, draw in zip(tabs, (_selected_tab, _pareto_tab, _infeasible)):
        with tab:
            if tab.open:
                draw()
else:
    st.subheader(INFEASIBLE_TAB)
    _infeasible()

st.subheader("Downloads")
st.caption(f"The same files as `costmodel plan scenario.yaml --top {view['top']} --csv "
           f"{c.REPORT_STEM}.csv`.")
files = view["files"]
d1, d2, d3, d4 = st.columns(4)
# Deferred: the browser fetches a file when its button is clicked, not with the page.
d1.download_button("Plans CSV", lambda: files["plans"], file_name=f"{c.REPORT_STEM}.csv", mime="text/csv",
                   key="dl_plans", on_click="ignore", icon=":material/download:")
d2.download_button("Breakdown CSV", lambda: files["breakdown"], file_name=f"{c.REPORT_STEM}_breakdown.csv",
                   mime="text/csv", key="dl_breakdown", on_click="ignore", icon=":material/download:")
d3.download_button("Metadata JSON", lambda: files["metadata"], file_name=f"{c.REPORT_STEM}_metadata.json",
                   mime="application/json", key="dl_metadata", on_click="ignore",
                   icon=":material/download:")
d4.download_button("Scenario YAML", lambda: view["scenario_yaml"], file_name="scenario.yaml",
                   mime="application/x-yaml", key="dl_scenario", on_click="ignore",
                   icon=":material/download:")
