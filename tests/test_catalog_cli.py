"""``catalog`` CLI sub-command, driven through an argparse parser built here."""

from __future__ import annotations

import argparse
import csv
import io

import pytest

from hardware_catalog import cli


def run(argv, capsys):
    parser = argparse.ArgumentParser(prog="costmodel")
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    args = parser.parse_args(argv)
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


def rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_accelerators_csv(capsys):
    rc, out, err = run(["catalog", "accelerators", "--format", "csv"], capsys)
    assert rc == 0 and err == ""
    assert out.startswith("id,kind,")
    header = out.splitlines()[0].split(",")
    for col in ("vendor", "name", "memory_bytes", "memory_bandwidth_bytes_per_s", "peak_fp64_flops_per_s", "peak_fp4_flops_per_s",
                "sparsity_pattern", "sparsity_speedup", "onchip_memory_bytes", "tdp_w", "release_year", "purchase_price_usd", "as_of", "source"):
        assert col in header, col
    h100 = [r for r in rows(out) if r["id"] == "h100-sxm5-80gb"][0]
    assert float(h100["peak_bf16_flops_per_s"]) == 9.89e14
    assert h100["kind"] == "gpu"


def test_accelerators_kind_filter(capsys):
    rc, out, _ = run(["catalog", "accelerators", "--kind", "tpu,fpga", "--format", "csv"], capsys)
    assert rc == 0
    kinds = {r["kind"] for r in rows(out)}
    assert kinds == {"tpu", "fpga"}


def test_accelerators_table_is_readable(capsys):
    rc, out, _ = run(["catalog", "accelerators", "--kind", "gpu"], capsys)
    assert rc == 0
    assert "h100-sxm5-80gb" in out and "GiB" in out and "TB/s" in out and "989" in out


def test_bad_kind_is_exit_2_without_traceback(capsys):
    rc, out, err = run(["catalog", "accelerators", "--kind", "xpu"], capsys)
    assert rc == 2 and out == ""
    assert "--kind" in err and "xpu" in err and "gpu, tpu, fpga, asic" in err
    assert "Traceback" not in err


def test_offers_csv_and_filters(capsys):
    rc, out, _ = run(["catalog", "offers", "--pricing", "spot", "--provider", "AWS", "--format", "csv"], capsys)
    assert rc == 0
    data = rows(out)
    assert data and all(r["pricing_model"] == "spot" and r["provider"] == "AWS" for r in data)
    for col in ("provider", "offer", "accelerator", "devices_per_instance", "region", "pricing_model", "usd_per_instance_hour", "usd_per_device_hour", "as_of", "source"):
        assert col in data[0], col
    for r in data:
        assert abs(float(r["usd_per_device_hour"]) - float(r["usd_per_instance_hour"]) / int(r["devices_per_instance"])) < 0.005


def test_offers_accelerator_and_kind(capsys):
    rc, out, _ = run(["catalog", "offers", "--accelerator", "h100-sxm5-80gb", "--kind", "gpu", "--format", "csv"], capsys)
    assert rc == 0 and {r["accelerator"] for r in rows(out)} == {"h100-sxm5-80gb"}
    rc, out, _ = run(["catalog", "offers", "--kind", "tpu"], capsys)
    assert rc == 0 and "v5litepod-1" in out


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["catalog", "offers", "--pricing", "reserved"], "--pricing"),
        (["catalog", "offers", "--kind", "npu"], "--kind"),
        (["catalog", "offers", "--provider", "Oracle"], "--provider"),
        (["catalog", "offers", "--accelerator", "h100"], "--accelerator"),
    ],
)
def test_offers_bad_filters(capsys, argv, flag):
    rc, out, err = run(argv, capsys)
    assert rc == 2 and out == ""
    assert flag in err and "allowed" in err


def test_user_catalog_file(tmp_path, capsys):
    p = tmp_path / "quote.csv"
    p.write_text(
        "provider,offer,accelerator,system,devices_per_instance,region,pricing_model,usd_per_instance_hour,usd_per_device_hour,as_of,source\n"
        "MyCloud,8xH100,h100-sxm5-80gb,hgx-h100-8,8,eu,commit-3y,12,1.5,2026-01-01,negotiated quote\n"
    )
    rc, out, _ = run(["catalog", "offers", "--catalog", str(p), "--provider", "MyCloud", "--format", "csv"], capsys)
    assert rc == 0 and rows(out)[0]["usd_per_device_hour"] == "1.5"
    rc, out, err = run(["catalog", "offers", "--catalog", str(tmp_path / "missing.csv")], capsys)
    assert rc == 2 and "not found" in err


def test_other_leaves(capsys):
    rc, out, _ = run(["catalog", "cheapest", "--pricing", "on-demand", "--format", "csv"], capsys)
    assert rc == 0 and {r["pricing_model"] for r in rows(out)} == {"on-demand"}
    rc, out, _ = run(["catalog", "systems", "--accelerator", "gb200-nvl72"], capsys)
    assert rc == 0 and "gb200-nvl72-rack" in out
    rc, out, _ = run(["catalog", "efficiency", "--format", "csv"], capsys)
    assert rc == 0 and "kind:gpu" in out


def test_standalone_main(capsys):
    assert cli.main(["accelerators", "--kind", "asic", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("id,kind") and "gaudi3" in out


def test_csv_output_guards_spreadsheet_formulas(capsys, tmp_path):
    from hardware_catalog.loader import TABLES

    cols = list(TABLES["offers"].column_names)
    path = tmp_path / "mine.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerow({
            "provider": "=HYPERLINK(\"http://x\",\"y\")", "offer": "@SUM(A1)", "accelerator": "h100-sxm5-80gb", "system": "hgx-h100-8",
            "devices_per_instance": "8", "region": "+eu", "pricing_model": "on-demand", "usd_per_instance_hour": "16",
            "as_of": "2026-01", "source": "-cmd|' /C calc'!A0", "notes": "\t=1+1\rAWS,fake,row",
        })
    for command in ("offers", "cheapest"):
        rc, out, err = run(["catalog", command, "--format", "csv", "--catalog", str(path), "--pricing", "on-demand"], capsys)
        assert rc == 0, err
        mine = [r for r in rows(out) if r["provider"].startswith("'=")]
        assert mine, out
        assert not any(r["provider"] == "AWS" and r["offer"] == "fake" for r in rows(out))  # no injected row
        if command == "offers":
            r = mine[0]
            assert r["provider"] == "'=HYPERLINK(\"http://x\",\"y\")" and r["offer"] == "'@SUM(A1)" and r["region"] == "'+eu"
            assert r["source"] == "'-cmd|' /C calc'!A0" and r["notes"] == "'=1+1\rAWS,fake,row"  # tab stripped; CR quoted
            assert float(r["usd_per_device_hour"]) == 2.0  # numbers are untouched
    rc, out, _ = run(["catalog", "offers", "--catalog", str(path), "--accelerator", "h100-sxm5-80gb"], capsys)
    assert rc == 0 and "=HYPERLINK" in out and "'=HYPERLINK" not in out  # the table is not a CSV: shown as given
