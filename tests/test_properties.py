"""Property-based tests (hypothesis) at the boundaries the one engine added or widened: the column
builder, the job's setup fields, ``evaluate_frame`` rows and ``train_tokens``. Bad input is an error
that names the field; good input never yields NaN or a negative figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import costmodel
from costmodel import Job, ParallelLayout, Scenario, SearchSpace, TrainingSetup
from costmodel.specs.codes import OPTIMIZERS, PRECISIONS, RANK_ORDERS
from costmodel.specs.scenario import ScenarioError
from costmodel.specs.setup import TrainingColumns, build_training_columns, training_columns

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

layouts = st.builds(
    lambda tp, pp, v, dp, cp, z, order: ParallelLayout(
        tp=tp, pp=pp, vpp=v if pp > 1 else 1, dp=dp, cp=cp, zero_stage=z, sequence_parallel=tp > 1,
        rank_order=order),
    st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4]), st.sampled_from([1, 2]),
    st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2]), st.sampled_from([0, 1, 2, 3]),
    st.sampled_from(RANK_ORDERS))
setups = st.builds(
    lambda p, o, bits, g, r, mb, s, flash, drop, causal: TrainingSetup(
        precision=p, optimizer=o, optimizer_state_bits=bits, gradient_precision=g, recompute=r,
        micro_batch=mb, seq_len=s, flash_attention=flash, dropout=drop, causal_discount=causal),
    st.sampled_from(PRECISIONS), st.sampled_from(OPTIMIZERS), st.sampled_from([8, 16, 32]),
    st.sampled_from(["param", "fp32"]), st.sampled_from(["none", "selective", "full"]),
    st.sampled_from([1, 2, 4]), st.sampled_from([128, 1024, 4096]), st.booleans(), st.booleans(),
    st.booleans())


@FAST
@given(st.lists(st.tuples(layouts, setups), min_size=1, max_size=6))
def test_column_builder_gives_each_row_what_it_gives_that_row_alone(pairs):
    """A grid of rows equals its rows built one at a time, field by field."""
    one_by_one = TrainingColumns.stack([training_columns(lay, s) for lay, s in pairs])
    from costmodel.specs.setup import layout_codes, micro_batches, setup_codes

    coded = [{**layout_codes(lay), **setup_codes(s), "n_micro": micro_batches(lay, s)} for lay, s in pairs]
    together = build_training_columns({k: np.array([c[k] for c in coded]) for k in coded[0]})
    for name in TrainingColumns.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(together, name), getattr(one_by_one, name), err_msg=name)
    assert np.all(together.weight_bits > 0) and np.all(together.optimizer_state_bytes >= 0)


@FAST
@given(bits=st.sampled_from([8, 16, 32]), grad=st.sampled_from(["param", "fp32"]),
       flash=st.booleans(), dropout=st.booleans(), causal=st.booleans(),
       optimizer=st.sampled_from(OPTIMIZERS), price=st.floats(0.5, 20.0))
def test_plans_with_any_job_setup_are_finite_and_positive(bits, grad, flash, dropout, causal, optimizer, price):
    sc = Scenario(
        model="gpt2",
        job=Job(train_tokens=1e9, seq_len=1024, global_batch=16, optimizer_state_bits=bits,
                gradient_precision=grad, flash_attention=flash, dropout=dropout, causal_discount=causal,
                optimizer=optimizer),
        search=SearchSpace(accelerators=["h100-sxm5-80gb"], device_counts=[1, 8], tp=[1, 2], pp=[1],
                           vpp=[1], cp=[1], zero_stage=[1], recompute=["none"], micro_batch=[1, 2],
                           precision=["bf16"]),
        price_overrides=[{"provider": "Lambda", "offer": "gpu_8x_h100_sxm5", "region": "global",
                          "pricing_model": "on-demand", "usd_per_device_hour": price}])
    plans = costmodel.plan(sc, top=10).plans
    assert not plans.empty
    # the sampled price range is NaN by design where none was sampled (on-demand offers)
    numeric = plans.select_dtypes("number").drop(columns=["plan_id", "usd_per_device_hour_low",
                                                          "usd_per_device_hour_high"])
    assert np.isfinite(numeric.to_numpy(dtype=float)).all()
    assert (numeric.to_numpy(dtype=float) >= 0).all()


BAD_CELLS = st.sampled_from([
    ("tp", 0), ("tp", -2), ("tp", 2.5), ("pp", "two"), ("precision", "fp12"), ("optimizer", "adamz"),
    ("optimizer_state_bits", 7), ("gradient_precision", "fp64"), ("recompute", "some"),
    ("micro_batch", 0), ("seq_len", -1), ("zero_stage", 4), ("rank_order", "tp-dp"),
    ("global_batch", 3), ("framework", "nosuch"), ("accelerator", "no-such-part"),
])


@FAST
@given(bad=BAD_CELLS, row=st.integers(0, 2))
def test_a_bad_dataframe_cell_names_its_row_and_field(bad, row):
    column, value = bad
    rows = [{"model": "gpt2", "accelerator": "h100-sxm5-80gb", "dp": 2, "global_batch": 4} for _ in range(3)]
    rows[row][column] = value
    with pytest.raises(Exception) as info:
        costmodel.evaluate_frame(pd.DataFrame(rows))
    assert isinstance(info.value, (ValueError, KeyError)), type(info.value)
    message = str(info.value)
    if column not in ("framework",):  # the framework is checked for all rows at once
        assert f"row {row}" in message, message
    assert column.split("_")[0] in message or column in ("accelerator",) or "global_batch" in message, message


@FAST
@given(st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, -float("inf")]))
def test_train_tokens_must_be_finite_and_positive(tokens):
    with pytest.raises(ValueError, match="train_tokens"):
        costmodel.estimate_training("gpt2", "h100-sxm5-80gb", train_tokens=tokens)


@FAST
@given(field=st.sampled_from(["optimizer_state_bits", "gradient_precision", "flash_attention",
                              "dropout", "master_weights", "causal_discount", "vocab_head"]),
       value=st.one_of(st.integers(-3, 64), st.text(max_size=5), st.floats(allow_nan=True)))
def test_job_setup_fields_reject_what_they_do_not_allow(field, value):
    """A scenario file's job fields: an allowed value loads, anything else is a ScenarioError that
    names the field (never another exception)."""
    data = {"model": "gpt2", "job": {"train_tokens": 1e9, field: value}}
    try:
        sc = Scenario.from_dict(data)
    except ScenarioError as exc:
        assert field in str(exc)
    else:
        got = getattr(sc.job, field)
        allowed = {"optimizer_state_bits": {8, 16, 32}, "gradient_precision": {"param", "fp32"}}
        if field in allowed:
            assert got in allowed[field]
        else:
            assert isinstance(got, bool) or got is None
            assert not (isinstance(value, float) and math.isnan(value))


# Serving boundaries --------------------------------------------------------------------------

#: field -> (lower bound, lower bound allowed, upper bound) as ServingLoad declares them.
LOAD_FIELDS = {"requests_per_s": (0, False, math.inf), "input_len": (1, True, math.inf),
               "output_len": (1, True, math.inf), "peak_to_mean": (1, True, math.inf),
               "ttft_p95_s": (0, False, math.inf), "tpot_p95_s": (0, False, math.inf),
               "e2e_p95_s": (0, False, math.inf), "max_utilization": (0, False, 1.0)}


@FAST
@given(field=st.sampled_from(sorted(LOAD_FIELDS)),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10),
                       st.text(max_size=4)))
def test_serving_load_fields_reject_what_they_do_not_allow(field, value):
    """A scenario's serving load: a value in range loads; NaN, inf, out of range or text is a
    ScenarioError naming the field (never another exception, never a silent clamp)."""
    base = {"requests_per_s": 1.0, "input_len": 100, "output_len": 100}
    data = {"model": "gpt2", "job": {"kind": "serve", "load": {**base, field: value}}}
    try:
        sc = Scenario.from_dict(data)
    except ScenarioError as exc:
        assert field in str(exc)
    else:
        got = float(getattr(sc.job.load, field))
        lo, closed, hi = LOAD_FIELDS[field]
        assert math.isfinite(got) and (got >= lo if closed else got > lo) and got <= hi
        assert got == float(value)  # taken as given, never clamped


@FAST
@given(st.lists(st.one_of(st.floats(min_value=-5, max_value=50),
                          st.sampled_from([math.nan, math.inf, -math.inf])), min_size=0, max_size=30))
def test_hourly_profile_needs_24_finite_non_negative_values(values):
    data = {"model": "gpt2", "job": {"kind": "serve", "load": {
        "requests_per_s": 1.0, "input_len": 100, "output_len": 100, "hourly_profile": values}}}
    good = (len(values) == 24 and all(math.isfinite(v) and v >= 0 for v in values) and sum(values) > 0)
    try:
        sc = Scenario.from_dict(data)
    except ScenarioError as exc:
        assert "hourly_profile" in str(exc) and not good
    else:
        assert good
        assert sum(sc.job.load.hourly_profile) == pytest.approx(24.0)  # normalised to a mean of 1


SERVE_FLAGS = st.sampled_from([
    ("--tp", "0"), ("--tp", "3"), ("--ep", "2"), ("--batch", "0"), ("--precision", "fp12"),
    ("--kv-bits", "2"), ("--sparsity", "3:4"), ("--group-size", "0"), ("--input-len", "0"), ("--output-len", "-5"), ("--rps", "nan"),
    ("--rps", "-1"), ("--ttft-p95-s", "0"), ("--max-utilization", "1.5"), ("--hourly-profile", "1,2"),
    ("--accelerator", "no-such-part"),
])


@FAST
@given(flag=SERVE_FLAGS)
def test_costmodel_serve_bad_flags_exit_2_with_a_message(flag):
    import contextlib
    import io

    from costmodel.faces.cli import main as cli_main

    args = {"--accelerator": "h100-sxm5-80gb", "--input-len": "100", "--output-len": "50",
            "--rps": "2", "--tp": "1"}
    args[flag[0]] = flag[1]
    argv = ["serve", "llama-3.1-8b"] + [x for kv in args.items() for x in kv]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse type errors
            code = exc.code
    assert code == 2, (argv, err.getvalue())
    text = err.getvalue().lower()
    assert "traceback" not in text and text.strip(), argv
