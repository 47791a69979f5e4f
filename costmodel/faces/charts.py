"""Plotly figures of plans: pure functions ``fig_*(data) -> plotly.graph_objects.Figure``.

They take the frames and rows ``costmodel.search.grid.plan`` returns (``PlanResult.plans``,
``.pareto``, ``.infeasible`` and single rows of them) and only draw: every number shown is a column
of those frames, converted to a display unit at most (bytes -> GiB, fraction -> percent). No
Streamlit here, so the same figures work in a notebook::

    from costmodel.search.grid import plan
    from costmodel.specs.scenario import Job, Scenario
    from costmodel import charts

    result = plan(Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e12)))
    charts.fig_pareto(result.pareto, result.plans).show()
    charts.fig_memory_breakdown(result.plans.iloc[0]).show()

Each trace carries ``customdata`` whose first entry is the plan's ``plan_id`` (the planner's unique,
stable id of a configuration x offer) so a click on a point can select the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from costmodel.faces.report import COST_PARTS, MEMORY_PARTS
from costmodel.formulas.timing import STEP_COMPONENTS

GIB = 2**30

#: Readable names of the memory components (keys of ``memory_<part>_bytes``).
MEMORY_LABELS = {
    "weights": "Weights",
    "gradients": "Gradients",
    "master_weights": "Master weights (fp32)",
    "optimizer_states": "Optimizer states",
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

#: Readable names of the cost components (columns ``cost_<part>_usd``).
COST_LABELS = {
    "cost_compute_usd": "Compute (device-hours)",
    "cost_storage_usd": "Checkpoint storage",
    "cost_energy_usd": "Energy",
}

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


def plan_label(row: Mapping[str, Any] | pd.Series) -> str:
    """A short human label of a plan row: rank, part x devices, offer, layout, precision."""
    rank = _value(row, "rank")
    head = f"#{int(rank)} " if rank is not None and not pd.isna(rank) else "Pareto: "
    return (f"{head}{_value(row, 'accelerator', '?')} x{int(_value(row, 'n_devices', 0))} · "
            f"{_value(row, 'provider', '')} {_value(row, 'offer', '')} · "
            f"tp/pp/vpp/dp/cp/ep {layout_text(row)} · {_value(row, 'precision', '')}")


def _hover_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for col in _HOVER_COLUMNS:
        if col == "layout":
            out[col] = [layout_text(r) for _, r in df.iterrows()]
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
    if any(f"memory_{p}_bytes" in row for p in MEMORY_PARTS):
        return {p: float(_value(row, f"memory_{p}_bytes", 0.0)) / GIB for p in MEMORY_PARTS}
    return {str(k): float(v) / GIB for k, v in row.items()}


def fig_memory_breakdown(plan_row: Mapping[str, Any] | pd.Series,
                         capacity_bytes: float | None = None) -> go.Figure:
    """Memory per device (GiB) stacked by component against the device's capacity.

    ``plan_row`` is a row of ``PlanResult.plans`` (capacity from ``memory_capacity_bytes``) or a
    mapping component -> bytes such as ``costmodel.training_memory(...)`` (give
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
    fig = _stacked_bar(shown, axis_title="Cost of the run (USD)", title=f"Cost: ${total:,.0f}",
                       hover_unit="", value_format="$,.2f")
    fig.update_xaxes(tickprefix="$")
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


def fig_compare(plans_df: pd.DataFrame) -> go.Figure:
    """Two or three plans side by side: one panel per quantity of ``COMPARE_METRICS``, one bar
    per plan (same colour in every panel); memory panels mark each plan's device capacity."""
    df = plans_df.reset_index(drop=True)
    n = len(COMPARE_METRICS)
    cols = 3
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[m[1] for m in COMPARE_METRICS],
                        vertical_spacing=0.18, horizontal_spacing=0.08)
    names = [f"{plan_label(r)}" for _, r in df.iterrows()]
    short = [(f"#{int(r['rank'])}" if "rank" in r and not pd.isna(r["rank"]) else f"P{i + 1}")
             + f" {r['accelerator']} x{int(r['n_devices'])}" for i, r in df.iterrows()]
    for j, (col, title, scale) in enumerate(COMPARE_METRICS):
        rr, cc = j // cols + 1, j % cols + 1
        for i in range(len(df)):
            value = float(df.loc[i, col]) * scale
            fig.add_trace(go.Bar(
                x=[short[i]], y=[value], name=names[i], legendgroup=names[i], showlegend=(j == 0),
                marker_color=_PLAN_COLOURS[i % len(_PLAN_COLOURS)], meta=col,
                hovertemplate=f"{names[i]}<br>{title}: %{{y:,.4g}}<extra></extra>",
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
