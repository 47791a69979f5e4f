"""The shipped hardware catalog: real values, consistency, coverage and queries."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hardware_catalog import (
    FORMAT_BITS,
    KINDS,
    NUMBER_FORMATS,
    PRICING_MODELS,
    CatalogError,
    default_catalog,
)
from hardware_catalog.models import PRICE_TOLERANCE_USD

GiB = 2**30

REQUIRED_IDS = [
    "v100-sxm2-32gb", "a100-sxm4-40gb", "a100-sxm4-80gb", "h100-sxm5-80gb", "h100-pcie-80gb", "h200-sxm-141gb",
    "h800-sxm5-80gb", "b200-sxm-180gb", "gb200-nvl72", "l40s-48gb", "l4-24gb", "a10g-24gb", "t4-16gb", "mi300x-192gb",
    "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "gaudi3", "trn1", "trn2", "alveo-u55c", "alveo-v80", "versal-vck5000",
]


@pytest.fixture(scope="module")
def cat():
    return default_catalog()


# ----------------------------------------------------------------------------- constants
def test_constants():
    assert NUMBER_FORMATS == ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")
    assert KINDS == ("gpu", "tpu", "fpga", "asic")
    assert PRICING_MODELS == ("on-demand", "spot", "commit-1y", "commit-3y", "capacity-block")
    assert FORMAT_BITS["tf32"] == 32 and FORMAT_BITS["bf16"] == 16 and FORMAT_BITS["int4"] == 4 and FORMAT_BITS["fp4"] == 4
    assert set(FORMAT_BITS) == set(NUMBER_FORMATS)


# ----------------------------------------------------------------------------- provenance
def test_every_row_has_source_and_as_of(cat):
    rows = [*cat.accelerators.values(), *cat.systems.values(), *cat.offers, *cat.efficiency, *cat.other_prices]
    assert len(rows) > 150
    for row in rows:
        assert row.source.strip(), row
        assert row.as_of.strip(), row


def test_required_ids_exist(cat):
    missing = [i for i in REQUIRED_IDS if i not in cat.accelerators]
    assert not missing


def test_extra_ids_for_parts_actually_sold(cat):
    # AWS p3 sells 16GB V100s, Azure NC A100 v4 and RunPod sell A100 PCIe, AWS F2 sells VU47P FPGAs
    for acc, offer in (("v100-sxm2-16gb", "p3.16xlarge"), ("a100-pcie-80gb", "Standard_NC24ads_A100_v4"), ("vu47p-f2", "f2.6xlarge"),
                       ("inf2", "inf2.48xlarge"), ("h100-nvl-94gb", "Standard_NC40ads_H100_v5")):
        assert any(o.offer == offer and o.accelerator == acc for o in cat.offers), (acc, offer)


# ----------------------------------------------------------------------------- dense, not sparse
def test_h100_dense_not_sparse(cat):
    h100 = cat.accelerator("h100-sxm5-80gb")
    assert h100.peak("bf16") == 989e12  # NVIDIA's headline 1979 is with 2:4 sparsity
    assert h100.peak("bf16") != 1979e12
    assert h100.peak("fp16") == 989e12
    assert h100.peak("fp8") == 1979e12
    assert h100.peak("int8") == 1979e12
    assert h100.peak("tf32") == 494.5e12
    assert h100.sparsity_pattern == "2:4" and h100.sparsity_speedup == 2.0
    assert h100.memory_bandwidth_bytes_per_s == 3.35e12
    assert h100.memory_bytes == 80 * GiB
    assert h100.tdp_w == 700


def test_h200_same_compute_more_memory(cat):
    h100, h200 = cat.accelerator("h100-sxm5-80gb"), cat.accelerator("h200-sxm-141gb")
    assert h200.peak("bf16") == 989e12
    assert h200.peak_flops_per_s == h100.peak_flops_per_s
    assert h200.memory_bandwidth_bytes_per_s == 4.8e12
    assert h200.memory_bytes == 141 * GiB  # clouds report 144384 MiB


@pytest.mark.parametrize("acc", ["a100-sxm4-40gb", "a100-sxm4-80gb"])
def test_a100(cat, acc):
    a = cat.accelerator(acc)
    assert a.peak("bf16") == 312e12
    assert a.peak("tf32") == 156e12
    assert a.peak("int8") == 624e12
    assert a.peak("fp8") is None  # no FP8 on Ampere


def test_a100_bandwidths(cat):
    assert cat.accelerator("a100-sxm4-40gb").memory_bandwidth_bytes_per_s == 1555e9
    assert cat.accelerator("a100-sxm4-80gb").memory_bandwidth_bytes_per_s == 2039e9


def test_b200_and_gb200(cat):
    b200 = cat.accelerator("b200-sxm-180gb")
    assert b200.peak("bf16") == 2.25e15
    assert b200.peak("fp8") == 4.5e15
    assert b200.peak("fp4") == 9e15
    assert b200.memory_bandwidth_bytes_per_s == 7.7e12  # current HGX B200 table (audit 2026-12; was 8 TB/s)
    assert b200.memory_bytes == 180 * GiB
    gb200 = cat.accelerator("gb200-nvl72")
    assert gb200.peak("bf16") == 2.5e15  # per GPU, not per superchip
    assert gb200.peak("fp4") == 10e15


def test_mi300x(cat):
    mi = cat.accelerator("mi300x-192gb")
    assert mi.peak("bf16") == pytest.approx(1307.4e12)
    assert mi.memory_bytes == 192 * GiB
    assert mi.memory_bandwidth_bytes_per_s == 5.3e12
    assert cat.accelerator("mi325x-256gb").peak("bf16") == pytest.approx(1307.4e12)


def test_l4_dense_is_half_of_marketing(cat):
    l4 = cat.accelerator("l4-24gb")
    assert l4.peak("bf16") == pytest.approx(121e12, rel=0.01)  # NVIDIA's 242 is with sparsity
    assert l4.peak("fp8") == pytest.approx(242.5e12, rel=0.01)


def test_l40s_dense(cat):
    assert cat.accelerator("l40s-48gb").peak("bf16") == 362e12  # not the sparse 733


def test_formats_not_accelerated_are_absent(cat):
    assert cat.accelerator("v100-sxm2-32gb").peak("bf16") is None
    assert cat.accelerator("t4-16gb").peak("bf16") is None
    assert cat.accelerator("t4-16gb").peak("fp16") == 65e12
    assert cat.accelerator("tpu-v5e").peak("fp16") is None
    assert cat.accelerator("tpu-v5e").peak("bf16") == 197e12
    assert cat.accelerator("tpu-v5p").peak("int8") == 918e12


def test_tpu_and_asic_figures(cat):
    assert cat.accelerator("tpu-v6e").peak("bf16") == 918e12
    assert cat.accelerator("tpu-v6e").memory_bandwidth_bytes_per_s == 1638e9
    assert cat.accelerator("tpu-v5e").memory_bandwidth_bytes_per_s == 819e9
    assert cat.accelerator("tpu-v4").peak("bf16") == 275e12
    assert cat.accelerator("gaudi3").peak("bf16") == 1835e12  # Intel Hot Chips 2024 (audit 2026-12; was 1677)
    assert cat.accelerator("trn2").peak("fp8") == 1299e12
    assert cat.accelerator("trn1").peak("bf16") == 190e12


def test_peaks_are_sane(cat):
    for a in cat.accelerators.values():
        for fmt, v in a.peak_flops_per_s.items():
            assert 1e11 <= v <= 2e16, (a.id, fmt, v)
        assert 1e9 <= a.memory_bytes <= 1e12, a.id
        assert 5e10 <= a.memory_bandwidth_bytes_per_s <= 2e13, a.id
        if a.peak("bf16") and a.peak("fp8"):
            assert a.peak("fp8") >= a.peak("bf16"), a.id


def test_unknown_format_raises(cat):
    with pytest.raises(ValueError):
        cat.accelerator("h100-sxm5-80gb").peak("fp12")


# ----------------------------------------------------------------------------- systems
def test_every_accelerator_has_a_default_system(cat):
    for acc in cat.accelerators:
        s = cat.default_system(acc)
        assert s.accelerator == acc
        assert s.scaleup_domain_devices >= 1


def test_default_systems_are_sensible(cat):
    h100 = cat.default_system("h100-sxm5-80gb")
    assert h100.devices_per_node == 8 and h100.scaleup_domain_devices == 8
    assert h100.scaleup_bandwidth_bytes_per_s == 450e9  # NVLink 4 "900 GB/s" is bidirectional
    assert h100.scaleout_bandwidth_bytes_per_s == 50e9  # 400 Gb/s NIC per GPU, one way
    nvl72 = cat.default_system("gb200-nvl72")
    assert nvl72.scaleup_domain_devices == 72 and nvl72.scaleup_bandwidth_bytes_per_s == 900e9
    assert cat.default_system("tpu-v5e").scaleup_domain_devices == 256
    assert cat.default_system("tpu-v5e").scaleup_bandwidth_bytes_per_s == 200e9  # GCP: 400 GBps bidirectional
    assert cat.default_system("a100-sxm4-80gb").scaleup_bandwidth_bytes_per_s == 300e9
    assert cat.default_system("mi300x-192gb").scaleup_bandwidth_bytes_per_s == 448e9
    assert cat.default_system("h800-sxm5-80gb").scaleup_bandwidth_bytes_per_s == 200e9
    pcie = cat.default_system("l4-24gb")
    assert "PCIe" in pcie.scaleup_fabric and pcie.scaleup_bandwidth_bytes_per_s == 32e9


def test_scaleup_never_exceeds_one_direction_nvlink5(cat):
    for s in cat.systems.values():
        assert s.scaleup_bandwidth_bytes_per_s <= 900e9, s.id
        assert s.scaleout_bandwidth_bytes_per_s <= 100e9, s.id
        assert 1e-7 <= s.scaleup_latency_s <= 1e-4 and 1e-7 <= s.scaleout_latency_s <= 1e-4, s.id


def test_system_lookup_and_errors(cat):
    assert cat.system("aws-p5-48xlarge").scaleout_bandwidth_bytes_per_s == 50e9  # 3200 Gbps / 8
    with pytest.raises(CatalogError, match="aws-p5-48xlarge"):
        cat.system("aws-p5-48xl")


# ----------------------------------------------------------------------------- offers
def test_offers_reference_known_accelerator_and_system(cat):
    for o in cat.offers:
        assert o.accelerator in cat.accelerators
        assert o.system in cat.systems
        assert cat.systems[o.system].accelerator == o.accelerator
        assert o.pricing_model in PRICING_MODELS


def test_per_device_price_is_instance_over_devices(cat):
    for o in cat.offers:
        assert abs(o.usd_per_device_hour - o.usd_per_instance_hour / o.devices_per_instance) <= PRICE_TOLERANCE_USD, o
        assert o.usd_per_device_hour > 0


def test_known_prices(cat):
    p5 = [o for o in cat.offers if o.key == ("AWS", "p5.48xlarge", "us-east-1", "on-demand")][0]
    assert p5.usd_per_instance_hour == 55.04 and p5.usd_per_device_hour == pytest.approx(6.88)
    v5p = [o for o in cat.offers if o.offer == "v5p-12288" and o.pricing_model == "on-demand"][0]
    assert v5p.devices_per_instance == 6144 and v5p.usd_per_device_hour == pytest.approx(4.2)
    # the smaller v5p slices are sold too, at the same per-chip rate (audit 2026-12: 64 chips must not bill 6144)
    v5p128 = [o for o in cat.offers if o.offer == "v5p-128" and o.pricing_model == "on-demand"][0]
    assert v5p128.devices_per_instance == 64 and v5p128.usd_per_instance_hour == pytest.approx(268.8)
    assert cat.system(v5p128.system).scaleup_domain_devices == 64


def test_offer_coverage(cat):
    providers = {o.provider for o in cat.offers}
    assert {"AWS", "GCP", "Azure"} <= providers
    assert len(providers & {"Lambda", "RunPod", "CoreWeave"}) >= 2
    models = {o.pricing_model for o in cat.offers}
    # commit-1y: the only one (CoreWeave's third-party 1.79/GPU) was removed by the 2026-12 audit; the model stays valid
    assert {"on-demand", "spot", "capacity-block"} <= models
    assert len(cat.by_kind("fpga")) >= 3
    # every accelerator in the brief that is sold in a cloud has at least one offer
    for acc in ("h100-sxm5-80gb", "h200-sxm-141gb", "a100-sxm4-40gb", "b200-sxm-180gb", "mi300x-192gb", "tpu-v5e", "tpu-v6e", "trn1", "trn2", "l4-24gb", "t4-16gb"):
        assert cat.offers_for(accelerator=acc), acc


def test_offers_for_filters(cat):
    spot = cat.offers_for(pricing_model="spot", provider="AWS")
    assert spot and all(o.pricing_model == "spot" and o.provider == "AWS" for o in spot)
    tpus = cat.offers_for(kind="tpu")
    assert tpus and all(cat.accelerators[o.accelerator].kind == "tpu" for o in tpus)
    both = cat.offers_for(accelerator=["h100-sxm5-80gb", "h200-sxm-141gb"], region="us-east-1")
    assert {o.accelerator for o in both} == {"h100-sxm5-80gb", "h200-sxm-141gb"}
    with pytest.raises(CatalogError, match="pricing model"):
        cat.offers_for(pricing_model="reserved")


def test_cheapest_offers_equal_brute_force(cat):
    df = cat.cheapest_offers()
    brute: dict[tuple[str, str], float] = {}
    for o in cat.offers:
        k = (o.accelerator, o.pricing_model)
        brute[k] = min(brute.get(k, math.inf), o.usd_per_device_hour)
    assert len(df) == len(brute)
    for row in df.itertuples():
        assert row.usd_per_device_hour == brute[(row.accelerator, row.pricing_model)]
        match = [o for o in cat.offers if (o.provider, o.offer, o.region, o.pricing_model) == (row.provider, row.offer, row.region, row.pricing_model)]
        assert match and match[0].accelerator == row.accelerator
    assert {"provider", "offer", "region", "as_of", "source"} <= set(df.columns)


def test_offers_codes_round_trip(cat):
    df = cat.offers_codes()
    for col in ("offer_code", "accelerator_code", "system_code", "provider_code", "pricing_code", "devices_per_instance"):
        assert np.issubdtype(df[col].dtype, np.integer), col
    assert df.attrs["accelerator_ids"] == list(cat.accelerator_ids)
    for row, offer in zip(df.itertuples(), cat.offers):
        assert cat.offers[row.offer_code] == offer
        assert cat.accelerator_ids[row.accelerator_code] == offer.accelerator
        assert cat.system_ids[row.system_code] == offer.system
        assert cat.providers[row.provider_code] == offer.provider
        assert PRICING_MODELS[row.pricing_code] == offer.pricing_model
        assert row.usd_per_device_hour == offer.usd_per_device_hour
    # gather per-accelerator arrays with np.take, as the engine does
    arrays = cat.accelerator_arrays()
    bf16 = np.take(arrays["peak_bf16_flops_per_s"], df["accelerator_code"].to_numpy())
    h100 = df["accelerator_code"].to_numpy() == cat.accelerator_ids.index("h100-sxm5-80gb")
    assert np.all(bf16[h100] == 989e12)
    sys_arrays = cat.system_arrays()
    domain = np.take(sys_arrays["scaleup_domain_devices"], df["system_code"].to_numpy())
    assert domain.shape == (len(cat.offers),)
    assert np.all(np.take(sys_arrays["accelerator_code"], df["system_code"].to_numpy()) == df["accelerator_code"].to_numpy())


def test_accelerator_arrays(cat):
    arr = cat.accelerator_arrays()
    n = len(cat.accelerator_ids)
    for fmt in NUMBER_FORMATS:
        assert arr[f"peak_{fmt}_flops_per_s"].shape == (n,)
    for key in ("memory_bytes", "memory_bandwidth_bytes_per_s", "tdp_w"):
        assert arr[key].dtype == np.float64 and arr[key].shape == (n,)
    v100 = cat.accelerator_ids.index("v100-sxm2-32gb")
    assert math.isnan(arr["peak_bf16_flops_per_s"][v100])
    assert arr["peak_fp16_flops_per_s"][v100] == 125e12
    assert not np.isnan(arr["memory_bytes"]).any()
    assert cat.system_ids[arr["default_system_code"][cat.accelerator_ids.index("gb200-nvl72")]] == "gb200-nvl72-rack"


def test_frames_have_unit_columns(cat):
    acc = cat.accelerators_frame()
    assert list(acc.columns[:2]) == ["id", "kind"]
    for col in ("memory_bytes", "memory_bandwidth_bytes_per_s", "peak_bf16_flops_per_s", "peak_fp4_flops_per_s", "tdp_w",
                "onchip_memory_bytes", "sparsity_pattern", "sparsity_speedup", "release_year", "purchase_price_usd", "as_of", "source"):
        assert col in acc.columns, col
    assert acc.set_index("id").loc["h100-sxm5-80gb", "peak_bf16_flops_per_s"] == 989e12
    off = cat.offers_frame()
    for col in ("provider", "offer", "accelerator", "devices_per_instance", "region", "pricing_model", "usd_per_instance_hour", "usd_per_device_hour", "as_of", "source"):
        assert col in off.columns, col
    assert len(off) == len(cat.offers)


# ----------------------------------------------------------------------------- queries
def test_by_kind(cat):
    assert {a.id for a in cat.by_kind("tpu")} == {"tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e"}
    assert {"gaudi3", "trn1", "trn2", "inf2"} <= {a.id for a in cat.by_kind("asic")}
    assert {"alveo-u55c", "alveo-v80", "versal-vck5000"} <= {a.id for a in cat.by_kind("fpga")}
    assert all(a.kind == "gpu" for a in cat.by_kind("gpu"))
    with pytest.raises(CatalogError, match="gpu, tpu, fpga, asic"):
        cat.by_kind("npu")


def test_supporting(cat):
    fp8 = {a.id for a in cat.supporting("fp8")}
    assert "h100-sxm5-80gb" in fp8 and "b200-sxm-180gb" in fp8
    assert "a100-sxm4-80gb" not in fp8 and "v100-sxm2-32gb" not in fp8
    fp4 = {a.id for a in cat.supporting("fp4")}
    assert fp4 == {"b200-sxm-180gb", "gb200-nvl72"}
    with pytest.raises(CatalogError):
        cat.supporting("fp7")


def test_unknown_accelerator_lists_close_matches(cat):
    with pytest.raises(CatalogError) as exc:
        cat.accelerator("h100")
    assert "h100-sxm5-80gb" in str(exc.value)
    assert isinstance(exc.value, ValueError)


# ----------------------------------------------------------------------------- efficiency
def test_efficiency_values_in_range(cat):
    for p in cat.efficiency:
        assert 0 < p.value <= 1, p


def test_efficiency_reference_points(cat):
    mm = cat.efficiency_value("h100-sxm5-80gb", "matmul", "bf16")
    assert mm.accelerator == "h100-sxm5-80gb" and mm.size == 8192
    assert mm.value == pytest.approx(798 / 989, abs=1e-3)
    assert cat.efficiency_value("h100-sxm5-80gb", "memory_bandwidth").value == pytest.approx(3.0 / 3.35, abs=1e-3)
    assert cat.efficiency_value("h200-sxm-141gb", "matmul", "bf16").value == pytest.approx(788 / 989, abs=1e-3)
    assert cat.efficiency_value("h200-sxm-141gb", "memory_bandwidth").value == pytest.approx(4.3 / 4.8, abs=1e-3)
    assert cat.efficiency_value("mi300x-192gb", "matmul", "bf16").value == pytest.approx(0.511, abs=2e-3)
    assert cat.efficiency_value("a100-sxm4-80gb", "matmul", "bf16").value == pytest.approx(0.869, abs=2e-3)


def test_efficiency_fallbacks_are_data_rows(cat):
    own_fp8 = cat.efficiency_value("h100-sxm5-80gb", "matmul", "fp8")
    assert own_fp8.precision == "fp8" and own_fp8.value < cat.efficiency_value("h100-sxm5-80gb", "matmul", "bf16").value
    # B200 has no fp8 row: its own bf16 row is used before any kind default
    assert cat.efficiency_value("b200-sxm-180gb", "matmul", "fp8").accelerator == "b200-sxm-180gb"
    # L4 has no matmul row at all: the GPU kind default, which is a row of efficiency.csv
    l4 = cat.efficiency_value("l4-24gb", "matmul", "bf16")
    assert l4.accelerator == "kind:gpu" and l4 in cat.efficiency and "assumption" in l4.notes
    assert cat.efficiency_value("tpu-v5p", "matmul", "bf16").accelerator == "kind:tpu"
    assert cat.efficiency_value("alveo-u55c", "matmul", "int8").accelerator == "kind:fpga"
    # every kind has a default for every quantity except attention
    for kind in KINDS:
        for q in ("memory_bandwidth", "scaleup_allreduce", "scaleup_allgather", "scaleup_alltoall", "scaleout_allreduce", "scaleout_alltoall"):
            acc = cat.by_kind(kind)[0].id
            assert cat.efficiency_value(acc, q) is not None
    with pytest.raises(CatalogError, match="attention"):
        cat.efficiency_value("l4-24gb", "attention", "bf16")


def test_with_overrides_returns_new_catalog(cat):
    new = cat.override_efficiency("h100-sxm5-80gb", "matmul", 0.7, precision="bf16")
    assert new.efficiency_value("h100-sxm5-80gb", "matmul", "bf16").value == 0.7
    assert cat.efficiency_value("h100-sxm5-80gb", "matmul", "bf16").value == pytest.approx(0.807, abs=1e-3)
    priced = cat.override_price("AWS", "p5.48xlarge", "us-east-1", "on-demand", usd_per_device_hour=4.0)
    o = [x for x in priced.offers if x.key == ("AWS", "p5.48xlarge", "us-east-1", "on-demand")][0]
    assert o.usd_per_instance_hour == pytest.approx(32.0) and len(priced.offers) == len(cat.offers)
    with pytest.raises(CatalogError, match="value"):
        cat.override_efficiency("h100-sxm5-80gb", "matmul", 1.2, precision="bf16")
    added = cat.with_overrides(
        offers=[{"provider": "MyCloud", "offer": "8xH100", "accelerator": "h100-sxm5-80gb", "system": "hgx-h100-8", "devices_per_instance": 8,
                 "region": "eu", "pricing_model": "commit-3y", "usd_per_instance_hour": 12.0, "usd_per_device_hour": 1.5,
                 "as_of": "2026-01-01", "source": "negotiated quote"}]
    )
    assert len(added.offers) == len(cat.offers) + 1
    cheapest = added.cheapest_offers().set_index(["accelerator", "pricing_model"])
    assert cheapest.loc[("h100-sxm5-80gb", "commit-3y"), "provider"] == "MyCloud"


def test_other_prices(cat):
    items = {p.item for p in cat.other_prices}
    assert {"object_storage", "egress", "electricity", "pue"} <= items
    for p in cat.other_prices:
        assert p.value > 0
    s3 = cat.other_price("object_storage", provider="AWS")[0]
    assert s3.unit == "USD/GB-month" and s3.value == 0.023
    assert all(p.value >= 1 for p in cat.other_price("pue"))
    assert all(0.01 < p.value < 0.5 for p in cat.other_price("electricity"))


def test_catalog_is_immutable(cat):
    with pytest.raises(TypeError):
        cat.accelerators["x"] = cat.accelerator("h100-sxm5-80gb")  # type: ignore[index]
    with pytest.raises(Exception):
        cat.accelerator("h100-sxm5-80gb").tdp_w = 1  # frozen pydantic model


def test_default_catalog_is_cached():
    assert default_catalog() is default_catalog()


def test_frames_are_dataframes(cat):
    assert isinstance(cat.cheapest_offers(), pd.DataFrame)
    assert isinstance(cat.systems_frame(), pd.DataFrame) and len(cat.systems_frame()) == len(cat.systems)
    assert isinstance(cat.efficiency_frame(), pd.DataFrame) and len(cat.efficiency_frame()) == len(cat.efficiency)


def test_attention_precision_falls_back_to_bf16_row(cat):
    row = {"accelerator": "kind:gpu", "precision": "bf16", "quantity": "attention", "value": 0.6, "as_of": "2023-07-17", "source": "FlashAttention-2 paper"}
    new = cat.with_overrides(efficiency=[row])
    point = new.efficiency_value("h100-sxm5-80gb", "attention", "fp8")
    assert point.accelerator == "kind:gpu" and point.precision == "bf16" and point.value == 0.6
