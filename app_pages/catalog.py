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

GIB, TB, TERA = 2**30, 1e12, 1e12

tab_acc, tab_off, tab_sys, tab_eff, tab_other = st.tabs(
    ["Accelerators", "Offers", "Systems", "Efficiency data", "Other prices"])

with tab_acc:
    acc = cat.accelerators_frame()
    acc = acc[acc["kind"].isin(kinds)]
    # Unit conversions for reading only (bytes -> GiB, bytes/s -> TB/s, FLOP/s -> TFLOP/s).
    view = pd.DataFrame({
        "id": acc["id"], "kind": acc["kind"].str.upper(), "vendor": acc["vendor"], "name": acc["name"],
        "memory (GiB)": acc["memory_bytes"] / GIB,
        "memory bandwidth (TB/s)": acc["memory_bandwidth_bytes_per_s"] / TB,
        **{f"peak {f} (TFLOP/s)": acc[f"peak_{f}_flops_per_s"] / TERA
           for f in ("fp32", "tf32", "bf16", "fp16", "fp8") if f"peak_{f}_flops_per_s" in acc},
        "TDP (W)": acc["tdp_w"], "release year": acc["release_year"],
        "default system": acc["default_system"], "as of": acc["as_of"], "source": acc["source"],
    })
    st.dataframe(view, hide_index=True, key="cat_acc_table", height=560,
                 column_config={k: st.column_config.NumberColumn(k, format="%.2f" if "TB/s" in k else "%.1f")
                                for k in view.columns if "(" in k and k != "TDP (W)"})

with tab_off:
    off = cat.offers_frame()
    off = off[off["kind"].isin(kinds)]
    if providers:
        off = off[off["provider"].isin(providers)]
    if pricing:
        off = off[off["pricing_model"].isin(pricing)]
    st.dataframe(off, hide_index=True, key="cat_offer_table", height=460, column_config={
        "usd_per_device_hour": st.column_config.NumberColumn("USD per device-hour", format="$%.3f"),
        "usd_per_instance_hour": st.column_config.NumberColumn("USD per instance-hour", format="$%.2f"),
        "devices_per_instance": st.column_config.NumberColumn("devices per instance", format="%d"),
    })
    st.caption(f"{len(off)} offers. The cheapest per accelerator and pricing model:")
    cheap = cat.cheapest_offers()
    cheap = cheap[cheap["accelerator"].isin(off["accelerator"])]
    if pricing:
        cheap = cheap[cheap["pricing_model"].isin(pricing)]
    st.dataframe(cheap, hide_index=True, key="cat_cheapest_table", column_config={
        "usd_per_device_hour": st.column_config.NumberColumn("USD per device-hour", format="$%.3f"),
        "usd_per_instance_hour": st.column_config.NumberColumn("USD per instance-hour", format="$%.2f"),
    })

with tab_sys:
    sys_ = cat.systems_frame()
    ids = set(cat.accelerators_frame().loc[lambda d: d["kind"].isin(kinds), "id"])
    sys_ = sys_[sys_["accelerator"].isin(ids)]
    view = sys_.drop(columns=["scaleup_bandwidth_bytes_per_s", "scaleout_bandwidth_bytes_per_s",
                              "scaleup_latency_s", "scaleout_latency_s", "host_memory_bytes"])
    view.insert(6, "scale-up bandwidth per device, one direction (GB/s)",
                sys_["scaleup_bandwidth_bytes_per_s"] / 1e9)
    view.insert(9, "scale-out bandwidth per device, one direction (GB/s)",
                sys_["scaleout_bandwidth_bytes_per_s"] / 1e9)
    view.insert(10, "scale-up latency (us)", sys_["scaleup_latency_s"] * 1e6)
    view.insert(11, "scale-out latency (us)", sys_["scaleout_latency_s"] * 1e6)
    st.dataframe(view, hide_index=True, key="cat_sys_table")

with tab_eff:
    eff = cat.efficiency_frame()
    kind_ids = {f"kind:{k}" for k in kinds}
    eff = eff[eff["accelerator"].isin(ids) | eff["accelerator"].isin(kind_ids)]
    st.dataframe(eff, hide_index=True, key="cat_eff_table", column_config={
        "value": st.column_config.NumberColumn("value (fraction of peak)", format="%.3f")})
    st.caption("`kind:<kind>` rows are the defaults for parts without their own measurement.")

with tab_other:
    other = pd.DataFrame([p.model_dump() for p in cat.other_prices])
    if providers and not other.empty:
        other = other[other["provider"].isin(providers)]
    st.dataframe(other, hide_index=True, key="cat_other_table")
