"""The command line: params and memory, tables and JSON, and clean errors."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.faces.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_params_json_schema(capsys):
    code, out, _ = run(capsys, "params", "mixtral-8x7b", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"model", "total", "active", "breakdown"}
    assert data["model"] == "mixtral-8x7b"
    assert data["total"] == 46_702_792_704
    assert data["active"] == 12_879_925_248
    assert sum(data["breakdown"].values()) == data["total"]
    assert all(isinstance(v, int) for v in data["breakdown"].values())


def test_params_table_from_a_config_file(capsys, hf_config_dir):
    code, out, _ = run(capsys, "params", str(hf_config_dir / "gpt2.json"))
    assert code == 0
    assert "124,439,808" in out and "embedding" in out


def test_memory_json_matches_api(capsys):
    from costmodel import ParallelLayout, TrainingSetup, training_memory

    code, out, _ = run(capsys, "memory", "llama-3.1-8b", "--dp", "8", "--zero", "3",
                       "--micro-batch", "2", "--seq-len", "8192", "--recompute", "selective",
                       "--format", "json")
    assert code == 0
    data = json.loads(out)
    api = training_memory("llama-3.1-8b", ParallelLayout(dp=8, zero_stage=3),
                          TrainingSetup(micro_batch=2, seq_len=8192, recompute="selective"))
    assert data["total_bytes"] == pytest.approx(float(api.total))
    assert data["breakdown_bytes"]["weights"] == pytest.approx(8_030_261_248 * 2 / 8)


def test_memory_table(capsys):
    code, out, _ = run(capsys, "memory", "gpt2", "--micro-batch", "4", "--seq-len", "1024")
    assert code == 0
    assert "activations" in out and "total" in out and "GiB" in out


@pytest.mark.parametrize("argv, needle", [
    (("params", "no-such-model"), "unknown model preset"),
    (("memory", "llama-3.1-8b", "--tp", "3"), "tp (3) does not divide n_heads (32)"),
    (("memory", "gpt2", "--precision", "fp7"), "precision"),
    (("memory", "gpt2", "--optimizer", "rmsprop"), "optimizer"),
    (("memory", "gpt2", "--set", "bogus=1"), "unknown assumption"),
    (("memory", "gpt2", "--dp", "2", "--global-batch", "3"), "global_batch"),
    (("memory", "gpt2", "--framework", "tensorflow"), "unknown framework"),
])
def test_bad_input_is_one_clear_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err


PLAN_FLAGS = ("--model", "llama-3.1-8b", "--train-tokens", "1e11", "--seq-len", "4096",
              "--accelerators", "h100-sxm5-80gb,a100-sxm4-80gb", "--kinds", "gpu",
              "--pricing", "on-demand,spot", "--top", "3", "--no-progress")


def test_plan_flags_table_and_reports(capsys, tmp_path):
    import pandas as pd

    from costmodel.search.grid import plan
    from costmodel.specs.scenario import Scenario

    code, out, err = run(capsys, "plan", *PLAN_FLAGS, "--csv", str(tmp_path / "plans.csv"),
                         "--save-scenario", str(tmp_path / "s.yaml"))
    assert code == 0, err
    assert "searched" in out and "rank" in out and "wrote plans" in out
    wide = pd.read_csv(tmp_path / "plans.csv")
    assert len(wide) == 3 and (tmp_path / "plans_breakdown.csv").exists()
    assert (tmp_path / "plans_metadata.json").exists()
    # The saved scenario re-plans to the same first row.
    again = plan(Scenario.load(tmp_path / "s.yaml"), top=3).plans.iloc[0]
    assert wide.loc[0, "cost_total_usd"] == pytest.approx(again["cost_total_usd"])
    assert set(wide["accelerator"]) <= {"h100-sxm5-80gb", "a100-sxm4-80gb"}


def test_plan_on_worker_processes_prints_the_same_plans(capsys):
    code, one, err = run(capsys, "plan", *PLAN_FLAGS)
    assert code == 0, err
    code, two, err = run(capsys, "plan", *PLAN_FLAGS, "--workers", "2")
    assert code == 0, err
    strip = lambda text: [line for line in text.splitlines() if not line.startswith("searched")]  # noqa: E731
    assert strip(one) == strip(two)


@pytest.mark.parametrize("value, needle", [("0", "--workers: 0 processes; give 1 or more"),
                                           ("two", "--workers: 'two' is not a whole number")])
def test_plan_bad_worker_count_is_one_line(capsys, value, needle):
    with pytest.raises(SystemExit) as info:
        main(["plan", "--model", "gpt2", "--train-tokens", "1e9", "--workers", value])
    err = capsys.readouterr().err
    assert info.value.code == 2 and needle in err and "Traceback" not in err


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=6), st.sampled_from(["nan", "inf", "1e3", "2.0", "0", "-3", "4"])))
def test_workers_flag_takes_whole_numbers_only(text):
    """``--workers``: a whole number >= 1 or an argparse error naming the value (NaN, inf,
    decimals, zero, negatives and words are refused)."""
    import argparse

    from costmodel.faces.cli import _workers

    try:
        whole = int(text)
    except ValueError:
        whole = None
    if whole is not None and whole >= 1:
        assert _workers(text) == whole
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="processes"):
            _workers(text)


def test_plan_from_a_scenario_file_with_flag_overrides(capsys, tmp_path):
    code, _, _ = run(capsys, "plan", *PLAN_FLAGS, "--save-scenario", str(tmp_path / "s.yaml"))
    assert code == 0
    code, out, err = run(capsys, "plan", str(tmp_path / "s.yaml"), "--objective", "time", "--top", "2",
                         "--deadline-days", "30", "--no-progress")
    assert code == 0, err
    assert "objective time" in out


def test_plan_progress_bar_on_a_terminal_and_silent_in_a_log(monkeypatch, capsys):
    import io

    from costmodel.faces.cli import _Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    bar = _Progress(True)
    bar(50, 100)
    bar(100, 100)
    assert "searching" in term.getvalue() and "100" in term.getvalue()
    monkeypatch.undo()
    bar = _Progress(True)  # capsys' stderr is not a terminal
    bar(50, 100)
    bar(100, 100)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, needle", [
    (("plan", "--train-tokens", "1e9"), "--model"),
    (("plan", "--model", "gpt2"), "--train-tokens"),
    (("plan", "--model", "gpt2", "--train-tokens", "1e9", "--kinds", "npu"), "constraints.kinds"),
    (("plan", "--model", "gpt2", "--train-tokens", "1e9", "--pricing", "reserved"), "constraints.pricing_models"),
    (("plan", "--model", "gpt2", "--train-tokens", "-5"), "job.train_tokens"),
    (("plan", "--model", "gpt2", "--train-tokens", "1e9", "--providers", "Nobody"), "unknown ['Nobody']"),
    (("plan", "nope.yaml"), "cannot read nope.yaml"),
])
def test_plan_bad_input_is_one_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err


def test_plan_with_a_user_catalog_file(capsys, tmp_path):
    """`costmodel plan --catalog FILE`: a negotiated H100 price at $0.50 per device-hour (user
    price quality) ranks first and is billed at that rate; a malformed file is one clear line."""
    import pandas as pd

    mine = tmp_path / "my_prices.csv"
    mine.write_text("provider,offer,accelerator,system,devices_per_instance,region,pricing_model,"
                    "usd_per_instance_hour,usd_per_device_hour,as_of,source,notes\n"
                    "MyCloud,h100-reserved,h100-sxm5-80gb,hgx-h100-8,8,on-prem,on-demand,4.0,0.5,"
                    "2026-12-01,our contract,negotiated\n")
    code, out, err = run(capsys, "plan", *PLAN_FLAGS, "--catalog", str(mine), "--csv", str(tmp_path / "p.csv"))
    assert code == 0, err
    wide = pd.read_csv(tmp_path / "p.csv")
    assert wide.loc[0, "provider"] == "MyCloud" and wide.loc[0, "price_quality"] == "user"
    assert wide.loc[0, "usd_per_device_hour"] == pytest.approx(0.5)
    code, out, err = run(capsys, "train", "llama-3.1-8b", "--accelerator", "h100-sxm5-80gb", "--devices", "8",
                         "--dp", "8", "--train-tokens", "1e10", "--catalog", str(mine))
    assert code == 0 and "MyCloud h100-reserved" in out and "$0.50/device-hour" in out, err
    bad = tmp_path / "bad.csv"
    bad.write_text("provider,offer\nX,1,2\n")
    code, out, err = run(capsys, "plan", *PLAN_FLAGS, "--catalog", str(bad))
    assert code == 2 and "bad.csv" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("hours", "text"), [(0.5, "30.0 min"), (4.2, "4.2 h"), (71.9, "71.9 h"),
                                             (72.0, "3.0 days"), (24 * 400, "400.0 days")])
def test_durations_read_in_the_unit_a_person_uses(hours, text):
    """CLI and web page print times with one rule: minutes under an hour, hours under three days."""
    from costmodel.faces.report import duration_text

    assert duration_text(hours) == text
