"""Every assumption knob has a documented range, and no face accepts a value outside it.

Before ranges, an overlap share of 2 gave a negative step time (and a negative-cost plan ranked
first), a negative ``checkpoints_retained`` a negative storage cost, and NaN passed through. The
ranges live next to each value in ``data/assumptions.yaml``, ``data/frameworks.yaml`` and
``data/calibration/framework_knobs.yaml``; ``costmodel.specs.assumptions`` checks the shipped
values when it loads them and every override in ``Assumptions`` (which the CLI, the scalar APIs,
the planner and the UI all go through).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import costmodel
from costmodel.specs.assumptions import (
    AssumptionError,
    Assumptions,
    Knob,
    _framework_file,
    _load_knobs,
    frameworks,
)
from hardware_catalog.paths import data_dir

FILES = ("assumptions.yaml", "frameworks.yaml", "calibration/framework_knobs.yaml")


# ---- the ranges straight from the YAML files -----------------------------------------------

@lru_cache(maxsize=None)
def _entries(rel: str) -> list[tuple[str, str, dict]]:
    """(where, knob, raw entry) for every knob entry of one data file."""
    path = data_dir() / rel
    if not path.exists():
        return []
    raw = yaml.safe_load(path.read_text()) or {}
    if rel == "assumptions.yaml":
        return [(rel, name, body) for name, body in raw.items()]
    return [(f"{rel}:{fw}", name, body)
            for fw, fbody in raw.items() for name, body in ((fbody or {}).get("knobs") or {}).items()]


def _all_entries() -> list[tuple[str, str, dict]]:
    return [e for rel in FILES for e in _entries(rel)]


@lru_cache(maxsize=None)
def _resolved(framework: str) -> Assumptions:
    return Assumptions(framework)


def _inside(body: dict, v: float) -> bool:
    """An independent reading of a raw YAML range: is ``v`` allowed?"""
    lo, hi = float(body["min"]), float(body["max"])
    if not math.isfinite(v):
        return False
    if (v <= lo) if body.get("min_exclusive") else (v < lo):
        return False
    if (v >= hi) if body.get("max_exclusive") else (v > hi):
        return False
    return not (body.get("integer") and not float(v).is_integer())


@lru_cache(maxsize=None)
def _ranges(framework: str) -> dict[str, dict]:
    """knob -> raw range fields in effect for ``framework`` (global, profile, fitted on top)."""
    out = {name: body for _, name, body in _entries("assumptions.yaml")}
    for rel in FILES[1:]:
        for where, name, body in _entries(rel):
            if where.split(":", 1)[1] == framework:
                out[name] = body
    return out


# ---- 1. every knob has a range and its shipped value lies inside ----------------------------

def test_every_yaml_knob_states_a_range():
    entries = _all_entries()
    assert len(entries) > 20
    missing = [f"{w}: {n}" for w, n, b in entries if "min" not in b or "max" not in b]
    assert not missing, f"knobs without min/max: {missing}"
    for where, name, body in entries:
        lo, hi = body["min"], body["max"]
        assert isinstance(lo, (int, float)) and isinstance(hi, (int, float)), (where, name)
        assert math.isfinite(lo) and math.isfinite(hi) and lo < hi, (where, name, lo, hi)
        assert set(body) <= {"value", "unit", "source", "description", "min", "max",
                             "min_exclusive", "max_exclusive", "integer"}, (where, name)


@pytest.mark.parametrize(("where", "name", "body"), _all_entries(),
                         ids=[f"{w}-{n}" for w, n, _ in _all_entries()])
def test_shipped_value_is_inside_its_range(where, name, body):
    assert _inside(body, float(body["value"])), f"{where}: {name} = {body['value']} outside its range"


def test_same_knob_same_range_everywhere():
    """A knob means the same thing in every profile, so its range does not change between files."""
    seen: dict[str, tuple] = {}
    for where, name, body in _all_entries():
        key = (float(body["min"]), float(body["max"]), bool(body.get("min_exclusive")),
               bool(body.get("max_exclusive")), bool(body.get("integer")))
        assert seen.setdefault(name, key) == key, f"{where}: {name} range {key} differs from {seen[name]}"


def test_physical_kinds_of_range():
    """Overlap shares and fractions of a whole lie in [0, 1]; counts are whole; PUE is >= 1."""
    for where, name, body in _all_entries():
        if name.endswith(("_overlap", "_prefetch")) or name.startswith("overlap_") \
                or name in {"selective_keep_fraction", "fragmentation_fraction",
                            "power_utilization_fraction", "serving_memory_utilization",
                            "goodput_fraction"}:
            assert float(body["min"]) == 0 and float(body["max"]) == 1, (where, name)
        if body.get("unit") in {"count", "tokens"}:
            assert body.get("integer") is True, (where, name)
        if body.get("unit") in {"bytes", "s", "bytes/element", "count"}:
            assert float(body["min"]) >= 0, (where, name)
    assert _resolved("nemo").knobs["pue"].min == 1


@pytest.mark.parametrize("framework", sorted(frameworks()))
def test_resolved_profiles_carry_ranges(framework):
    a = _resolved(framework)
    for name, knob in a.knobs.items():
        assert knob.contains(knob.value), (framework, name)
    records = a.as_records()
    assert {r["name"] for r in records} == set(a.knobs)
    for r in records:
        assert {"name", "value", "unit", "min", "max", "range", "source"} <= set(r)
        assert r["min"] <= r["value"] <= r["max"]
        assert r["range"].startswith(("[", "("))


def test_test_knobs_perturbations_lie_inside_the_ranges():
    """tests/test_knobs.py doubles, halves or flips every knob; those values must be accepted."""
    import test_knobs as tk

    for fw, knob, value in tk._cases():
        new = tk.SENSITIVE[knob].perturb(value)
        assert knob in Assumptions(fw, {knob: new}).knobs, (fw, knob, new)
    # test_knob_moves_planner's values and test_engine_contract's KNOB_CHOICES
    for knob, new in (("gemm_kernel_overhead_s", 1e-4), ("pue", 2.4), ("cuda_context_bytes", 2 * 1408237568),
                      ("checkpoints_retained", 4), ("gemm_kernel_overhead_s", 2e-5), ("pue", 1.5),
                      ("cuda_context_bytes", 2e9), ("checkpoints_retained", 5), ("fragmentation_fraction", 0.15)):
        Assumptions("nemo", {knob: new})
    for fw in frameworks():
        for knob in ("tp_comm_overlap", "cp_comm_overlap", "ep_comm_overlap", "pp_comm_overlap",
                     "overlap_grad_reduce", "overlap_param_gather", "zero3_prefetch"):
            Assumptions(fw, {knob: 0.0})
            Assumptions(fw, {knob: 1.0})


# ---- 2. overrides: accepted inside the range, AssumptionError naming the knob outside -------

def _knob_names() -> list[str]:
    return sorted(_resolved("nemo").knobs | _resolved("torchtitan").knobs)


VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2.0, max_value=5.0),
    st.integers(min_value=-10, max_value=5000),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-300, -1e-300, 1e300, 1e12, 4096, 4097,
                     16.5, math.nan, math.inf, -math.inf]),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(framework=st.sampled_from(sorted(frameworks())), name=st.sampled_from(_knob_names()),
       value=VALUES)
def test_override_is_accepted_inside_and_rejected_outside(framework, name, value):
    ranges = _ranges(framework)
    if name not in ranges:  # a framework-only knob this profile lacks
        with pytest.raises(AssumptionError, match=name):
            Assumptions(framework, {name: value})
        return
    try:
        a = Assumptions(framework, {name: value})
    except AssumptionError as exc:
        msg = str(exc)
        assert not _inside(ranges[name], float(value)), f"{name} = {value!r} rejected: {msg}"
        assert msg.startswith(f"{name} = "), msg
        assert a_range(ranges[name]) in msg, msg
    else:
        v = a[name]
        assert _inside(ranges[name], v), f"{name} = {value!r} accepted outside its range"
        assert v == float(value)
        assert a.knobs[name].source == "user override"


def a_range(body: dict) -> str:
    """Interval notation of a raw range, as the error messages print it."""
    return (f"{'(' if body.get('min_exclusive') else '['}{float(body['min']):.12g}, "
            f"{float(body['max']):.12g}{')' if body.get('max_exclusive') else ']'}")


@pytest.mark.parametrize(("name", "value", "expect"), [
    ("tp_comm_overlap", 2, "tp_comm_overlap = 2.0 is outside its range [0, 1] (fraction)"),
    ("tp_comm_overlap", -0.1, "tp_comm_overlap = -0.1 is outside its range [0, 1]"),
    ("checkpoints_retained", -1, "checkpoints_retained = -1.0 is outside its range [0, 10000]"),
    ("checkpoints_retained", 2.5, "checkpoints_retained = 2.5 is not a whole number"),
    ("pue", math.nan, "pue = nan is not a finite number; its range is [1, 3]"),
    ("pue", math.inf, "pue = inf is not a finite number"),
    ("pue", 0.9, "pue = 0.9 is outside its range [1, 3]"),
    ("pue", "abc", "pue = 'abc' is not a number"),
    ("pue", None, "pue = None is not a number"),
    ("pue", True, "pue = True is not a number"),
    ("pue", [1.2], "pue = [1.2] is not a number"),
    ("serving_memory_utilization", 0.0, "serving_memory_utilization = 0.0 is outside its range (0, 1]"),
    ("serving_kv_block_tokens", 0, "serving_kv_block_tokens = 0.0 is outside its range [1, 4096]"),
    ("serving_kv_block_tokens", 16.5, "serving_kv_block_tokens = 16.5 is not a whole number"),
    ("serving_prefill_chunk_tokens", 0.5, "serving_prefill_chunk_tokens = 0.5 is outside"),
    ("matmul_efficiency_scale", 0.0, "matmul_efficiency_scale = 0.0 is outside its range (0, 2]"),
    ("serving_step_overhead_s", -1e-3, "serving_step_overhead_s = -0.001 is outside"),
])
def test_override_messages(name, value, expect):
    with pytest.raises(AssumptionError) as info:
        Assumptions("nemo", {name: value})
    assert expect in str(info.value)


def test_all_bad_overrides_are_reported_together():
    with pytest.raises(AssumptionError) as info:
        Assumptions("nemo", {"pue": math.nan, "tp_comm_overlap": 2.0, "cuda_context_bytes": 0})
    msg = str(info.value)
    assert "pue = nan" in msg and "tp_comm_overlap = 2.0" in msg and "cuda_context_bytes" not in msg


def test_in_range_edges_and_numeric_strings_are_accepted():
    a = Assumptions("nemo", {"tp_comm_overlap": 0, "pue": 3, "serving_kv_block_tokens": 4096.0,
                             "serving_memory_utilization": 1.0, "checkpoints_retained": "3"})
    assert a["tp_comm_overlap"] == 0.0 and a["pue"] == 3.0 and a["checkpoints_retained"] == 3.0
    assert a.knobs["pue"].source == "user override"


# ---- 3. the YAML loader ---------------------------------------------------------------------

def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = "value: 0.5\n  min: 0\n  max: 1\n  unit: fraction\n  source: test\n"


def test_loader_accepts_a_good_file(tmp_path):
    knobs = _load_knobs(_write(tmp_path, "a.yaml", "k:\n  " + GOOD))
    assert knobs["k"].value == 0.5 and knobs["k"].range_text() == "[0, 1]"


@pytest.mark.parametrize(("body", "needle"), [
    ("value: 2.0\n  min: 0\n  max: 1\n  unit: fraction\n  source: t\n", "value 2.0 is outside its range [0, 1]"),
    ("value: .nan\n  min: 0\n  max: 1\n  unit: fraction\n  source: t\n", "value nan is not a finite number"),
    ("value: .inf\n  min: 0\n  max: 1\n  unit: fraction\n  source: t\n", "is not a finite number"),
    ("value: -1\n  min: 0\n  max: 9\n  unit: count\n  integer: true\n  source: t\n", "outside its range [0, 9]"),
    ("value: 1.5\n  min: 0\n  max: 9\n  unit: count\n  integer: true\n  source: t\n", "not a whole number"),
    ("value: 0\n  min: 0\n  max: 1\n  min_exclusive: true\n  unit: fraction\n  source: t\n", "outside its range (0, 1]"),
    ("value: 0.5\n  unit: fraction\n  source: t\n", "has no range"),
    ("value: 0.5\n  min: 0\n  unit: fraction\n  source: t\n", "has no range: add max"),
    ("value: 0.5\n  min: 1\n  max: 0\n  unit: fraction\n  source: t\n", "range [1, 0] is empty"),
    ("value: 0.5\n  min: 0\n  max: .inf\n  unit: fraction\n  source: t\n", "finite bounds"),
    ("value: 0.5\n  min: 0\n  max: 1\n  maximum: 2\n  unit: fraction\n  source: t\n", "maximum"),
])
def test_loader_rejects_bad_entries(tmp_path, body, needle):
    path = _write(tmp_path, "bad.yaml", "my_knob:\n  " + body)
    with pytest.raises(AssumptionError) as info:
        _load_knobs(path)
    msg = str(info.value)
    assert str(path) in msg and "my_knob" in msg and needle in msg, msg


def test_framework_file_names_framework_and_knob(tmp_path):
    path = _write(tmp_path, "fw.yaml", "myfw:\n  knobs:\n    tp_comm_overlap:\n      value: 1.5\n"
                                       "      min: 0\n      max: 1\n      unit: fraction\n      source: t\n")
    with pytest.raises(AssumptionError) as info:
        _framework_file(path)
    msg = str(info.value)
    assert str(path) in msg and "'myfw'" in msg and "'tp_comm_overlap'" in msg and "[0, 1]" in msg


def test_fitted_entry_without_range_inherits_it(tmp_path):
    """`costmodel calibrate --write` writes value/unit/source only: the range comes from below."""
    fitted = ("torchtitan:\n  knobs:\n    matmul_efficiency_scale:\n      value: {v}\n"
              "      unit: fraction\n      source: fit\n")
    base = {"torchtitan": dict(_resolved("torchtitan").knobs)}
    ok = _framework_file(_write(tmp_path, "ok.yaml", fitted.format(v=0.7)), base)
    k = ok["torchtitan"]["knobs"]["matmul_efficiency_scale"]
    assert k.value == 0.7 and k.range_text() == "(0, 2]"
    with pytest.raises(AssumptionError, match=r"matmul_efficiency_scale.*outside its range \(0, 2\]"):
        _framework_file(_write(tmp_path, "bad.yaml", fitted.format(v=0.0)), base)


def test_knob_model_validates_directly():
    with pytest.raises(ValueError):
        Knob(value=2.0, unit="fraction", source="x", min=0, max=1)
    Knob(value=1.0, unit="fraction", source="x", min=0, max=1)


# ---- 4. every face ----------------------------------------------------------------------------

CLI_TRAIN = ["train", "llama-3.1-8b", "--accelerator", "h100-sxm5-80gb", "--train-tokens", "1e10",
             "--dp", "8"]


@pytest.mark.parametrize(("setting", "needle"), [
    ("tp_comm_overlap=2", "tp_comm_overlap = 2.0 is outside its range [0, 1] (fraction)"),
    ("pue=nan", "pue = nan is not a finite number"),
    ("checkpoints_retained=-2", "checkpoints_retained = -2.0 is outside its range [0, 10000]"),
    ("serving_kv_block_tokens=1.5", "serving_kv_block_tokens = 1.5 is not a whole number"),
])
def test_cli_rejects_out_of_range_set(capsys, setting, needle):
    from costmodel.faces.cli import main

    rc = main(CLI_TRAIN + ["--set", setting])
    out, err = capsys.readouterr()
    assert rc == 2
    assert needle in err
    assert "Traceback" not in err and "Traceback" not in out
    assert err.startswith("costmodel: error:")


def test_cli_accepts_in_range_set(capsys):
    from costmodel.faces.cli import main

    assert main(CLI_TRAIN + ["--set", "tp_comm_overlap=0.5", "--format", "json"]) in (0, None)
    capsys.readouterr()


def test_plan_rejects_nan_override():
    sc = costmodel.Scenario(model="gpt2", job=costmodel.Job(train_tokens=1e9),
                            overrides={"pue": float("nan")})
    with pytest.raises(ValueError, match=r"pue = nan is not a finite number"):
        costmodel.plan(sc)


def test_plan_rejects_overlap_above_one():
    """The original defect: an overlap of 2 gave a negative step time ranked first by cost."""
    sc = costmodel.Scenario(model="gpt2", job=costmodel.Job(train_tokens=1e9),
                            overrides={"tp_comm_overlap": 2.0})
    with pytest.raises(AssumptionError, match=r"tp_comm_overlap = 2.0 is outside its range \[0, 1\]"):
        costmodel.plan(sc)


def test_scalar_apis_reject_bad_overrides():
    from costmodel import ParallelLayout, TrainingSetup
    from costmodel.faces.serving_api import estimate_serving
    from costmodel.specs.serving import ServingSetup

    with pytest.raises(AssumptionError, match="checkpoints_retained = -1.0"):
        costmodel.estimate_training("llama-3.1-8b", "h100-sxm5-80gb", ParallelLayout(dp=8),
                                    TrainingSetup(global_batch=16, seq_len=4096), train_tokens=1e10,
                                    overrides={"checkpoints_retained": -1})
    with pytest.raises(AssumptionError, match="serving_memory_utilization = 1.5"):
        estimate_serving("llama-3.1-8b", "h100-sxm5-80gb",
                         setup=ServingSetup(batch=8, input_len=100, output_len=10),
                         overrides={"serving_memory_utilization": 1.5})
