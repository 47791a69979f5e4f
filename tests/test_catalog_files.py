"""Loading user catalog files: bad rows raise CatalogError naming file, line and field; merge vs replace."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hardware_catalog import CatalogError, load_catalog, parse_quantity
from hardware_catalog.loader import TABLES

ACC_COLS = list(TABLES["accelerators"].column_names)
SYS_COLS = list(TABLES["systems"].column_names)
OFF_COLS = list(TABLES["offers"].column_names)
EFF_COLS = list(TABLES["efficiency"].column_names)
OTH_COLS = list(TABLES["other_prices"].column_names)

GOOD_ACC = {
    "id": "mychip", "name": "My Chip", "vendor": "Me", "kind": "asic", "memory": "64 GiB", "memory_bandwidth": "2 TB/s",
    "peak_bf16": "500 TFLOP/s", "peak_int8": "1000 TOPS", "tdp": "400 W", "as_of": "2026-01-01", "source": "vendor datasheet",
}
GOOD_SYS = {
    "id": "mychip-node", "name": "8x My Chip", "accelerator": "mychip", "default": "true", "devices_per_node": "8", "scaleup_fabric": "MyLink",
    "scaleup_domain_devices": "8", "scaleup_bandwidth_per_device_one_way": "200 GB/s", "scaleup_latency": "3 us", "scaleout_fabric": "RoCE",
    "scaleout_bandwidth_per_device_one_way": "400 Gb/s", "scaleout_latency": "10 us", "host_memory": "2 TiB", "as_of": "2026-01-01", "source": "vendor",
}
GOOD_OFFER = {
    "provider": "MyCloud", "offer": "my-8x", "accelerator": "h100-sxm5-80gb", "system": "hgx-h100-8", "devices_per_instance": "8",
    "region": "eu-west", "pricing_model": "commit-1y", "usd_per_instance_hour": "16", "usd_per_device_hour": "2", "as_of": "2026-02-01",
    "source": "negotiated quote",
}


def write_csv(path: Path, cols: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    return path


def expect_error(path: Path, line: int, field: str, match: str | None = None) -> CatalogError:
    with pytest.raises(CatalogError) as exc:
        load_catalog([path])
    msg = str(exc.value)
    assert path.name in msg, msg
    assert f"line {line}" in msg, msg
    assert f"'{field}'" in msg, msg
    if match:
        assert match in msg, msg
    return exc.value


# ----------------------------------------------------------------------------- units
def test_parse_quantity_units():
    assert parse_quantity("80 GiB", "bytes") == 80 * 2**30
    assert parse_quantity("192 GB", "bytes") == 192e9
    assert parse_quantity("3.35 TB/s", "bytes_per_s") == 3.35e12
    assert parse_quantity("400 Gb/s", "bytes_per_s") == 50e9
    assert parse_quantity("989 TFLOP/s", "flops_per_s") == 989e12
    assert parse_quantity("989 TFLOPS", "flops_per_s") == 989e12
    assert parse_quantity("1979 TOPS", "ops_per_s") == 1979e12
    assert parse_quantity("700 W", "watts") == 700
    assert parse_quantity("5 us", "seconds") == pytest.approx(5e-6)
    assert parse_quantity("2 ms", "seconds") == pytest.approx(2e-3)
    assert parse_quantity("450 GB/s", "bytes_per_s") == 450e9


# ----------------------------------------------------------------------------- bad rows
def test_unknown_unit(tmp_path):
    bad = dict(GOOD_ACC, id="chip2", memory="64 GiX")
    p = write_csv(tmp_path / "my_accels.csv", ACC_COLS, [GOOD_ACC, bad])
    write_csv(tmp_path / "unused.csv", SYS_COLS, [])
    expect_error(p, 3, "memory", "unknown unit")


def test_wrong_unit_dimension_for_int_format(tmp_path):
    p = write_csv(tmp_path / "a.csv", ACC_COLS, [dict(GOOD_ACC, peak_bf16="500 TOPS")])
    expect_error(p, 2, "peak_bf16", "expected a FLOP/s rate")


def test_missing_unit(tmp_path):
    p = write_csv(tmp_path / "a.csv", ACC_COLS, [dict(GOOD_ACC, memory_bandwidth="2000")])
    expect_error(p, 2, "memory_bandwidth", "no unit")


def test_negative_bandwidth(tmp_path):
    p = write_csv(tmp_path / "sys.csv", SYS_COLS, [dict(GOOD_SYS, accelerator="h100-sxm5-80gb", scaleup_bandwidth_per_device_one_way="-450 GB/s")])
    expect_error(p, 2, "scaleup_bandwidth_per_device_one_way", "greater than or equal to 1")


def test_missing_source(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [GOOD_OFFER, dict(GOOD_OFFER, offer="other", source="")])
    expect_error(p, 3, "source", "empty")


def test_price_without_date(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [dict(GOOD_OFFER, as_of="")])
    expect_error(p, 2, "as_of")


def test_bad_date(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [dict(GOOD_OFFER, as_of="last week")])
    expect_error(p, 2, "as_of", "not a date")


def test_unknown_accelerator_in_offer(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [GOOD_OFFER, dict(GOOD_OFFER, offer="x", accelerator="h100")])
    err = expect_error(p, 3, "accelerator", "unknown accelerator 'h100'")
    assert "h100-sxm5-80gb" in str(err)  # close match offered


def test_unknown_system_in_offer(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [dict(GOOD_OFFER, system="hgx-h100")])
    expect_error(p, 2, "system", "unknown system")


def test_offer_system_for_other_accelerator(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [dict(GOOD_OFFER, system="hgx-a100-80gb-8")])
    expect_error(p, 2, "system", "holds 'a100-sxm4-80gb'")


def test_unknown_pricing_model(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [dict(GOOD_OFFER, pricing_model="reserved")])
    expect_error(p, 2, "pricing_model", "capacity-block")


def test_per_device_price_inconsistent(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [dict(GOOD_OFFER, usd_per_device_hour="2.5")])
    expect_error(p, 2, "usd_per_device_hour", "inconsistent")


def test_missing_price(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [dict(GOOD_OFFER, usd_per_device_hour="", usd_per_instance_hour="")])
    expect_error(p, 2, "usd_per_device_hour", "no price")


def test_one_price_is_completed(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [dict(GOOD_OFFER, usd_per_device_hour="")])
    cat = load_catalog([p])
    o = [x for x in cat.offers if x.provider == "MyCloud"][0]
    assert o.usd_per_device_hour == 2.0


def test_bad_integer(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [dict(GOOD_OFFER, devices_per_instance="eight")])
    expect_error(p, 2, "devices_per_instance", "'eight' is not an integer")


def test_efficiency_above_one_and_zero(tmp_path):
    row = {"accelerator": "h100-sxm5-80gb", "precision": "bf16", "quantity": "matmul", "size": "4096", "value": "1.2", "as_of": "2026-01-01", "source": "me"}
    p = write_csv(tmp_path / "eff.csv", EFF_COLS, [row])
    expect_error(p, 2, "value", "less than or equal to 1")
    p = write_csv(tmp_path / "eff2.csv", EFF_COLS, [dict(row, value="0")])
    expect_error(p, 2, "value", "greater than 0")
    p = write_csv(tmp_path / "eff3.csv", EFF_COLS, [dict(row, quantity="matmull")])
    expect_error(p, 2, "quantity")
    p = write_csv(tmp_path / "eff4.csv", EFF_COLS, [dict(row, accelerator="kind:npu")])
    expect_error(p, 2, "accelerator")


def test_efficiency_percent_accepted(tmp_path):
    row = {"accelerator": "l4-24gb", "precision": "bf16", "quantity": "matmul", "value": "70%", "as_of": "2026-01-01", "source": "my run"}
    cat = load_catalog([write_csv(tmp_path / "eff.csv", EFF_COLS, [row])])
    assert cat.efficiency_value("l4-24gb", "matmul", "bf16").value == pytest.approx(0.7)


def test_other_price_wrong_unit(tmp_path):
    row = {"provider": "Me", "item": "electricity", "region": "home", "unit": "USD/MWh", "value": "80", "as_of": "2026-01", "source": "bill"}
    p = write_csv(tmp_path / "power.csv", OTH_COLS, [row])
    expect_error(p, 2, "unit", "USD/kWh")


def test_unknown_column(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS + ["discount"], [dict(GOOD_OFFER, discount="10%")])
    expect_error(p, 2, "discount", "unknown column")


def test_duplicate_key(tmp_path):
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [GOOD_OFFER, GOOD_OFFER])
    expect_error(p, 3, "provider", "duplicate key")


def test_header_matching_no_schema(tmp_path):
    p = tmp_path / "junk.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(CatalogError) as exc:
        load_catalog([p])
    assert "junk.csv line 1" in str(exc.value) and "none of the catalog schemas" in str(exc.value)


def test_accelerator_without_system(tmp_path):
    p = write_csv(tmp_path / "acc.csv", ACC_COLS, [GOOD_ACC])
    expect_error(p, 2, "id", "has no system")


def test_sparsity_speedup_without_pattern(tmp_path):
    p = write_csv(tmp_path / "acc.csv", ACC_COLS, [dict(GOOD_ACC, sparsity_speedup="2")])
    expect_error(p, 2, "sparsity_speedup")


def test_missing_file():
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(["/nonexistent/catalog.csv"])


# ----------------------------------------------------------------------------- merge / replace
def test_merge_replaces_same_key_and_adds_new(tmp_path):
    base = load_catalog()
    cheaper = dict(GOOD_OFFER, provider="AWS", offer="p5.48xlarge", region="us-east-1", pricing_model="on-demand", system="aws-p5-48xlarge",
                   usd_per_instance_hour="40", usd_per_device_hour="5", source="negotiated EDP price")
    offers = write_csv(tmp_path / "my_offers.csv", OFF_COLS, [cheaper, GOOD_OFFER])
    accs = write_csv(tmp_path / "my_accs.csv", ACC_COLS, [GOOD_ACC])
    syss = write_csv(tmp_path / "my_systems.csv", SYS_COLS, [GOOD_SYS])
    cat = load_catalog([accs, syss, offers], mode="merge")
    assert len(cat.offers) == len(base.offers) + 1  # one replaced, one added
    p5 = [o for o in cat.offers if o.key == ("AWS", "p5.48xlarge", "us-east-1", "on-demand")]
    assert len(p5) == 1 and p5[0].usd_per_device_hour == 5.0 and p5[0].source == "negotiated EDP price"
    assert "mychip" in cat.accelerators and "h100-sxm5-80gb" in cat.accelerators
    assert cat.default_system("mychip").id == "mychip-node"
    assert cat.accelerator("mychip").peak("int8") == 1000e12
    assert cat.system("mychip-node").scaleout_bandwidth_bytes_per_s == 50e9
    assert cat.efficiency_value("mychip", "matmul", "bf16").accelerator == "kind:asic"
    assert cat.provenance("offers", ("AWS", "p5.48xlarge", "us-east-1", "on-demand")).file.endswith("my_offers.csv")


def test_replace_uses_only_user_files(tmp_path):
    y = tmp_path / "onprem.yaml"
    y.write_text(
        """
accelerators:
  - {id: mychip, name: My Chip, vendor: Me, kind: asic, memory: 64 GiB, memory_bandwidth: 2 TB/s,
     peak_bf16: 500 TFLOP/s, as_of: 2026-01-01, source: vendor datasheet}
systems:
  - id: mychip-node
    name: 8x My Chip
    accelerator: mychip
    devices_per_node: 8
    scaleup_fabric: MyLink
    scaleup_domain_devices: 8
    scaleup_bandwidth_per_device_one_way: 200 GB/s
    scaleup_latency: 3 us
    scaleout_fabric: RoCE
    scaleout_bandwidth_per_device_one_way: 400 Gb/s
    scaleout_latency: 10 us
    as_of: 2026-01-01
    source: vendor
offers:
  - {provider: OnPrem, offer: rack-1, accelerator: mychip, system: mychip-node, devices_per_instance: 8, region: dc1,
     pricing_model: commit-3y, usd_per_instance_hour: 8.0, as_of: 2026-01, source: finance team amortisation}
efficiency:
  - {accelerator: mychip, precision: bf16, quantity: matmul, size: 8192, value: 0.75, as_of: 2026-01-05, source: my benchmark}
other_prices:
  - {provider: OnPrem, item: electricity, region: dc1, unit: USD/kWh, value: 0.07, as_of: 2026-01, source: utility contract}
""".lstrip()
    )
    cat = load_catalog([y], mode="replace")
    assert list(cat.accelerators) == ["mychip"]
    assert len(cat.offers) == 1 and cat.offers[0].usd_per_device_hour == 1.0
    assert cat.efficiency_value("mychip", "matmul", "bf16").value == 0.75
    assert cat.other_price("electricity")[0].value == 0.07
    assert cat.accelerator("mychip").as_of == "2026-01-01"  # YAML dates are read back as text


def test_yaml_errors_name_the_line(tmp_path):
    y = tmp_path / "bad.yaml"
    y.write_text(
        "offers:\n"
        "  - {provider: X, offer: a, accelerator: h100-sxm5-80gb, system: hgx-h100-8, devices_per_instance: 8, region: r,\n"
        "     pricing_model: on-demand, usd_per_instance_hour: 8, as_of: 2026-01, source: s}\n"
        "  - {provider: X, offer: b, accelerator: h100-sxm5-80gb, system: hgx-h100-8, devices_per_instance: 8, region: r,\n"
        "     pricing_model: hourly, usd_per_instance_hour: 8, as_of: 2026-01, source: s}\n"
    )
    with pytest.raises(CatalogError) as exc:
        load_catalog([y])
    msg = str(exc.value)
    assert "bad.yaml line 4" in msg and "'pricing_model'" in msg


def test_replace_needs_consistent_files(tmp_path):
    offers = write_csv(tmp_path / "offers.csv", OFF_COLS, [GOOD_OFFER])
    with pytest.raises(CatalogError) as exc:
        load_catalog([offers], mode="replace")
    assert "offers.csv line 2" in str(exc.value) and "'accelerator'" in str(exc.value)


def test_bad_mode():
    with pytest.raises(CatalogError, match="mode"):
        load_catalog([], mode="union")


def test_data_dir_argument(tmp_path):
    import shutil

    from hardware_catalog.paths import data_dir

    hw = tmp_path / "hardware"
    shutil.copytree(data_dir() / "hardware", hw)
    with open(hw / "offers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0]["usd_per_instance_hour"] = "1"
    rows[0]["usd_per_device_hour"] = "1"
    rows[0]["devices_per_instance"] = "1"
    write_csv(hw / "offers.csv", OFF_COLS, rows)
    cat = load_catalog(data_dir=tmp_path)
    assert cat.offers[0].usd_per_device_hour == 1.0


# ----------------------------------------------------------------------------- strict numbers (fuzzing regressions)
@pytest.mark.parametrize(
    "column, value",
    [
        ("usd_per_instance_hour", "2,5"),  # decimal comma: was silently read as 25
        ("usd_per_instance_hour", "1,000"),  # thousands separator: never allowed
        ("devices_per_instance", "1,024"),
    ],
)
def test_comma_in_a_number_is_an_error(tmp_path, column, value):
    row = dict(GOOD_OFFER, usd_per_device_hour="", **{column: value})
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [row])
    err = expect_error(p, 2, column, "contains a comma")
    assert repr(value) in str(err) and "decimal point" in str(err) and "thousands" in str(err)


@pytest.mark.parametrize("value", ["16,5 GiB", "1,024 GiB", "1 024 GiB"])
def test_comma_or_grouping_in_a_quantity_is_an_error(tmp_path, value):
    p = write_csv(tmp_path / "a.csv", ACC_COLS, [dict(GOOD_ACC, memory=value)])
    err = expect_error(p, 2, "memory")
    assert "thousands separators" in str(err) and repr(value) in str(err)


@pytest.mark.parametrize("value", ["1_000", "１２", "0x10", "8 ", " +8"])
def test_only_ascii_decimal_numbers(tmp_path, value):
    row = dict(GOOD_OFFER, usd_per_device_hour="", usd_per_instance_hour=value)
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [row])
    if value.strip() in ("8", "+8"):  # surrounding spaces and an explicit sign are fine
        assert [o for o in load_catalog([p]).offers if o.provider == "MyCloud"][0].usd_per_instance_hour == 8.0
    else:
        expect_error(p, 2, "usd_per_instance_hour", "is not a number")


@pytest.mark.parametrize(
    "column, value",
    [("usd_per_instance_hour", "inf"), ("usd_per_instance_hour", "NaN"), ("usd_per_device_hour", "-Infinity"), ("devices_per_instance", "nan")],
)
def test_non_finite_price_or_count_is_an_error(tmp_path, column, value):
    row = dict(GOOD_OFFER, **{column: value})
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [row])
    expect_error(p, 2, column, "not a finite number")


@pytest.mark.parametrize("column, value", [("memory", "inf GiB"), ("peak_bf16", "nan TFLOP/s"), ("tdp", "-inf W"), ("sparsity_speedup", "inf")])
def test_non_finite_figure_is_an_error(tmp_path, column, value):
    row = dict(GOOD_ACC, sparsity_pattern="2:4", **{column: value})
    p = write_csv(tmp_path / "a.csv", ACC_COLS, [row])
    expect_error(p, 2, column, "not a finite number")


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("devices_per_instance", "1" + "0" * 400, "out of range"),
        ("devices_per_instance", "1e400", "out of range"),
        ("devices_per_instance", "2000000", "less than or equal to 1000000"),
        ("usd_per_instance_hour", "1e300", "less than or equal to 1000000"),
    ],
)
def test_huge_numbers_in_offers_are_bounded(tmp_path, column, value, match):
    row = dict(GOOD_OFFER, usd_per_device_hour="", **{column: value})
    p = write_csv(tmp_path / "offers.csv", OFF_COLS, [row])
    err = expect_error(p, 2, column, match)
    assert "allowed:" in str(err)  # the column's documented range


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("memory", "1e400 B", "out of range"),
        ("memory", "1e30 B", "2**60"),
        ("memory_bandwidth", "1e30 B/s", "1e18"),
        ("peak_bf16", "1e30 TFLOP/s", "1e+21"),
        ("release_year", "9" * 30, "out of range"),
        ("release_year", "1200", "1950..2100"),
        ("tdp", "1e12 W", "1e6"),
    ],
)
def test_huge_figures_in_accelerators_are_bounded(tmp_path, column, value, match):
    p = write_csv(tmp_path / "a.csv", ACC_COLS, [dict(GOOD_ACC, **{column: value})])
    expect_error(p, 2, column, match)


def test_yaml_non_finite_and_huge_numbers(tmp_path):
    for value, match in ((".inf", "not a finite number"), (".nan", "not a finite number"), ("1" + "0" * 400, "out of range")):
        y = tmp_path / "o.yaml"
        y.write_text(
            "offers:\n"
            "  - {provider: X, offer: a, accelerator: h100-sxm5-80gb, system: hgx-h100-8, devices_per_instance: 8, region: r,\n"
            f"     pricing_model: on-demand, usd_per_instance_hour: {value}, as_of: 2026-01, source: s}}\n"
        )
        expect_error(y, 2, "usd_per_instance_hour", match)


# ----------------------------------------------------------------------------- encodings
def test_non_utf8_file_names_the_file(tmp_path):
    p = write_csv(tmp_path / "latin1_offers.csv", OFF_COLS, [dict(GOOD_OFFER, notes="prix négocié")])
    p.write_bytes(p.read_text(encoding="utf-8").encode("latin-1"))
    with pytest.raises(CatalogError) as exc:
        load_catalog([p])
    msg = str(exc.value)
    assert str(p) in msg and "line 2" in msg and "not UTF-8" in msg and "e9" in msg


def test_non_utf8_yaml_names_the_file(tmp_path):
    y = tmp_path / "cp1252.yaml"
    y.write_bytes("offers: []\n# co\u00fbt \u20ac\n".encode("cp1252"))
    with pytest.raises(CatalogError, match="cp1252.yaml line 2: the file is not UTF-8"):
        load_catalog([y])


def test_utf8_bom_and_crlf_are_accepted(tmp_path):
    p = write_csv(tmp_path / "bom.csv", OFF_COLS, [dict(GOOD_OFFER, notes="multi\r\nline ≠ ascii")])
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    cat = load_catalog([p])
    o = [x for x in cat.offers if x.provider == "MyCloud"][0]
    assert o.notes == "multi\r\nline ≠ ascii"  # cells are kept byte for byte
    y = tmp_path / "bom.yaml"
    y.write_bytes(
        b"\xef\xbb\xbfoffers:\n"
        b"  - {provider: Y, offer: a, accelerator: h100-sxm5-80gb, system: hgx-h100-8, devices_per_instance: 8, region: r,\n"
        b"     pricing_model: on-demand, usd_per_instance_hour: 8, as_of: 2026-01, source: s}\n"
    )
    assert [o for o in load_catalog([y]).offers if o.provider == "Y"][0].usd_per_device_hour == 1.0


def test_overrides_reject_non_finite_and_huge(tmp_path):
    cat = load_catalog()
    key = cat.offers[0].key
    for kwargs in ({"usd_per_device_hour": float("inf")}, {"usd_per_device_hour": float("nan")}, {"usd_per_instance_hour": 10**400, "usd_per_device_hour": 1.0}):
        with pytest.raises(CatalogError):
            cat.override_price(*key, **kwargs)
