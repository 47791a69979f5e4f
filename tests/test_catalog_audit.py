"""The shipped offers against the 2026-12 catalog audit, and ``costmodel catalog check``.

The audit (``catalog_audit_2026-12.md``) checked the offers against provider price pages; where it
found a catalog price wrong, the catalog was corrected to the provider's figure it cites. The
table below holds those provider figures (per device-hour, USD), each with the page it was read
from and the date; a shipped price may differ from them by at most ``TOLERANCE``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from hardware_catalog import cli, default_catalog, load_catalog
from hardware_catalog.check import as_of_date, check_catalog
from hardware_catalog.loader import TABLES
from hardware_catalog.models import PRICE_QUALITIES

TOLERANCE = 0.01
"""Relative: a shipped per-device price may differ from the audit's provider figure by at most 1 %."""

# (provider, offer, region, pricing_model) -> (USD per device-hour, source, date read)
AUDIT_PROVIDER_PRICES: dict[tuple[str, str, str, str], tuple[float, str, str]] = {
    # corrected by the audit (verdict "wrong")
    ("CoreWeave", "HGX H100 (8x H100 SXM)", "global", "on-demand"): (49.24 / 8, "coreweave.com/pricing via api-evangelist/coreweave", "2026-09-20"),
    ("GCP", "a3-highgpu-1g", "us-central1", "on-demand"): (10.9791, "GCP billing catalog via tgarg01/silybench-data gpu_prices.csv", "2026-09-26"),
    ("AWS", "p5.48xlarge", "us-east-2", "capacity-block"): (3.93, "AWS Capacity Blocks page via cloud_prices.json", "2026-04-28"),
    ("Azure", "Standard_NC80adis_H100_v5", "eastus", "on-demand"): (17.64 / 2, "Azure retail prices API via datareceipts hyperscalers.json", "2026-11-09"),
    ("RunPod", "4x_H100-SXM_SECURE", "global", "on-demand"): (3.99, "runpod.io/pricing via datareceipts vendors.json", "2026-11-09"),
    ("RunPod", "1x_A100-80GB_SECURE", "global", "on-demand"): (1.79, "runpod.io/pricing via datareceipts vendors.json", "2026-11-09"),
    ("GCP", "v5p-128", "us-central1", "on-demand"): (4.20, "GCP billing catalog via skypilot-catalog v8 (per chip-hour, any slice)", "<=2026-11-22"),
    # gaps the audit filled from CoreWeave's page
    ("CoreWeave", "GB200 NVL72 (4 GPUs)", "north-america", "on-demand"): (42.00 / 4, "coreweave.com/pricing via api-evangelist/coreweave", "2026-09-20"),
    ("CoreWeave", "HGX B200 (8x B200)", "global", "on-demand"): (68.80 / 8, "coreweave.com/pricing via api-evangelist/coreweave", "2026-09-20"),
    ("CoreWeave", "HGX H200 (8x H200 SXM)", "global", "on-demand"): (50.44 / 8, "coreweave.com/pricing via api-evangelist/coreweave", "2026-09-20"),
    # confirmed by the audit (verdict "correct")
    ("AWS", "p5.48xlarge", "us-east-1", "on-demand"): (6.88, "AWS price API via datareceipts hyperscalers.json", "2026-11-09"),
    ("AWS", "p4d.24xlarge", "us-east-1", "on-demand"): (21.957642 / 8, "AWS price API via datareceipts hyperscalers.json", "2026-11-09"),
    ("AWS", "p4de.24xlarge", "us-east-1", "on-demand"): (27.44705 / 8, "AWS price API via datareceipts hyperscalers.json", "2026-11-09"),
    ("AWS", "p5en.48xlarge", "us-east-1", "on-demand"): (7.91, "cloud_prices.json", "2026-04-27"),
    ("AWS", "p6-b200.48xlarge", "us-east-1", "on-demand"): (14.24, "cloud_prices.json", "2026-04-29"),
    ("GCP", "a3-highgpu-8g", "us-east4", "on-demand"): (10.98, "GCP billing catalog via silybench / cloud_prices.json", "2026-04-07"),
    ("Azure", "Standard_ND96isr_H100_v5", "eastus", "on-demand"): (12.29, "cloud_prices.json", "2026-04-28"),
    ("Azure", "Standard_NC40ads_H100_v5", "eastus", "on-demand"): (6.98, "Azure retail prices API via datareceipts", "2026-11-09"),
    ("Azure", "Standard_NC24ads_A100_v4", "eastus", "on-demand"): (3.673, "Azure retail prices API via datareceipts", "2026-11-09"),
    ("Lambda", "gpu_8x_h100_sxm5", "global", "on-demand"): (3.99, "lambda.ai/instances via api-evangelist/lambda-labs", "2026-09-20"),
    ("Lambda", "gpu_2x_h100_sxm5", "global", "on-demand"): (4.19, "lambda.ai/instances via api-evangelist/lambda-labs", "2026-09-20"),
    ("Lambda", "gpu_4x_h100_sxm5", "global", "on-demand"): (4.09, "lambda.ai/instances via api-evangelist/lambda-labs", "2026-09-20"),
    ("Lambda", "gpu_8x_b200_sxm6", "global", "on-demand"): (6.69, "lambda.ai/instances via api-evangelist/lambda-labs", "2026-09-20"),
    ("Lambda", "gpu_1x_b200_sxm6", "global", "on-demand"): (6.99, "lambda.ai/instances via api-evangelist/lambda-labs", "2026-09-20"),
    ("Lambda", "gpu_8x_a100", "global", "on-demand"): (1.99, "lambda.ai/instances via api-evangelist/lambda-labs", "2026-09-20"),
    ("RunPod", "8x_H200-SXM_SECURE", "global", "on-demand"): (4.59, "runpod.io/pricing via api-evangelist", "2026-10-07"),
    ("RunPod", "8x_B200_SECURE", "global", "on-demand"): (6.79, "runpod.io/pricing via api-evangelist", "2026-10-07"),
    ("RunPod", "1x_H100_SECURE", "global", "on-demand"): (2.89, "runpod.io/pricing via datareceipts vendors.json", "2026-11-09"),
    ("RunPod", "2x_H100-NVL_SECURE", "global", "on-demand"): (3.19, "runpod.io/pricing via datareceipts vendors.json", "2026-11-09"),
}

# offers the audit found wrong and that were removed rather than corrected (no provider figure exists)
REMOVED = [("CoreWeave", "HGX H100 (8x H100 SXM)", "global", "commit-1y")]

# a source must name a page (a host with a dot and a path, or a URL) or a repository path (owner/repo path)
_PAGE = re.compile(r"(https?://\S+|\b[\w.-]+\.[a-z]{2,}(/[\w.~%+-]*)+)", re.I)
_REPO_PATH = re.compile(r"\b[\w.-]+/[\w.-]+\s+[\w./-]+\.(csv|json|ya?ml|md|rst|txt|html)\b", re.I)


@pytest.fixture(scope="module")
def cat():
    return default_catalog()


def test_every_offer_source_names_a_page_or_repo_path(cat):
    for o in cat.offers:
        assert _PAGE.search(o.source) or _REPO_PATH.search(o.source), (o.key, o.source)


def test_every_offer_as_of_is_a_date(cat):
    today = dt.date(2026, 12, 1)
    for o in cat.offers:
        d = as_of_date(o.as_of)
        assert dt.date(2015, 1, 1) <= d <= today + dt.timedelta(days=1), (o.key, o.as_of)


def test_every_offer_has_a_price_quality(cat):
    assert PRICE_QUALITIES == ("first-party", "third-party", "user")
    for o in cat.offers:
        assert o.price_quality in ("first-party", "third-party"), o.key  # nothing shipped is a user price
    frame = cat.offers_frame()
    assert "price_quality" in frame.columns
    assert set(frame["price_quality"]) <= {"first-party", "third-party"}


@pytest.mark.parametrize("key", sorted(AUDIT_PROVIDER_PRICES))
def test_price_matches_audit_provider_figure(cat, key):
    value, source, read = AUDIT_PROVIDER_PRICES[key]
    assert source and read
    offers = [o for o in cat.offers if o.key == key]
    assert offers, f"offer {key} is missing"
    got = offers[0].usd_per_device_hour
    assert abs(got - value) <= TOLERANCE * value, f"{key}: catalog {got} vs audit {value} ({source}, {read})"


def test_removed_offers_stay_removed(cat):
    keys = {o.key for o in cat.offers}
    for key in REMOVED:
        assert key not in keys


def test_tpu_slices_bill_the_slice_not_the_pod(cat):
    """64 v5p chips: a 64-chip slice exists, so nothing forces 6144 chips (the audit's $25.8k/h)."""
    v5p = [o for o in cat.offers if o.accelerator == "tpu-v5p" and o.pricing_model == "on-demand"]
    fits = [o for o in v5p if o.devices_per_instance >= 64]
    best = min(fits, key=lambda o: o.usd_per_instance_hour)
    assert best.devices_per_instance == 64 and best.usd_per_instance_hour == pytest.approx(268.8)
    for acc in ("tpu-v5e", "tpu-v6e", "tpu-v5p"):
        for o in cat.offers_for(accelerator=acc):
            assert cat.system(o.system).scaleup_domain_devices == o.devices_per_instance, o.key


def test_corrected_accelerator_figures(cat):
    nvl = cat.accelerator("h100-nvl-94gb")
    assert nvl.peak("bf16") == pytest.approx(835.5e12) and nvl.peak("fp8") == pytest.approx(1670.5e12)
    assert cat.accelerator("gaudi3").peak("fp8") == pytest.approx(1835e12)
    assert cat.accelerator("tpu-v5p").peak("fp8") == pytest.approx(459e12)
    b200 = cat.accelerator("b200-sxm-180gb")
    assert (b200.peak("tf32"), b200.peak("fp32"), b200.peak("fp64")) == (1100e12, 75e12, 37e12)
    assert cat.accelerator("gb200-nvl72").peak("fp64") == 40e12
    assert cat.accelerator("a100-sxm4-80gb").peak("int4") == 1248e12
    assert cat.offers_for(accelerator="gb200-nvl72"), "GB200 must have an offer (audit gap)"


# ----------------------------------------------------------------------------- catalog check


def _write(path: Path, table: str, rows: list[dict], cols: list[str] | None = None) -> Path:
    cols = cols or list(TABLES[table].column_names)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    return path


def _tmp_catalog(tmp_path: Path) -> list[str]:
    acc = {"name": "Part", "vendor": "V", "kind": "gpu", "memory": "80 GiB", "memory_bandwidth": "2 TB/s", "peak_bf16": "100 TFLOP/s",
           "as_of": "2026-11-01", "source": "example.com/datasheet"}
    accs = _write(tmp_path / "acc.csv", "accelerators", [dict(acc, id="fresh-gpu"), dict(acc, id="old-gpu", as_of="<=2024-01-15"), dict(acc, id="lonely-gpu")])
    sys_ = {"devices_per_node": "8", "scaleup_fabric": "NVLink", "scaleup_domain_devices": "8", "scaleup_bandwidth_per_device_one_way": "450 GB/s",
            "scaleup_latency": "2 us", "scaleout_fabric": "IB", "scaleout_bandwidth_per_device_one_way": "400 Gb/s", "scaleout_latency": "5 us",
            "as_of": "2026-11-01", "source": "example.com/system"}
    syss = _write(tmp_path / "sys.csv", "systems", [dict(sys_, id=f"{a}-8", name=a, accelerator=a) for a in ("fresh-gpu", "old-gpu", "lonely-gpu")])
    off = {"region": "global", "pricing_model": "on-demand", "devices_per_instance": "8", "usd_per_instance_hour": "16", "as_of": "2026-11-20"}
    offers = _write(tmp_path / "off.csv", "offers", [
        dict(off, provider="P1", offer="fresh", accelerator="fresh-gpu", system="fresh-gpu-8", price_quality="first-party", source="p1.example.com/pricing"),
        dict(off, provider="P2", offer="agg", accelerator="fresh-gpu", system="fresh-gpu-8", price_quality="third-party", source="aggregator.example.com/gpus"),
        dict(off, provider="P3", offer="old", accelerator="old-gpu", system="old-gpu-8", price_quality="first-party", as_of="2025-01", source="p3.example.com/pricing"),
    ])
    # a user file without the price_quality column: its offers are 'user'
    cols = [c for c in TABLES["offers"].column_names if c != "price_quality"]
    mine = _write(tmp_path / "mine.csv", "offers", [dict(off, provider="Me", offer="quote", accelerator="fresh-gpu", system="fresh-gpu-8", source="my quote")], cols)
    return [str(accs), str(syss), str(offers), str(mine)]


def test_user_file_without_price_quality_defaults_to_user(tmp_path):
    cat = load_catalog(_tmp_catalog(tmp_path), mode="replace")
    quality = {o.provider: o.price_quality for o in cat.offers}
    assert quality == {"P1": "first-party", "P2": "third-party", "P3": "first-party", "Me": "user"}
    assert cat.offers_frame().set_index("provider").loc["Me", "price_quality"] == "user"


def test_bad_price_quality_names_line_and_column(tmp_path):
    p = _write(tmp_path / "off.csv", "offers", [{"provider": "X", "offer": "y", "accelerator": "h100-sxm5-80gb", "system": "hgx-h100-8", "devices_per_instance": "8",
                                               "region": "global", "pricing_model": "on-demand", "usd_per_instance_hour": "16", "price_quality": "vendor",
                                               "as_of": "2026-11-01", "source": "x.example.com"}])
    with pytest.raises(Exception) as exc:
        load_catalog([p])
    assert "line 2" in str(exc.value) and "price_quality" in str(exc.value)


def test_check_frame(tmp_path):
    cat = load_catalog(_tmp_catalog(tmp_path), mode="replace")
    df = check_catalog(cat, max_age_days=180, today=dt.date(2026, 12, 1))
    found = {(r.check, r.key) for r in df.itertuples()}
    assert ("stale", "old-gpu") in found  # <=2024-01-15 counts by that date
    assert ("stale", "P3 | old | global | on-demand") in found  # 2025-01 -> 2025-01-31
    assert ("third-party-price", "P2 | agg | global | on-demand") in found
    assert ("no-offer", "lonely-gpu") in found
    assert not any(k.startswith("fresh") or k.startswith("P1") for c, k in found if c == "stale")
    assert {c for c, _ in found} == {"stale", "third-party-price", "no-offer"}
    assert len(df[df.check == "third-party-price"]) == 1 and len(df[df.check == "no-offer"]) == 1
    # a longer threshold: nothing stale
    assert "stale" not in set(check_catalog(cat, max_age_days=10_000, today=dt.date(2026, 12, 1))["check"])


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_check_cli(tmp_path, capsys, fmt):
    files = _tmp_catalog(tmp_path)
    rc = cli.main(["catalog", "check", "--catalog", *files, "--catalog-mode", "replace", "--today", "2026-12-01", "--format", fmt])
    out = capsys.readouterr().out
    assert rc == 0
    for text in ("old-gpu", "lonely-gpu", "P2 | agg", "no-offer", "third-party-price", "stale"):
        assert text in out, (fmt, text)
    if fmt == "json":
        rows = json.loads(out)
        assert {r["check"] for r in rows} == {"stale", "third-party-price", "no-offer"}
        assert all(set(r) == {"check", "table", "key", "as_of", "age_days", "detail"} for r in rows)
    if fmt == "csv":
        assert out.splitlines()[0] == "check,table,key,as_of,age_days,detail"


def test_check_cli_max_age_and_errors(tmp_path, capsys):
    files = _tmp_catalog(tmp_path)
    rc = cli.main(["catalog", "check", "--catalog", *files, "--catalog-mode", "replace", "--today", "2026-12-01", "--max-age-days", "100000", "--format", "csv"])
    out = capsys.readouterr().out
    assert rc == 0 and "\nstale," not in out
    assert cli.main(["check", "--max-age-days", "-1"]) == 2
    assert cli.main(["check", "--today", "yesterday"]) == 2
    capsys.readouterr()


def test_check_on_shipped_catalog(capsys):
    assert cli.main(["catalog", "check", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "third-party-price" in out and "no-offer" in out
