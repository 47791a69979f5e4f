"""Assumptions: the efficiencies, prices and knobs the plans rest on, each with its source; edit
any of them as an override of the scenario and see the ranking change."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common as c
from costmodel.specs.scenario import (ENGINE_EFFICIENCY_QUANTITIES, FORMAT_QUANTITIES, EfficiencyOverride,
                                PriceOverride)
from hardware_catalog import EFFICIENCY_QUANTITIES, Catalog

st.title("Assumptions and overrides")
st.caption("Every number the engine uses that is not a datasheet figure: achieved efficiencies "
           "(fraction of peak), prices (USD per device-hour) with their as-of dates and sources, "
           "and the framework knobs. An override becomes part of the scenario (and of the "
           "downloaded scenario file); every page plans with it.")

TRAINING_FORMATS = ("bf16", "fp8", "fp16", "tf32", "fp32")
#: Efficiency quantities the planner's hardware table reads (the others are catalog data only).
ENGINE_QUANTITIES = ENGINE_EFFICIENCY_QUANTITIES
PER_PRECISION = FORMAT_QUANTITIES
TABS = ("Efficiencies", "Prices", "Framework knobs")


def overrides() -> dict:
    return st.session_state["overrides"]


def overridden_catalog() -> Catalog:
    """The catalog with the current efficiency and price overrides (the catalog's own API)."""
    cat = c.catalog()
    for o in overrides()["efficiency"]:
        cat = cat.override_efficiency(o["accelerator"], o["quantity"], o["value"], precision=o["precision"])
    for o in overrides()["prices"]:
        cat = cat.override_price(o["provider"], o["offer"], o["region"], o["pricing_model"],
                                 usd_per_device_hour=o["usd_per_device_hour"])
    return cat


def _formats(quantity: str) -> list[str]:
    """Precisions an efficiency row of ``quantity`` can have for the selected part."""
    if quantity not in PER_PRECISION:
        return [""]
    acc = c.catalog().accelerator(st.session_state["ov_eff_acc"])
    return [f for f in TRAINING_FORMATS if acc.supports(f)] or ["bf16"]


def _current_eff() -> None:
    fmts = _formats(st.session_state.get("ov_eff_quantity", ENGINE_QUANTITIES[0]))
    if st.session_state.get("ov_eff_precision") not in fmts:
        st.session_state["ov_eff_precision"] = fmts[0]
    try:
        point = overridden_catalog().efficiency_value(
            st.session_state["ov_eff_acc"], st.session_state.get("ov_eff_quantity", ENGINE_QUANTITIES[0]),
            st.session_state["ov_eff_precision"])
        st.session_state["ov_eff_value"] = float(point.value)
    except c.INPUT_ERRORS:
        pass


def _replace(kind: str, new: dict, same: tuple[str, ...]) -> None:
    rows = [r for r in overrides()[kind] if tuple(r[k] for k in same) != tuple(new[k] for k in same)]
    overrides()[kind] = rows + [new]


# ---------------------------------------------------------------------------------------------
# Active overrides
st.subheader("Active overrides")
o = overrides()
active = ([{"type": "knob", "what": k, "value": v} for k, v in o["knobs"].items()]
          + [{"type": "efficiency", "what": f"{e['accelerator']} {e['quantity']} {e['precision'] or '-'}",
              "value": e["value"]} for e in o["efficiency"]]
          + [{"type": "price (USD per device-hour)",
              "what": f"{p['provider']} {p['offer']} ({p['region']}, {p['pricing_model']})",
              "value": p["usd_per_device_hour"]} for p in o["prices"]])
if not active:
    st.write("None: the plans use the catalog and the framework profile as shipped.")
else:
    st.dataframe(pd.DataFrame(active), hide_index=True, key="active_overrides")
    if st.button("Clear all overrides", key="ov_clear", icon=":material/restart_alt:"):
        st.session_state["overrides"] = c.empty_overrides()
        st.rerun()

try:
    cat = overridden_catalog()
except c.INPUT_ERRORS as exc:
    st.error(f"An override does not apply to the catalog: {c.message(exc)}. Clear the overrides.",
             icon=":material/error:")
    st.stop()

# Only the open tab runs (on_change="rerun"): the others cost nothing until picked.
tab_eff, tab_price, tab_knobs = st.tabs(list(TABS), key="assume_tab", on_change="rerun")

# ---------------------------------------------------------------------------------------------
if tab_eff.open:
    with tab_eff:
        acc_ids = list(cat.accelerator_ids)
        if st.session_state.get("ov_eff_acc") not in acc_ids:
            st.session_state["ov_eff_acc"] = c.DEFAULTS["in_m_accelerator"]
        acc_id = st.selectbox("Accelerator", acc_ids, key="ov_eff_acc", on_change=_current_eff)
        acc = cat.accelerator(acc_id)
        rows = []
        for q in EFFICIENCY_QUANTITIES:
            formats = [f for f in TRAINING_FORMATS if acc.supports(f)] if q in PER_PRECISION else [""]
            for fmt in formats:
                try:
                    p = cat.efficiency_value(acc_id, q, fmt)
                except c.INPUT_ERRORS:
                    rows.append({"quantity": q, "precision": fmt, "value": None, "row": "no data",
                                 "used by the planner": q in ENGINE_QUANTITIES, "as_of": "", "source": ""})
                    continue
                rows.append({"quantity": q, "precision": fmt, "value": p.value, "row": p.accelerator,
                             "used by the planner": q in ENGINE_QUANTITIES, "as_of": p.as_of,
                             "source": p.source})
        st.dataframe(c.readable(pd.DataFrame(rows), {"value": lambda v: c.number(v, 3)}),
                     hide_index=True, key="eff_table",
                     column_config={"value": st.column_config.NumberColumn("value (fraction of peak)",
                                                                           format="%.3f"),
                                    "row": st.column_config.TextColumn(
                                        "row used", help="The part's own row or its kind's default")})
        with st.container(border=True):
            st.markdown(f"**Override an efficiency of {acc_id}** (matmul and attention are per "
                        "precision; the other quantities have none)")

            if "ov_eff_quantity" not in st.session_state:
                st.session_state["ov_eff_quantity"] = ENGINE_QUANTITIES[0]
            fmts = _formats(st.session_state["ov_eff_quantity"])
            if st.session_state.get("ov_eff_precision") not in fmts:
                st.session_state["ov_eff_precision"] = fmts[0]
            if "ov_eff_value" not in st.session_state:
                _current_eff()
            f1, f2, f3 = st.columns(3)
            q = f1.selectbox("Quantity", ENGINE_QUANTITIES, key="ov_eff_quantity", on_change=_current_eff)
            fmt = f2.selectbox("Precision", fmts, key="ov_eff_precision", on_change=_current_eff,
                               format_func=lambda f: f or "(none)")
            value = f3.number_input("Value (fraction of peak)", min_value=0.001, max_value=1.0,
                                    step=0.05, format="%.3f", key="ov_eff_value")
            if st.button("Apply efficiency override", key="ov_eff_apply", type="primary"):
                try:
                    new = EfficiencyOverride(accelerator=acc_id, quantity=q, precision=fmt,
                                             value=value).model_dump()
                    cat.override_efficiency(acc_id, q, value, precision=fmt)  # validates the row
                except c.INPUT_ERRORS as exc:
                    st.error(f"Efficiency override rejected: {c.message(exc)}", icon=":material/error:")
                else:
                    _replace("efficiency", new, ("accelerator", "quantity", "precision"))
                    st.rerun()

# ---------------------------------------------------------------------------------------------
if tab_price.open:
    with tab_price:
        offers = cat.offers_frame()
        f1, f2 = st.columns(2)
        accs = sorted(offers["accelerator"].unique())
        if st.session_state.get("ov_price_acc") not in [None, *accs]:
            st.session_state["ov_price_acc"] = None
        pick_acc = f1.selectbox("Accelerator", accs, index=None, key="ov_price_acc",
                                placeholder="all accelerators")
        pick_prov = f2.multiselect("Providers", list(cat.providers), key="ov_price_providers")
        shown = offers
        if pick_acc:
            shown = shown[shown["accelerator"] == pick_acc]
        if pick_prov:
            shown = shown[shown["provider"].isin(pick_prov)]
        st.dataframe(c.readable(shown[["provider", "offer", "accelerator", "region", "pricing_model",
                                       "devices_per_instance", "usd_per_device_hour",
                                       "usd_per_instance_hour", "as_of", "source"]]),
                     hide_index=True, key="price_table",
                     column_config={
                         "usd_per_device_hour": st.column_config.NumberColumn("USD per device-hour", format="$%,.3f"),
                         "usd_per_instance_hour": st.column_config.NumberColumn("USD per instance-hour", format="$%.2f"),
                         "devices_per_instance": st.column_config.NumberColumn("devices per instance", format="%d"),
                     })
        offer_by_label = {" · ".join(r): tuple(r) for r in
                          shown[["provider", "offer", "region", "pricing_model"]].itertuples(index=False)}
        offer_keys = list(offer_by_label)
        if offer_keys:
            prices = {" · ".join(r[:4]): r[4] for r in shown[["provider", "offer", "region", "pricing_model",
                                                         "usd_per_device_hour"]].itertuples(index=False)}

            def _current_price() -> None:
                st.session_state["ov_price_value"] = float(prices.get(st.session_state["ov_price_offer"], 1.0))

            if st.session_state.get("ov_price_offer") not in offer_keys:
                st.session_state["ov_price_offer"] = offer_keys[0]
                _current_price()
            with st.container(border=True):
                st.markdown("**Override a price**")
                g1, g2 = st.columns([3, 1])
                label = g1.selectbox("Offer (provider · offer · region · pricing model)", offer_keys,
                                     key="ov_price_offer", on_change=_current_price)
                which = offer_by_label[label]
                usd = g2.number_input("USD per device-hour", min_value=0.0001, step=0.1, format="%.4f",
                                      key="ov_price_value")
                if st.button("Apply price override", key="ov_price_apply", type="primary"):
                    try:
                        new = PriceOverride(provider=which[0], offer=which[1], region=which[2],
                                            pricing_model=which[3], usd_per_device_hour=usd).model_dump()
                        cat.override_price(*which, usd_per_device_hour=usd)  # validates the key
                    except c.INPUT_ERRORS as exc:
                        st.error(f"Price override rejected: {c.message(exc)}", icon=":material/error:")
                    else:
                        _replace("prices", new, ("provider", "offer", "region", "pricing_model"))
                        st.rerun()

# ---------------------------------------------------------------------------------------------
if tab_knobs.open:
    with tab_knobs:
        framework = c.state("in_framework")
        st.caption(f"Framework profile **{framework}** (chosen on the Plan page): "
                   f"{c.frameworks().get(framework, '')}")
        try:
            records = c.knob_records(framework, o["knobs"])
        except c.INPUT_ERRORS as exc:
            st.error(f"Knob overrides do not apply to {framework}: {c.message(exc)}", icon=":material/error:")
            records = c.knob_records(framework)
        st.dataframe(c.knob_display(records), hide_index=True, key="knob_table")
        names = [r["name"] for r in records]
        values = {r["name"]: r["value"] for r in records}

        def _knob_changed() -> None:
            st.session_state["ov_knob_value"] = float(values[st.session_state["ov_knob_name"]])

        if st.session_state.get("ov_knob_name") not in names:
            st.session_state["ov_knob_name"] = names[0]
            st.session_state["ov_knob_value"] = float(values[names[0]])
        k1, k2, k3 = st.columns([2, 1, 1])
        k1.selectbox("Knob", names, key="ov_knob_name", on_change=_knob_changed)
        k2.number_input("Value", key="ov_knob_value", format="%.6g", step=None)
        k3.write("")
        k3.write("")
        if k3.button("Apply knob override", key="ov_knob_apply", type="primary"):
            new = dict(o["knobs"])
            new[st.session_state["ov_knob_name"]] = float(st.session_state["ov_knob_value"])
            try:
                c.knob_records(framework, new)
            except c.INPUT_ERRORS as exc:
                st.error(f"Knob override rejected: {c.message(exc)}", icon=":material/error:")
            else:
                o["knobs"] = new
                st.rerun()

# ---------------------------------------------------------------------------------------------
st.subheader("Ranking with and without the overrides")
cols = ["rank", "accelerator", "provider", "offer", "n_devices", "precision", "cost_total_usd",
        "time_total_hours"]
cfg = {"cost_total_usd": c.usd_column("Cost (USD)"),
       "time_total_hours": st.column_config.NumberColumn("Time (hours)", format="%,.1f"),
       "n_devices": st.column_config.NumberColumn("Devices", format="%,d")}
left, right = st.columns(2)
with left:
    st.markdown("**With the overrides** (what the Plan page shows)")
    _, view = c.plan_current(with_overrides=True)
    st.dataframe(view["plans"][cols].head(10) if not view["plans"].empty else pd.DataFrame(columns=cols),
                 hide_index=True, column_config=cfg, key="rank_with")
with right:
    st.markdown("**As shipped** (no overrides)")
    _, base = c.plan_current(with_overrides=False)
    st.dataframe(base["plans"][cols].head(10) if not base["plans"].empty else pd.DataFrame(columns=cols),
                 hide_index=True, column_config=cfg, key="rank_without")
