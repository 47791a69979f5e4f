"""Spot ranges, preemption risk and committed prices: the offer schema, the shipped rows, and the
columns they put in every plan report (issue 14, parts of issue 13).

Worked examples (by hand):

* AWS p5.48xlarge us-east-1 spot: the snapshot's AZs quote 17.6289 .. 25.75 USD per instance-hour
  for 8 GPUs, so the stored price is the minimum 17.6289 / 8 = 2.20361 and the range is
  2.20361 .. 25.75 / 8 = 3.21875 USD per device-hour.
* A 1-year commitment of 2 instances at 10 USD per instance-hour owes 2 x 10 x 8,760 = 175,200 USD
  for the term; 3 years of one 8-GPU instance at 2 USD per device-hour owe 16 x 26,280 = 420,480 USD.
"""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pandas as pd
import pytest

from hardware_catalog import CatalogError, default_catalog, load_catalog
from hardware_catalog.loader import TABLES
from hardware_catalog.models import COMMIT_TERM_HOURS

from costmodel.tables.offers import PRICE_REPORT_COLUMNS, RISK_NOT_PUBLISHED, price_report_columns

OFF_COLS = list(TABLES["offers"].column_names)
BASE = {"provider": "Me", "offer": "box", "accelerator": "h100-sxm5-80gb", "system": "hgx-h100-8",
        "devices_per_instance": "8", "region": "r1", "pricing_model": "spot", "usd_per_instance_hour": "16",
        "usd_per_device_hour": "2", "as_of": "2026-12-01", "source": "my quote"}


@pytest.fixture(scope="module")
def cat():
    return default_catalog()


def _offer(cat, *key):
    return next(o for o in cat.offers if o.key == key)


def _load(tmp_path, **cells):
    path = tmp_path / "mine.csv"
    row = {**BASE, **cells}
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        w.writerow(row)
    return load_catalog([path]), path


# ------------------------------------------------------------------------------ schema

def test_range_and_risk_load(tmp_path):
    cat, _ = _load(tmp_path, usd_per_device_hour_low="1.5", usd_per_device_hour_high="2.5",
                   price_sampling="median of 3 zones, 2026-11-01..07", preemption_risk="<5%")
    o = _offer(cat, "Me", "box", "r1", "spot")
    assert (o.usd_per_device_hour_low, o.usd_per_device_hour, o.usd_per_device_hour_high) == (1.5, 2.0, 2.5)
    assert o.preemption_risk == "<5%" and o.commitment_term_hours == 0.0


@pytest.mark.parametrize("cells, column, words", [
    ({"usd_per_device_hour_low": "2.1", "usd_per_device_hour_high": "3"}, "usd_per_device_hour_low", "above"),
    ({"usd_per_device_hour_low": "1", "usd_per_device_hour_high": "1.9"}, "usd_per_device_hour_high", "below"),
    ({"usd_per_device_hour_low": "1"}, "usd_per_device_hour_low", "give both"),
    ({"usd_per_device_hour_low": "0", "usd_per_device_hour_high": "3"}, "usd_per_device_hour_low", "greater than 0"),
    ({"usd_per_device_hour_low": "-1", "usd_per_device_hour_high": "3"}, "usd_per_device_hour_low", "greater than 0"),
    ({"usd_per_device_hour_low": "nan", "usd_per_device_hour_high": "3"}, "usd_per_device_hour_low", "finite"),
    ({"usd_per_device_hour_low": "1", "usd_per_device_hour_high": "inf"}, "usd_per_device_hour_high", "finite"),
    ({"usd_per_device_hour_low": "1", "usd_per_device_hour_high": "2,5"}, "usd_per_device_hour_high", "2.5"),
    ({"pricing_model": "on-demand", "preemption_risk": "5-10%"}, "preemption_risk", "only for spot"),
])
def test_bad_range_or_risk_names_line_and_column(tmp_path, cells, column, words):
    with pytest.raises(CatalogError) as exc:
        _load(tmp_path, **cells)
    msg = str(exc.value)
    assert "mine.csv line 2" in msg and f"field '{column}'" in msg and words in msg, msg


def test_commitment_terms_are_aws_years():
    # AWS: a 1-year term is 31,536,000 s and a 3-year term 94,608,000 s
    assert COMMIT_TERM_HOURS == {"commit-1y": 31_536_000 / 3600, "commit-3y": 94_608_000 / 3600}


def test_override_drops_the_sampled_range(cat):
    o = cat.override_price("AWS", "p5.48xlarge", "us-east-1", "spot", usd_per_device_hour=3.0)
    row = _offer(o, "AWS", "p5.48xlarge", "us-east-1", "spot")
    assert row.usd_per_device_hour_low is None and row.usd_per_device_hour_high is None
    assert row.price_sampling == "user override" and row.preemption_risk  # still a spot offer


# ------------------------------------------------------------------------------ shipped rows

def test_every_shipped_spot_row_states_sampling_and_risk(cat):
    spot = [o for o in cat.offers if o.pricing_model == "spot"]
    assert len(spot) >= 50
    for o in spot:
        assert o.price_sampling.strip(), o.key
        assert o.preemption_risk.strip(), o.key
        assert re.search(r"\d{4}", o.price_sampling + o.as_of), o.key  # which snapshot or date
    for o in cat.offers:
        if o.pricing_model != "spot":
            assert not o.preemption_risk, o.key


def test_shipped_ranges_hold_the_stored_price(cat):
    ranged = [o for o in cat.offers if o.usd_per_device_hour_low is not None]
    assert len(ranged) >= 12
    for o in ranged:
        assert 0 < o.usd_per_device_hour_low <= o.usd_per_device_hour <= o.usd_per_device_hour_high < math.inf


def test_p5_spot_range_worked_example(cat):
    o = _offer(cat, "AWS", "p5.48xlarge", "us-east-1", "spot")
    assert o.usd_per_device_hour == pytest.approx(17.6289 / 8, abs=1e-5)
    assert o.usd_per_device_hour_low == o.usd_per_device_hour
    assert o.usd_per_device_hour_high == pytest.approx(25.75 / 8)
    assert "2-minute notice" in o.preemption_risk and "Spot Instance Advisor" in o.preemption_risk


def test_provider_risk_statements(cat):
    by_provider = {o.provider: o.preemption_risk for o in cat.offers if o.pricing_model == "spot"}
    assert "no SLA" in by_provider["GCP"] and "at any time" in by_provider["GCP"]
    assert "30-second notice" in by_provider["Azure"] and "no SLA" in by_provider["Azure"]
    assert by_provider["CoreWeave"].startswith("not published")


def test_first_party_mi300x_offer(cat):
    o = _offer(cat, "DigitalOcean", "gpu-mi300x8-1536gb", "global", "on-demand")
    assert (o.accelerator, o.devices_per_instance, o.usd_per_instance_hour) == ("mi300x-192gb", 8, 15.92)
    assert o.usd_per_device_hour == pytest.approx(1.99) and o.price_quality == "first-party"
    assert "docs.digitalocean.com" in o.source and "28 May 2026" in o.source and o.as_of == "2026-05-28"


def test_gcp_a3_ultra_offers(cat):
    od = _offer(cat, "GCP", "a3-ultragpu-8g", "us-central1", "on-demand")
    spot = _offer(cat, "GCP", "a3-ultragpu-8g", "us-central1", "spot")
    assert od.accelerator == "h200-sxm-141gb" and od.usd_per_instance_hour == pytest.approx(8 * 10.4365)
    assert od.price_quality == "third-party"  # no first-party page was found
    assert (spot.usd_per_device_hour_low, spot.usd_per_device_hour_high) == (5.6357, 6.2607)


# ------------------------------------------------------------------------------ report columns

def _frame(**cols):
    base = {"as_of": ["2026-12-01"], "source": ["s"], "price_quality": ["user"], "usd_per_instance_hour": [10.0],
            "pricing_model": ["on-demand"], "preemption_risk": [""], "usd_per_device_hour_low": [None],
            "usd_per_device_hour_high": [None], "price_sampling": [""]}
    return pd.DataFrame({**base, **{k: [v] for k, v in cols.items()}})


def test_price_columns_of_a_commitment():
    one = price_report_columns(_frame(pricing_model="commit-1y"), np.array([2]))
    assert one["commitment_term_hours"][0] == 8760.0
    assert one["commitment_total_usd"][0] == pytest.approx(175_200.0)
    three = price_report_columns(_frame(pricing_model="commit-3y", usd_per_instance_hour=16.0), np.array([1]))
    assert three["commitment_total_usd"][0] == pytest.approx(420_480.0)
    assert one["preemption_risk"][0] == ""


def test_price_columns_of_spot_and_on_demand():
    spot = price_report_columns(_frame(pricing_model="spot", usd_per_device_hour_low=1.0,
                                       usd_per_device_hour_high=2.0), np.array([3]))
    assert spot["preemption_risk"][0] == RISK_NOT_PUBLISHED  # a spot row that states nothing
    assert (spot["usd_per_device_hour_low"][0], spot["usd_per_device_hour_high"][0]) == (1.0, 2.0)
    assert spot["commitment_total_usd"][0] == 0.0
    od = price_report_columns(_frame(), np.array([3]))
    assert od["preemption_risk"][0] == "" and np.isnan(od["usd_per_device_hour_low"][0])
    assert set(spot) == set(PRICE_REPORT_COLUMNS)


def test_plan_report_carries_range_and_risk(cat):
    from costmodel import Constraints, Job, Scenario, SearchSpace, plan
    from costmodel.jobs.serve import PLAN_COLUMNS as SERVE_COLUMNS
    from costmodel.jobs.train import PLAN_COLUMNS

    for cols in (PLAN_COLUMNS, SERVE_COLUMNS):
        assert set(PRICE_REPORT_COLUMNS) <= set(cols)
    sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e10, seq_len=4096),
                  constraints=Constraints(pricing_models=["spot"], providers=["AWS"]),
                  search=SearchSpace(accelerators=["h100-sxm5-80gb"], device_counts=[8, 16]))
    report = plan(sc, top=10).report
    assert len(report) and set(report["pricing_model"]) == {"spot"}
    for _, row in report.iterrows():
        o = _offer(cat, row["provider"], row["offer"], row["region"], "spot")
        assert row["preemption_risk"] == o.preemption_risk and row["commitment_total_usd"] == 0.0
        assert row["usd_per_device_hour_low"] <= row["usd_per_device_hour"] <= row["usd_per_device_hour_high"]


def test_ui_caveats_for_spot_and_commitment():
    from app_pages.common import price_caveats

    spot = {"preemption_risk": "evicted with 30-second notice", "usd_per_device_hour": 2.0,
            "usd_per_device_hour_low": 1.5, "usd_per_device_hour_high": 2.5, "price_sampling": "3 zones, 2026-11-01",
            "commitment_term_hours": 0.0}
    (line,) = price_caveats(spot)
    assert "$1.50–$2.50" in line and "30-second notice" in line and "3 zones" in line
    commit = {"preemption_risk": "", "commitment_term_hours": 8760.0, "commitment_total_usd": 175_200.0, "instances": 2}
    (line,) = price_caveats(commit)
    assert "1-year term" in line and "$175,200" in line and "8,760 h" in line
    assert price_caveats({"preemption_risk": "", "commitment_term_hours": 0.0}) == []
