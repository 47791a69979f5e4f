"""Plotly figures of plans: pure functions ``fig_*(data) -> plotly.graph_objects.Figure``.

They take the frames and rows ``costmodel.search.grid.plan`` returns (``PlanResult.plans``,
``.pareto``, ``.infeasible`` and single rows of them) and only draw: every number shown is a column
of those frames, converted to a display unit at most (bytes -> GiB, fraction -> percent). No
Streamlit here, so the same figures work in a notebook::

    from costmodel.search.grid import plan
    from costmodel.specs.scenario import Job, Scenario
    from costmodel.faces import charts

    result = plan(Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12)))
    charts.fig_pareto(result.pareto, result.plans).show()
    charts.fig_memory_breakdown(result.plans.iloc[0]).show()

Serving plans (job kind 'serve') have their own Pareto chart (``fig_pareto_serving``: monthly cost
against p95 end-to-end latency, with the cheapest API's monthly bill as a line), the decode
iteration by component (``fig_decode_breakdown``) and one replica's latency against throughput by
batch (``fig_latency_throughput`` of ``costmodel.batch_curve``); ``fig_memory_breakdown``,
``fig_compare`` and ``plan_label`` take serving rows as they are.

Each plan trace carries ``customdata`` whose first entry is the plan's ``plan_id`` (the planner's
unique, stable id of a configuration x offer) so a click on a point can select the plan; the
points of ``fig_latency_throughput`` carry their batch instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from costmodel.faces.report import COST_PARTS, MEMORY_PARTS
from costmodel.formulas.timing import STEP_COMPONENTS
from costmodel.jobs.serve import DECODE_PARTS, ServingJob
from costmodel.jobs.serve import MEMORY_PARTS as SERVING_MEMORY_PARTS

GIB = 2**30

#: Readable names of the memory components (keys of ``memory_<part>_bytes``).
MEMORY_LABELS = {
    "weights": "Weights",
    "gradients": "Gradients",
    "master_weights": "Master weights (fp32)",
    "optimizer_states": "Optimizer states",
    "kv_cache": "KV cache (paged)",
    "activations": "Activations",
    "logits": "Logits",
    "zero3_buffers": "ZeRO-3 gather buffers",
    "framework": "Framework / CUDA context",
    "fragmentation": "Allocator fragmentation",
}

#: Readable names of the step-time components (keys of ``<part>_s``).
STEP_LABELS = {
    "compute": "Compute",
    "tp_comm": "Tensor-parallel comm.",
    "cp_comm": "Context-parallel comm.",
    "ep_comm": "Expert-parallel comm.",
    "pp_comm": "Pipeline comm.",
    "dp_comm": "Data-parallel comm.",
    "bubble": "Pipeline bubble",
    "optimizer": "Optimizer step",
}

#: Readable names of the serving decode-iteration components (keys of ``decode_<part>_s``).
DECODE_LABELS = {
    "weights_and_gemms": "Weights and GEMMs",
    "attention": "Attention (KV cache reads)",
    "elementwise": "Element-wise ops",
    "lm_head": "LM head",
    "tp_comm": "Tensor-parallel comm.",
    "ep_comm": "Expert-parallel comm.",
    "pp_comm": "Pipeline comm.",
    "step_overhead": "Step overhead",
}

#: Readable names of the cost components (columns ``cost_<part>_usd``).
COST_LABELS = {
    "cost_compute_usd": "Compute (device-hours)",
    "cost_storage_usd": "Checkpoint storage",
    "cost_energy_usd": "Energy",
}

#: Readable names of the quantities of ``search.result.plan_breakdown``.
QUANTITY_LABELS = {
    "memory_per_device": "Memory per device",
    "step_time": "Step time",
    "cost": "Cost of the run",
    "time_per_output_token": "Decode iteration",
}


def component_label(quantity: str, component: str) -> str:
    """Readable name of one component of a plan breakdown (the figures' legend names)."""
    if quantity == "memory_per_device":
        return MEMORY_LABELS.get(component, component)
    if quantity == "step_time":
        return STEP_LABELS.get(component, component)
    if quantity == "cost":
        return COST_LABELS.get(f"cost_{component}_usd", component)
    return DECODE_LABELS.get(component, component)


# One colour per component, stable across figures (plotly's qualitative "Plotly" + "D3" sets).
_PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692",
            "#B6E880", "#FF97FF", "#FECB52")
_PLAN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")

_HOVER_COLUMNS = ("plan_id", "rank", "accelerator", "provider", "offer", "pricing_model", "n_devices",
                  "layout", "precision", "cost_total_usd", "time_total_hours",
                  "cost_per_million_tokens_usd", "memory_per_device_gib", "mfu")


def _value(row: Mapping[str, Any] | pd.Series, key: str, default: Any = None) -> Any:
    try:
        v = row[key]
    except (KeyError, IndexError):
        return default
    return default if v is None else v


def layout_text(row: Mapping[str, Any] | pd.Series) -> str:
    """The parallel layout of a plan row as 'tp/pp/vpp/dp/cp/ep' (the CLI's notation)."""
    return "/".join(str(int(_value(row, k, 1))) for k in ("tp", "pp", "vpp", "dp", "cp", "ep"))


def layout_texts(df: pd.DataFrame, serving: bool = False) -> list[str]:
    """``layout_text`` (or ``serving_layout_text``) of every row of ``df``, without a row loop."""
    if df.empty:
        return []
    keys = ("tp", "pp", "ep") if serving else ("tp", "pp", "vpp", "dp", "cp", "ep")
    parts = [(df[k].fillna(1) if k in df.columns else pd.Series(1, index=df.index)).astype(int).astype(str)
             for k in keys]
    text = parts[0].str.cat(parts[1:], sep="/")
    if serving and "disaggregated" in df.columns:
        text = text + df["disaggregated"].fillna(False).astype(bool).map({True: ", disaggregated",
                                                                          False: ""})
    return text.tolist()


def is_serving(row_or_frame: Mapping[str, Any] | pd.Series | pd.DataFrame) -> bool:
    """Whether a plan row (or frame) is a serving plan (it has replicas and a batch size)."""
    cols = row_or_frame.columns if isinstance(row_or_frame, pd.DataFrame) else row_or_frame
    return "replicas" in cols and "batch_size" in cols


def serving_layout_text(row: Mapping[str, Any] | pd.Series) -> str:
    """The replica layout of a serving plan row as 'tp/pp/ep' (+ ', disaggregated')."""
    text = "/".join(str(int(_value(row, k, 1))) for k in ("tp", "pp", "ep"))
    return text + (", disaggregated" if bool(_value(row, "disaggregated", False)) else "")


def usd_compact(x: float) -> str:
    """Dollars in a short space (metrics, chart labels): $24.1M, $3.2k, $512, $5.12, $0.0123."""
    sign, x = ("-" if x < 0 else ""), abs(float(x))
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if round(x / scale, 1) >= 1:
            return f"{sign}${x / scale:,.1f}{suffix}"
    if x >= 100:
        return f"{sign}${x:,.0f}"
    return f"{sign}${x:,.2f}" if x >= 1 or x == 0 else f"{sign}${x:.3g}"


def plan_labels(df: pd.DataFrame, short: bool = False) -> list[str]:
    """One label per plan row of ``df`` (``plan_label``, or the shorter ``short_label``), made
    unique: rows that would read alike get their region and pricing model, then their plan id."""
    rows = [r for _, r in df.iterrows()]
    make = short_label if short else plan_label
    labels = [make(r) for r in rows]
    for extra in (lambda r: f"{_value(r, 'region', '')}, {_value(r, 'pricing_model', '')}",
                  lambda r: f"plan {int(_value(r, 'plan_id', 0))}"):
        seen: dict[str, int] = {}
        for lab in labels:
            seen[lab] = seen.get(lab, 0) + 1
        labels = [f"{lab} · {extra(r)}" if seen[lab] > 1 else lab for lab, r in zip(labels, rows)]
    return labels


def short_label(row: Mapping[str, Any] | pd.Series) -> str:
    """Rank (or "Pareto"), part x devices, layout and offer: enough to tell two plans apart."""
    rank = _value(row, "rank")
    head = f"#{int(rank)}" if rank is not None and not pd.isna(rank) else "Pareto"
    layout = serving_layout_text(row) if is_serving(row) else layout_text(row)
    return (f"{head} {_value(row, 'accelerator', '?')} x{int(_value(row, 'n_devices', 0))} · "
            f"{layout} · {_value(row, 'offer', '')}")


def plan_label(row: Mapping[str, Any] | pd.Series) -> str:
    """A short human label of a plan row: rank, part x devices, offer, layout, precision."""
    rank = _value(row, "rank")
    head = f"#{int(rank)} " if rank is not None and not pd.isna(rank) else "Pareto: "
    if is_serving(row):
        return (f"{head}{_value(row, 'accelerator', '?')} x{int(_value(row, 'n_devices', 0))} "
                f"({int(_value(row, 'replicas', 0))} replica(s)) · {_value(row, 'provider', '')} "
                f"{_value(row, 'offer', '')} · tp/pp/ep {serving_layout_text(row)} · "
                f"{_value(row, 'precision', '')}, KV {int(_value(row, 'kv_bits', 16))}-bit · "
                f"batch {int(_value(row, 'batch_size', 0))}")
    return (f"{head}{_value(row, 'accelerator', '?')} x{int(_value(row, 'n_devices', 0))} · "
            f"{_value(row, 'provider', '')} {_value(row, 'offer', '')} · "
            f"tp/pp/vpp/dp/cp/ep {layout_text(row)} · {_value(row, 'precision', '')}")


def _hover_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for col in _HOVER_COLUMNS:
        if col == "layout":
            out[col] = layout_texts(df)
        elif col in df.columns:
            out[col] = df[col]
        else:
            out[col] = None
    out["rank"] = out["rank"].map(lambda r: "-" if r is None or pd.isna(r) else f"#{int(r)}")
    return out


_HOVER_TEMPLATE = (
    "<b>%{customdata[1]} %{customdata[2]}</b> x%{customdata[6]} devices<br>"
    "%{customdata[3]} %{customdata[4]} (%{customdata[5]})<br>"
    "layout tp/pp/vpp/dp/cp/ep %{customdata[7]}, %{customdata[8]}<br>"
    "cost %{customdata[9]:$,.0f} · time %{customdata[10]:,.1f} h<br>"
    "%{customdata[11]:$,.3f} per 1M tokens · %{customdata[12]:.1f} GiB/device · "
    "MFU %{customdata[13]:.1%}<extra>%{fullData.name}</extra>"
)


def fig_pareto(pareto_df: pd.DataFrame, plans_df: pd.DataFrame | None = None,
               selected_key: int | None = None) -> go.Figure:
    """Cost (USD) against training time (hours), both on log axes.

    ``pareto_df`` is ``PlanResult.pareto`` (drawn as the front, with the time range between the
    all-communication-hidden and none-hidden bounds as error bars); ``plans_df`` (optional) the
    ranked plans, drawn behind it; ``selected_key`` (a ``plan_id``) is ringed.
    """
    fig = go.Figure()
    if plans_df is not None and not plans_df.empty:
        fig.add_trace(go.Scatter(
            x=plans_df["time_total_hours"], y=plans_df["cost_total_usd"], mode="markers",
            name="Ranked plans", marker={"size": 8, "color": "rgba(120,120,120,0.55)",
                                             "line": {"width": 0.5, "color": "#444"}},
            customdata=_hover_frame(plans_df).to_numpy(), hovertemplate=_HOVER_TEMPLATE,
        ))
    if pareto_df is not None and not pareto_df.empty:
        front = pareto_df.sort_values("time_total_hours")
        if "rank" not in front.columns and plans_df is not None and not plans_df.empty:
            # Pareto points that are also ranked plans show their rank.
            front = front.assign(rank=front["plan_id"].map(plans_df.set_index("plan_id")["rank"]))
        err = {}
        if {"time_total_lower_hours", "time_total_upper_hours"} <= set(front.columns):
            err = {"error_x": {
                "type": "data", "symmetric": False,
                "array": (front["time_total_upper_hours"] - front["time_total_hours"]).clip(lower=0),
                "arrayminus": (front["time_total_hours"] - front["time_total_lower_hours"]).clip(lower=0),
                "thickness": 1, "width": 3, "color": "rgba(214,39,40,0.45)"}}
        fig.add_trace(go.Scatter(
            x=front["time_total_hours"], y=front["cost_total_usd"], mode="lines+markers",
            name="Pareto front (cost vs time)", line={"color": "#d62728", "width": 2, "shape": "hv"},
            marker={"size": 11, "color": "#d62728", "symbol": "diamond"},
            customdata=_hover_frame(front).to_numpy(), hovertemplate=_HOVER_TEMPLATE, **err,
        ))
    if selected_key is not None:
        frames = [f for f in (plans_df, pareto_df) if f is not None and not f.empty]
        sel = pd.concat(frames)[lambda d: d["plan_id"] == selected_key] if frames else pd.DataFrame()
        if not sel.empty:
            sel = sel.head(1)
            fig.add_trace(go.Scatter(
                x=sel["time_total_hours"], y=sel["cost_total_usd"], mode="markers",
                name="Selected plan", marker={"size": 20, "color": "rgba(0,0,0,0)",
                                                  "line": {"width": 3, "color": "#111"}},
                customdata=_hover_frame(sel).to_numpy(), hovertemplate=_HOVER_TEMPLATE,
            ))
    fig.update_xaxes(type="log", title_text="Training time (hours, log scale)")
    fig.update_yaxes(type="log", title_text="Total cost (USD, log scale)", tickprefix="$")
    fig.update_layout(
        title="Cost against time: ranked plans and the Pareto front",
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
        margin={"l": 10, "r": 10, "t": 50, "b": 40}, hovermode="closest", clickmode="event+select",
    )
    return fig


#: Serving Pareto axes (both minimised): monthly cost (y) against p95 end-to-end latency (x).
SERVING_COST, SERVING_LATENCY = ServingJob.pareto_axes

_SERVING_HOVER_COLUMNS = ("plan_id", "rank", "accelerator", "provider", "offer", "pricing_model",
                          "n_devices", "replicas", "layout", "precision", "kv_bits", "batch_size",
                          "cost_per_month_usd", "e2e_p95_s", "ttft_p95_s", "tpot_p95_s",
                          "usd_per_million_output_tokens")

_SERVING_HOVER_TEMPLATE = (
    "<b>%{customdata[1]} %{customdata[2]}</b> x%{customdata[6]} devices "
    "(%{customdata[7]} replicas)<br>"
    "%{customdata[3]} %{customdata[4]} (%{customdata[5]})<br>"
    "tp/pp/ep %{customdata[8]}, %{customdata[9]}, KV %{customdata[10]}-bit, batch %{customdata[11]}<br>"
    "%{customdata[12]:$,.0f} per month · %{customdata[16]:$,.4f} per 1M output tokens<br>"
    "p95: end-to-end %{customdata[13]:,.3f} s · TTFT %{customdata[14]:,.3f} s · "
    "TPOT %{customdata[15]:,.4f} s<extra>%{fullData.name}</extra>"
)


def _serving_hover_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for col in _SERVING_HOVER_COLUMNS:
        if col == "layout":
            out[col] = layout_texts(df, serving=True)
        else:
            out[col] = df[col] if col in df.columns else None
    out["rank"] = out["rank"].map(lambda r: "-" if r is None or pd.isna(r) else f"#{int(r)}")
    return out


def _serving_points(df: pd.DataFrame, name: str, **style: Any) -> go.Scatter:
    return go.Scatter(x=df[SERVING_LATENCY], y=df[SERVING_COST], name=name,
                      customdata=_serving_hover_frame(df).to_numpy(),
                      hovertemplate=_SERVING_HOVER_TEMPLATE, **style)


def _api_line(frames: Sequence[pd.DataFrame]) -> go.Scatter | None:
    """The cheapest API's monthly bill at the mean load (``api_cost_per_month_usd``, the same in
    every row of a result) as a horizontal line across the plotted latencies; None without one."""
    frames = [f for f in frames if "api_cost_per_month_usd" in f.columns]
    rows = pd.concat(frames) if frames else pd.DataFrame()
    rows = rows[rows["api_cost_per_month_usd"].notna()] if not rows.empty else rows
    if rows.empty:
        return None
    cost = float(rows["api_cost_per_month_usd"].iloc[0])
    who = str(_value(rows.iloc[0], "api_provider", "")) or "API"
    lo, hi = float(rows[SERVING_LATENCY].min()), float(rows[SERVING_LATENCY].max())
    return go.Scatter(x=[lo / 1.2, hi * 1.2], y=[cost, cost], mode="lines+text",
                      name=f"Cheapest API at the mean load: {who}",
                      line={"color": "#2ca02c", "width": 2, "dash": "dash"},
                      text=["", f"API ${cost:,.0f}/month"], textposition="top left",
                      meta="api_cost_per_month_usd",
                      hovertemplate=f"{who}<br>${cost:,.0f} per month at the mean load<extra></extra>")


def fig_pareto_serving(pareto_df: pd.DataFrame, plans_df: pd.DataFrame | None = None,
                       selected_key: int | None = None) -> go.Figure:
    """Serving plans: monthly cost (USD) against p95 end-to-end latency (s), both on log axes
    (``ServingJob.pareto_axes``), the ranked plans in grey, the Pareto front in red and, when the
    model has a published API price, the cheapest API's monthly bill at the mean load as a
    dashed line. ``customdata[0]`` of every plan point is its ``plan_id``."""
    fig = go.Figure()
    frames = [f for f in (plans_df, pareto_df) if f is not None and not f.empty]
    if plans_df is not None and not plans_df.empty:
        fig.add_trace(_serving_points(plans_df, "Ranked plans", mode="markers", marker={
            "size": 8, "color": "rgba(120,120,120,0.55)", "line": {"width": 0.5, "color": "#444"}}))
    if pareto_df is not None and not pareto_df.empty:
        front = pareto_df.sort_values(SERVING_LATENCY)
        if "rank" not in front.columns and plans_df is not None and not plans_df.empty:
            front = front.assign(rank=front["plan_id"].map(plans_df.set_index("plan_id")["rank"]))
        fig.add_trace(_serving_points(
            front, "Pareto front (monthly cost vs p95 latency)", mode="lines+markers",
            line={"color": "#d62728", "width": 2, "shape": "hv"},
            marker={"size": 11, "color": "#d62728", "symbol": "diamond"}))
    api = _api_line(frames)
    if api is not None:
        fig.add_trace(api)
    if selected_key is not None and frames:
        sel = pd.concat(frames)[lambda d: d["plan_id"] == selected_key].head(1)
        if not sel.empty:
            fig.add_trace(_serving_points(sel, "Selected plan", mode="markers", marker={
                "size": 20, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#111"}}))
    fig.update_xaxes(type="log", title_text="p95 end-to-end latency (s, log scale)")
    fig.update_yaxes(type="log", title_text="Cost per month (USD, log scale)", tickprefix="$")
    fig.update_layout(
        title="Monthly cost against p95 latency: ranked plans and the Pareto front",
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
        margin={"l": 10, "r": 10, "t": 50, "b": 40}, hovermode="closest", clickmode="event+select",
    )
    return fig


def _stacked_bar(values: Sequence[tuple[str, str, float]], *, axis_title: str, title: str,
                 hover_unit: str, value_format: str, height: int = 280) -> go.Figure:
    fig = go.Figure()
    for i, (name, label, value) in enumerate(values):
        fig.add_trace(go.Bar(
            x=[value], y=[""], orientation="h", name=label, marker_color=_PALETTE[i % len(_PALETTE)],
            meta=name, hovertemplate=f"{label}: %{{x:{value_format}}} {hover_unit}<extra></extra>",
        ))
    fig.update_layout(barmode="stack", title=title, height=height, legend_traceorder="normal",
                      legend={"orientation": "v", "yanchor": "middle", "y": 0.5, "xanchor": "left", "x": 1.02},
                      margin={"l": 10, "r": 10, "t": 60, "b": 10})
    fig.update_xaxes(title_text=axis_title)
    fig.update_yaxes(showticklabels=False)
    return fig


def memory_parts_gib(row: Mapping[str, Any] | pd.Series) -> dict[str, float]:
    """Memory per device by component in GiB, from a plan row (``memory_<part>_bytes``) or from a
    ``Breakdown`` / mapping component -> bytes (``costmodel.training_memory``)."""
    if "memory_kv_cache_bytes" in row:  # a serving plan row: weights, KV cache, workspace, framework
        return {p: float(_value(row, f"memory_{p}_bytes", 0.0)) / GIB for p in SERVING_MEMORY_PARTS}
    if any(f"memory_{p}_bytes" in row for p in MEMORY_PARTS):
        return {p: float(_value(row, f"memory_{p}_bytes", 0.0)) / GIB for p in MEMORY_PARTS}
    return {str(k): float(v) / GIB for k, v in row.items()}


def fig_memory_breakdown(plan_row: Mapping[str, Any] | pd.Series,
                         capacity_bytes: float | None = None) -> go.Figure:
    """Memory per device (GiB) stacked by component against the device's capacity.

    ``plan_row`` is a row of ``PlanResult.plans`` of a training or a serving job (capacity from
    ``memory_capacity_bytes``) or a mapping component -> bytes such as ``costmodel.training_memory(...)`` (give
    ``capacity_bytes`` to draw the capacity line).
    """
    parts = memory_parts_gib(plan_row)
    total = sum(parts.values())
    fig = _stacked_bar([(k, MEMORY_LABELS.get(k, k), v) for k, v in parts.items()],
                       axis_title="Memory per device (GiB)",
                       title=f"Memory per device: {total:,.1f} GiB", hover_unit="GiB",
                       value_format=",.2f", height=340)
    cap = capacity_bytes if capacity_bytes is not None else _value(plan_row, "memory_capacity_bytes")
    if cap is not None and not pd.isna(cap):
        cap_gib = float(cap) / GIB
        fig.add_vline(x=cap_gib, line={"color": "#111", "width": 2, "dash": "dash"},
                      annotation_text=f"capacity {cap_gib:,.0f} GiB", annotation_position="top")
        fig.update_xaxes(range=[0, max(cap_gib, total) * 1.05])
        fig.update_layout(title=f"Memory per device: {total:,.1f} of {cap_gib:,.0f} GiB")
    return fig


def fig_step_breakdown(plan_row: Mapping[str, Any] | pd.Series) -> go.Figure:
    """One optimizer step (s) stacked by component: compute, exposed communication by kind,
    pipeline bubble, optimizer. Components that are exactly zero are left out."""
    parts = [(c, STEP_LABELS[c], float(_value(plan_row, f"{c}_s", 0.0))) for c in STEP_COMPONENTS]
    shown = [p for p in parts if p[2] != 0.0] or parts[:1]
    step = _value(plan_row, "step_time_s")
    total = float(step) if step is not None else sum(p[2] for p in parts)
    return _stacked_bar(shown, axis_title="Time per optimizer step (s)",
                        title=f"Step time: {total:,.3f} s", hover_unit="s", value_format=",.4f")


def fig_cost_breakdown(plan_row: Mapping[str, Any] | pd.Series) -> go.Figure:
    """Total cost of the run (USD) stacked by component: compute, checkpoint storage, energy."""
    parts = [(c, COST_LABELS[c], float(_value(plan_row, c, 0.0))) for c in COST_PARTS]
    shown = [p for p in parts if p[2] != 0.0] or parts[:1]
    total = _value(plan_row, "cost_total_usd")
    total = float(total) if total is not None else sum(p[2] for p in parts)
    fig = _stacked_bar(shown, axis_title="Cost of the run (USD)", title=f"Cost: {usd_compact(total)}",
                       hover_unit="", value_format="$,.2f")
    fig.update_xaxes(tickprefix="$")
    return fig


def fig_decode_breakdown(plan_row: Mapping[str, Any] | pd.Series) -> go.Figure:
    """One decode iteration of a serving replica (ms) stacked by component (``decode_<part>_s``):
    weights and GEMMs, attention over the KV cache, element-wise ops, LM head, communication by
    kind, step overhead. Components that are exactly zero are left out."""
    parts = [(c, DECODE_LABELS[c], float(_value(plan_row, f"decode_{c}_s", 0.0)) * 1e3)
             for c in DECODE_PARTS]
    shown = [p for p in parts if p[2] != 0.0] or parts[:1]
    total = sum(p[2] for p in parts)
    batch = _value(plan_row, "batch_size")
    where = f" at batch {int(batch)}" if batch is not None and not pd.isna(batch) else ""
    return _stacked_bar(shown, axis_title="Time per decode iteration (ms)",
                        title=f"Decode iteration{where}: {total:,.2f} ms", hover_unit="ms",
                        value_format=",.3f")


def fig_latency_throughput(curve_df: pd.DataFrame, selected_batch: int | None = None) -> go.Figure:
    """Latency against throughput of one replica as its batch grows (``costmodel.batch_curve``):
    output tokens/s per replica (x) against time per output token (y, ms), both on log axes so
    that the memory-bound and the compute-bound ends both spread out; one point per
    batch labelled with it; batches that do not fit in memory are grey, the ``selected_batch``
    is ringed. ``customdata[0]`` of every point is its batch."""
    fig = go.Figure()
    df = curve_df.sort_values("batch")
    hover = ("batch %{customdata[0]}<br>%{x:,.0f} output tokens/s per replica<br>"
             "TPOT %{y:,.2f} ms · TTFT %{customdata[1]:,.3f} s<br>"
             "%{customdata[2]:,.1f} GiB per device<extra>%{fullData.name}</extra>")
    fits = df["fits_in_memory"].astype(bool)
    for name, part, style in (
        ("Fits in memory", df[fits], {"mode": "lines+markers+text", "line": {"color": "#1f77b4"},
                                      "marker": {"size": 9, "color": "#1f77b4"}}),
        ("Does not fit in memory", df[~fits], {"mode": "markers+text",
                                               "marker": {"size": 9, "color": "#b0b0b0"},
                                               "textfont": {"color": "#9a9a9a"}}),
    ):
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part["output_tokens_per_s_per_replica"], y=part["tpot_s"] * 1e3, name=name,
            text=[f"{int(b)}" for b in part["batch"]], textposition="top center",
            customdata=part[["batch", "ttft_s", "memory_per_device_gib"]].to_numpy(),
            hovertemplate=hover, **style))
    sel = df[df["batch"] == selected_batch] if selected_batch is not None else df.iloc[0:0]
    if not sel.empty:
        fig.add_trace(go.Scatter(
            x=sel["output_tokens_per_s_per_replica"], y=sel["tpot_s"] * 1e3, mode="markers",
            name=f"This plan (batch {int(selected_batch)})",
            marker={"size": 20, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#d62728"}},
            customdata=sel[["batch", "ttft_s", "memory_per_device_gib"]].to_numpy(),
            hovertemplate=hover))
    fig.update_xaxes(type="log", title_text="Output tokens/s per replica (log scale)")
    fig.update_yaxes(type="log", title_text="Time per output token (ms, log scale)")
    fig.update_layout(title="Latency against throughput of one replica, by batch", height=380,
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0},
                      margin={"l": 10, "r": 10, "t": 50, "b": 40}, hovermode="closest")
    return fig


def fig_infeasible(infeasible_df: pd.DataFrame) -> go.Figure:
    """Plans (configuration x offer) ruled out, counted by reason (``PlanResult.infeasible``)."""
    df = infeasible_df if infeasible_df is not None else pd.DataFrame(columns=["reason", "plans"])
    fig = go.Figure(go.Bar(
        x=df["plans"], y=df["reason"], orientation="h", marker_color="#EF553B",
        text=[f"{int(v):,}" for v in df["plans"]], textposition="auto",
        hovertemplate="%{y}: %{x:,} plans<extra></extra>",
    ))
    fig.update_xaxes(title_text="Plans ruled out (configurations x offers)")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Why the other plans are infeasible", height=120 + 40 * max(1, len(df)),
                      margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


#: Quantities of ``fig_compare``: column, panel title (with unit), scale to the display unit.
COMPARE_METRICS = (
    ("cost_total_usd", "Total cost (USD)", 1.0),
    ("time_total_hours", "Training time (hours)", 1.0),
    ("cost_per_million_tokens_usd", "Cost per 1M tokens (USD)", 1.0),
    ("memory_per_device_gib", "Memory per device (GiB)", 1.0),
    ("mfu", "Model FLOPs utilisation (%)", 100.0),
    ("step_time_s", "Step time (s)", 1.0),
)

#: The same for serving plans.
SERVING_COMPARE_METRICS = (
    ("cost_per_month_usd", "Cost per month (USD)", 1.0),
    ("e2e_p95_s", "p95 end-to-end latency (s)", 1.0),
    ("usd_per_million_output_tokens", "USD per 1M output tokens", 1.0),
    ("memory_per_device_gib", "Memory per device (GiB)", 1.0),
    ("output_tokens_per_s_per_replica", "Output tokens/s per replica", 1.0),
    ("tpot_p95_s", "p95 time per output token (ms)", 1000.0),
)


def _bar_text(value: float, title: str) -> str:
    """A bar's label in a short space: compact dollars for USD panels, else 3-4 digits."""
    if pd.isna(value):
        return "—"
    if "USD" in title and "per 1M" not in title:
        return usd_compact(value)
    if "per 1M" in title:
        return f"${value:,.4g}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"


def fig_compare(plans_df: pd.DataFrame, metrics: Sequence[tuple[str, str, float]] | None = None) -> go.Figure:
    """Two or three plans side by side: one panel per quantity of ``metrics`` (default
    ``COMPARE_METRICS``, or ``SERVING_COMPARE_METRICS`` for serving plans), one bar per plan
    (same colour in every panel); memory panels mark each plan's device capacity."""
    if metrics is None:
        metrics = SERVING_COMPARE_METRICS if is_serving(plans_df) else COMPARE_METRICS
    df = plans_df.reset_index(drop=True)
    n = len(metrics)
    cols = 3
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[m[1] for m in metrics],
                        vertical_spacing=0.18, horizontal_spacing=0.08)
    names = plan_labels(df)
    short = plan_labels(df, short=True)
    for j, (col, title, scale) in enumerate(metrics):
        rr, cc = j // cols + 1, j % cols + 1
        for i in range(len(df)):
            value = float(df.loc[i, col]) * scale
            fig.add_trace(go.Bar(
                x=[short[i]], y=[value], name=names[i], legendgroup=names[i], showlegend=(j == 0),
                marker_color=_PLAN_COLOURS[i % len(_PLAN_COLOURS)], meta=col,
                text=[_bar_text(value, title)], textposition="outside", cliponaxis=False,
                hovertemplate=f"{names[i]}<br>{title}: {_bar_text(value, title)}<extra></extra>",
            ), row=rr, col=cc)
            if col == "memory_per_device_gib" and "memory_capacity_gib" in df.columns:
                fig.add_trace(go.Scatter(
                    x=[short[i]], y=[float(df.loc[i, "memory_capacity_gib"])], mode="markers",
                    marker={"symbol": "line-ew-open", "size": 30, "color": "#111", "line": {"width": 2}},
                    name="Device capacity (GiB)", legendgroup="capacity",
                    showlegend=(i == 0), meta="memory_capacity_gib",
                    hovertemplate="capacity %{y:,.0f} GiB<extra></extra>",
                ), row=rr, col=cc)
        fig.update_yaxes(title_text=title, row=rr, col=cc, rangemode="tozero")
        fig.update_xaxes(showticklabels=False, row=rr, col=cc)
    fig.update_layout(height=330 * rows, barmode="group", margin={"l": 10, "r": 10, "t": 60, "b": 10},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "xanchor": "left", "x": 0})
    return fig


def fig_cost_quality(plans_df: pd.DataFrame) -> go.Figure:
    """Serving plans: monthly cost against the published quality loss of their compression
    (``quality_loss_fraction``: relative perplexity increase or accuracy drop, summed over the
    techniques; 0 = uncompressed). Plans whose loss is unknown (nothing published for the model's
    family) are drawn at the right edge in grey and labelled "unknown", never given a number.
    ``customdata[0]`` is the plan id."""
    fig = go.Figure()
    if plans_df is None or plans_df.empty or "quality_loss_fraction" not in plans_df:
        return fig.update_layout(title="No plan with a quality column")
    loss = plans_df["quality_loss_fraction"].astype(float)
    known, unknown = plans_df[loss.notna()], plans_df[loss.isna()]
    edge = float(loss.max()) * 1.2 + 0.01 if loss.notna().any() else 0.05
    for part, x, name, color in ((known, known["quality_loss_fraction"] * 100, "published", "#1f77b4"),
                                 (unknown, [edge * 100] * len(unknown), "unknown", "#999999")):
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=list(x), y=part["cost_per_month_usd"], mode="markers", name=f"quality impact {name}",
            marker={"size": 9, "color": color},
            customdata=list(zip(part["plan_id"], part["precision"], part["quality_impact"])),
            hovertemplate="%{customdata[1]}: %{customdata[2]}<br>$%{y:,.0f}/month<extra></extra>"))
    fig.update_xaxes(title_text="published quality loss (% of the baseline metric; grey: unknown)")
    fig.update_yaxes(type="log", title_text="Cost per month (USD, log scale)", tickprefix="$")
    return fig.update_layout(title="Monthly cost against published quality impact", legend={"orientation": "h"})
