"""Catalog: browse the hardware and the cloud offers the planner searches (the engine catalog:
shipped data in data/hardware plus the calibration in data/calibration)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common as c
from hardware_catalog import KINDS, PRICING_MODELS

st.title("Hardware catalog")
cat = c.catalog()
st.caption(f"{len(cat.accelerators)} accelerators, {len(cat.systems)} systems, {len(cat.offers)} "
           f"offers from {len(cat.providers)} providers. Every row carries an as-of date and a "
           "source; see docs/catalog.md for the units and conventions.")

f1, f2, f3 = st.columns(3)
kinds = f1.multiselect("Kinds", list(KINDS), default=list(KINDS), key="cat_kinds", format_func=str.upper)
providers = f2.multiselect("Providers (empty = all)", list(cat.providers), key="cat_providers")
pricing = f3.multiselect("Pricing models (empty = all)", list(PRICING_MODELS), key="cat_pricing")

TABS = ("Accelerators", "Offers", "Systems", "Efficiency data", "Other prices")
# Only the open tab runs (on_change="rerun"): the others cost nothing until picked.
tab_acc, tab_off, tab_sys, tab_eff, tab_other = st.tabs(list(TABS), key="cat_tab", on_change="rerun")
FLOP_FORMATS = ("fp32", "tf32", "bf16", "fp16", "fp8")


def _accelerators() -> None:
    acc = cat.accelerators_frame()
    acc = acc[acc["kind"].isin(kinds)]
    # Figures in their units (GiB, TB/s, TFLOP/s); a value the catalog lacks reads "—".
    view = pd.DataFrame({
        "id": acc["id"], "kind": acc["kind"].str.upper(), "vendor": acc["vendor"], "name": acc["name"],
        "memory": acc["memory_bytes"], "memory bandwidth": acc["memory_bandwidth_bytes_per_s"],
        **{f"peak {f}": acc[f"peak_{f}_flops_per_s"] for f in FLOP_FORMATS
           if f"peak_{f}_flops_per_s" in acc},
        "TDP": acc["tdp_w"], "release year": acc["release_year"],
        "default system": acc["default_system"], "as of": acc["as_of"], "source": acc["source"],
    })
    formats = {"memory": c.gib, "memory bandwidth": c.tb_per_s,
               "release year": lambda y: c.MISSING if c.is_missing(y) else str(int(y)),
               "TDP": lambda w: c.MISSING if c.is_missing(w) else f"{c.count(w)} W",
               **{k: c.tflops for k in view.columns if k.startswith("peak ")}}
    st.dataframe(c.readable(view, formats), hide_index=True, key="cat_acc_table", height=560)


def _offers() -> None:
    off = cat.offers_frame()
    off = off[off["kind"].isin(kinds)]
    if providers:
        off = off[off["provider"].isin(providers)]
    if pricing:
        off = off[off["pricing_model"].isin(pricing)]
    money = {
        "usd_per_device_hour": st.column_config.NumberColumn("USD per device-hour", format="$%,.3f"),
        "usd_per_instance_hour": st.column_config.NumberColumn("USD per instance-hour", format="$%,.2f"),
        "usd_per_device_hour_low": st.column_config.NumberColumn(
            "sampled low (USD per device-hour)", format="$%,.3f",
            help="Spot: the cheapest zone or date under the row's sampling rule; empty = no range sampled"),
        "usd_per_device_hour_high": st.column_config.NumberColumn(
            "sampled high (USD per device-hour)", format="$%,.3f",
            help="Spot: the dearest zone or date under the row's sampling rule; empty = no range sampled"),
        "devices_per_instance": st.column_config.NumberColumn("devices per instance", format="%,d"),
    }
    st.dataframe(c.readable(off), hide_index=True, key="cat_offer_table", height=460, column_config=money)
    st.caption(f"{len(off):,} offers. The cheapest per accelerator and pricing model:")
    cheap = cat.cheapest_offers()
    cheap = cheap[cheap["accelerator"].isin(off["accelerator"])]
    if pricing:
        cheap = cheap[cheap["pricing_model"].isin(pricing)]
    st.dataframe(c.readable(cheap), hide_index=True, key="cat_cheapest_table", column_config=money)


def _kind_ids() -> set[str]:
    return set(cat.accelerators_frame().loc[lambda d: d["kind"].isin(kinds), "id"])


def _systems() -> None:
    sys_ = cat.systems_frame()
    sys_ = sys_[sys_["accelerator"].isin(_kind_ids())]
    view = sys_.drop(columns=["scaleup_bandwidth_bytes_per_s", "scaleout_bandwidth_bytes_per_s",
                              "scaleup_latency_s", "scaleout_latency_s", "host_memory_bytes"])
    view.insert(6, "scale-up bandwidth per device, one direction (GB/s)",
                sys_["scaleup_bandwidth_bytes_per_s"] / 1e9)
    view.insert(9, "scale-out bandwidth per device, one direction (GB/s)",
                sys_["scaleout_bandwidth_bytes_per_s"] / 1e9)
    view.insert(10, "scale-up latency (us)", sys_["scaleup_latency_s"] * 1e6)
    view.insert(11, "scale-out latency (us)", sys_["scaleout_latency_s"] * 1e6)
    view["host memory"] = sys_["host_memory_bytes"]
    st.dataframe(c.readable(view, {"host memory": c.gib}), hide_index=True, key="cat_sys_table")


def _efficiency() -> None:
    eff = cat.efficiency_frame()
    kind_ids = {f"kind:{k}" for k in kinds}
    eff = eff[eff["accelerator"].isin(_kind_ids()) | eff["accelerator"].isin(kind_ids)]
    st.dataframe(c.readable(eff), hide_index=True, key="cat_eff_table", column_config={
        "value": st.column_config.NumberColumn("value (fraction of peak)", format="%.3f")})
    st.caption("`kind:<kind>` rows are the defaults for parts without their own measurement.")


def _other() -> None:
    other = pd.DataFrame([p.model_dump() for p in cat.other_prices])
    if providers and not other.empty:
        other = other[other["provider"].isin(providers)]
    st.dataframe(c.readable(other), hide_index=True, key="cat_other_table")


for tab, draw in ((tab_acc, _accelerators), (tab_off, _offers), (tab_sys, _systems),
                  (tab_eff, _efficiency), (tab_other, _other)):
    if tab.open:
        with tab:
            draw()
