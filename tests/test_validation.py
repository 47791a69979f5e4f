"""Validation against published runs: the CLI contract, error bounds, defaults, bad files, and the
reproducibility of the shipped calibration."""

import csv
import json
import math

import pandas as pd
import pytest

from costmodel.validation.calibration import FIT_COMMAND, cross_validate, fit
from costmodel.faces.cli import main
from costmodel.validation.measurements import MeasurementFileError, read_measurements, summarize, validate
from hardware_catalog.paths import data_dir

PUBLIC = data_dir() / "validation" / "public.csv"
SHIPPED = sorted((data_dir() / "validation").glob("*.csv"))


@pytest.fixture(scope="module")
def results():
    return validate()


def ape(frame, mask):
    return float((frame.loc[mask, "rel_error"].abs() * 100).median())


def test_every_row_is_reported_with_a_status(results):
    ids = []
    for path in SHIPPED:
        with path.open() as fh:
            ids += [r["id"] for r in csv.DictReader(fh)]
    assert results["id"].tolist() == ids
    serving = results[results["category"].isin(["infer_throughput", "infer_latency"])]
    assert len(serving) == 82
    # TensorRT-LLM fp8/fp16 (IT-, IL-), quantized (IQ-) and their fp16 controls (IQC-) all evaluate;
    # QServe's W4A8KV4 rows (IQW-) are kept with the reason the engine cannot evaluate them.
    w4a8 = serving["id"].str.startswith("IQW-")
    assert w4a8.sum() == 10 and (serving.loc[~w4a8, "status"] == "ok").all()
    assert serving.loc[w4a8, "status"].str.contains("W4A8").all()
    assert serving.loc[w4a8, "status"].str.contains("is not modelled").all()
    cost_rows = results[results["category"] == "train_total_cost"]  # whole-run estimates (search.choose)
    assert (cost_rows["status"] == "ok").all() and cost_rows["defaults"].str.contains("chosen layout").all()
    assert (results.loc[results["category"].str.startswith("train_t") & (results["category"] != "train_total_cost"), "status"] == "ok").all()


def test_training_throughput_error_bound(results):
    """Achieved (README): median |error| 6.8% over all 134 throughput rows and 6.2% over the 119
    rows on the catalog's exact hardware (the 15 others ran on H100 96 GB at 500 W). Bounds
    slightly looser so a regression fails."""
    thr = (results["category"] == "train_throughput") & (results["status"] == "ok")
    assert thr.sum() == 134
    assert ape(results, thr) <= 7.5
    assert ape(results, thr & ~results["hardware_variant"]) <= 6.8


def test_training_memory_error_bound(results):
    """Achieved: median |error| 5.3% over the 25 peak-memory rows. Printed side by side
    (prediction, measurement, error) for the record."""
    mem = (results["category"] == "train_memory") & (results["status"] == "ok")
    assert mem.sum() == 25
    assert ape(results, mem) <= 6.0
    table = results.loc[mem, ["id", "measured", "predicted", "rel_error"]]
    print("\n" + table.to_string(index=False))
    zero = results.set_index("id").loc[["TM-030", "TM-031", "TM-032", "TM-033"]]
    # ZeRO paper Figure 1 reproduced to the fourth decimal of a GiB.
    assert (zero["predicted"] - zero["measured"]).abs().max() < 1e-4


def test_serving_error_bounds(results):
    """Serving rows (TensorRT-LLM static-batch throughput and first-token latency, H100/A100/L40S)
    through the serving job with nothing fitted to them: achieved median |error| 11.3% (throughput,
    14 rows) and 14.5% (TTFT, 11 rows); the target is 20%. In-sample equals cross-validated error
    here, because no serving constant is fitted. Selected by id prefix (IT-, IL-): the quantized
    rows have their own check below."""
    ok = results["status"] == "ok"
    thr = (results["category"] == "infer_throughput") & ok & results["id"].str.startswith("IT-")
    lat = (results["category"] == "infer_latency") & ok & results["id"].str.startswith("IL-")
    assert thr.sum() == 14 and lat.sum() == 11
    assert ape(results, thr) <= 13.0
    assert ape(results, lat) <= 16.0


def test_quantized_serving_rows_reported(results):
    """Quantized serving rows (IQ-): QServe's TensorRT-LLM W4A16 (AWQ) and W8A8 (SmoothQuant)
    baselines on L40S/A100 (static batch, batch size unpublished: evaluated at the largest that
    fits) and TensorRT-LLM's NVFP4 trtllm-bench runs on B200 (in-flight batching, approximated as a
    static batch). Achieved median |error| 18.7% over 39 rows (w4a16 32.2%, int8 9.8%, nvfp4
    18.5%); the fp16 controls of the QServe table (IQC-) miss by 43.4%, so most of the QServe
    rows' error is the benchmark (unpublished batch), not the quantization. Printed for the
    record; the bound is loose, only to catch a regression, not a target."""
    ok = results["status"] == "ok"
    q = ok & results["id"].str.startswith("IQ-")
    assert q.sum() == 39
    table = results.loc[q | results["id"].str.startswith("IQC-"), ["id", "measured", "predicted", "rel_error"]]
    print("\n" + table.to_string(index=False))
    assert ape(results, q) <= 25.0


def test_blank_cells_report_the_defaults_they_took(results):
    row = results.set_index("id").loc["TT-020"]
    for default in ("precision=bf16", "optimizer=adamw", "zero_stage=0", "cp=1", "vpp=1"):
        assert default in row["defaults"]
    assert "precision" not in results.set_index("id").loc["TT-031", "defaults"]


def test_summary_per_category(results):
    s = summarize(results).set_index("category")
    assert s.loc["train_throughput", "evaluated"] == 134
    assert s.loc["infer_throughput", "evaluated"] == 14 + 39 + 8
    assert s.loc["train_memory", "worst_id"].startswith("TM-")


def test_cli_json_is_only_a_json_list(capsys):
    assert main(["validate", "--format", "json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert isinstance(data, list) and len(data) == 248
    for rec in data:
        assert set(rec) == {"id", "category", "metric", "measured", "predicted", "rel_error", "status"}
        if rec["status"] == "ok":
            assert math.isfinite(rec["predicted"]) and math.isfinite(rec["rel_error"])
        else:
            assert rec["predicted"] is None and rec["rel_error"] is None


def test_cli_table_and_csv(capsys):
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "TT-031" in out and "median_ape" in out and "defaults used" in out
    assert main(["validate", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("id,category,metric,measured,predicted,rel_error,status")


def _write(tmp_path, rows, header=None):
    with PUBLIC.open() as fh:
        reader = csv.DictReader(fh)
        fields = header or reader.fieldnames
        base = next(reader)
    path = tmp_path / "m.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for changes in rows:
            w.writerow({**base, **changes})
    return path


def test_a_user_file_is_validated_with_defaults(tmp_path):
    path = _write(tmp_path, [{"id": "U-1", "precision": "", "framework": "", "source": "a blog",
                              "notes": ""}])
    res = validate([path])
    assert res.loc[0, "status"] == "ok"
    assert "precision=bf16" in res.loc[0, "defaults"] and "framework=nemo" in res.loc[0, "defaults"]
    # A source naming its stack decides the profile when the framework cell is blank.
    path = _write(tmp_path, [{"id": "U-2", "framework": "", "source": "Megatron-LM paper"}])
    assert "framework=megatron (from source: 'megatron')" in validate([path]).loc[0, "defaults"]


@pytest.mark.parametrize("changes, needle", [
    ({"tp": "two"}, "column 'tp': 'two' is not a number"),
    ({"metric": "speed"}, "column 'metric': 'speed' is not one of"),
    ({"recompute": "some"}, "column 'recompute'"),
    ({"sequence_parallel": "maybe"}, "column 'sequence_parallel'"),
])
def test_bad_cells_name_file_line_and_column(tmp_path, changes, needle):
    """A bad cell is that row's status (file, line, column), never an abort of the file."""
    path = _write(tmp_path, [{"id": "U-1", **changes}])
    status = validate([path]).iloc[0]["status"]
    assert f"{path}:2" in status and needle in status


def test_missing_and_unknown_columns_and_duplicates(tmp_path):
    with PUBLIC.open() as fh:
        header = csv.DictReader(fh).fieldnames
    path = _write(tmp_path, [{"id": "U-1"}], header=[c for c in header if c != "seq_len"])
    with pytest.raises(MeasurementFileError, match="missing column.*seq_len"):
        read_measurements([path])
    path = _write(tmp_path, [{"id": "U-1"}, {"id": "U-1"}])
    rows = read_measurements([path])
    assert rows[0].error is None and "duplicate id 'U-1'" in rows[1].error
    bad = tmp_path / "x.csv"
    bad.write_text(PUBLIC.read_text().splitlines()[0] + ",colour\n")
    with pytest.raises(MeasurementFileError, match="unknown column.*colour"):
        read_measurements([bad])


def test_shipped_calibration_is_reproduced_by_its_command():
    """data/calibration/fitted.csv was written by FIT_COMMAND; fitting again gives the same
    values, all within (0, 1]."""
    shipped = pd.read_csv(data_dir() / "calibration" / "fitted.csv")
    assert (shipped["value"] > 0).all() and (shipped["value"] <= 1).all()
    assert shipped["source"].str.contains(FIT_COMMAND, regex=False).all()
    result = fit()
    assert len(shipped) == len(result.values)
    for (acc, quantity, fmt), value in result.values.items():
        row = shipped[(shipped["accelerator"] == acc) & (shipped["quantity"] == quantity)
                      & (shipped["precision"] == fmt)]
        assert len(row) == 1 and row["value"].iloc[0] == pytest.approx(value, abs=5e-4), (acc, fmt)
    assert all(0 < v <= 1 for v in result.values.values())
    # Only frameworks with >= 3 rows on fitted hardware get a scale: fsdp (llm-foundry, 9 rows);
    # megatron_deepspeed (1 row) and torchtitan (2 rows on exact hardware) keep 1.0.
    assert set(result.framework_scales) == {"fsdp"}
    assert 0.8 < result.framework_scales["fsdp"] < 1.1
    # The dies with >= 3 reference rows each get their own ratio; the rest transfer.
    assert set(result.fit.ratios) == {("ga100", "16-bit"), ("gh100", "16-bit"), ("gh100", "fp8"),
                                      ("b200-die", "16-bit"), ("b200-die", "fp8"),
                                      ("tpu-v6e", "16-bit"), ("tpu-v5p", "16-bit"), ("trn1", "16-bit")}
    for (die, group), ids in result.fit.ratio_rows.items():
        assert len(ids) >= 3, (die, group)


def test_a_bad_row_is_reported_and_the_others_still_run(tmp_path):
    """One row with an unknown value (tp 'two'), one with an unknown category, one duplicate id:
    each is reported with a status naming file, line and column; the good row is evaluated."""
    src = PUBLIC.read_text().splitlines()
    header = next(csv.reader([src[0]]))
    good, bad, worse = (next(csv.reader([line])) for line in src[1:4])
    bad[header.index("tp")] = "two"
    worse[header.index("category")] = "bogus"
    dup = list(good)
    path = tmp_path / "mixed.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([header, good, bad, worse, dup])
    res = validate([path])
    assert len(res) == 4
    assert res.iloc[0]["status"] == "ok"
    assert "mixed.csv:3: column 'tp': 'two' is not a number" in res.iloc[1]["status"]
    assert "column 'category'" in res.iloc[2]["status"]
    assert "duplicate id" in res.iloc[3]["status"]
