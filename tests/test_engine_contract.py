"""One engine: every face gives the same figure, and the defects of the old split engine stay fixed.

The oracle draws several hundred random training configurations (every preset, layouts, number
formats, optimizers, optimizer-state bits, gradient precision, framework profiles and knob
overrides) and evaluates each through ``estimate_training`` (scalar API), ``evaluate_frame``
(DataFrame API, all rows in one pass), a one-configuration ``plan`` (the planner's grid) and
``costmodel train --format json`` (CLI). Memory, step time, run time and cost must agree to 1e-9.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import costmodel
from costmodel import Job, ParallelLayout, Scenario, SearchSpace, TrainingSetup
from costmodel.faces.cli import main as cli_main
from costmodel.specs.assumptions import frameworks
from costmodel.specs.layout import layout_problems
from costmodel.specs.scenario import Constraints
from costmodel.tables.catalog import engine_catalog

ACCELERATORS = ["h100-sxm5-80gb", "h200-sxm-141gb", "mi300x-192gb", "b200-sxm-180gb", "a100-sxm4-80gb",
                "tpu-v5p"]
KNOB_CHOICES = {"gemm_kernel_overhead_s": (2e-6, 2e-5), "pue": (1.1, 1.5),
                "cuda_context_bytes": (0.0, 2e9), "checkpoints_retained": (1.0, 5.0),
                "fragmentation_fraction": (0.0, 0.15)}
REL = 1e-9


def _accelerators():
    ids = set(engine_catalog().accelerator_ids)
    return [a for a in ACCELERATORS if a in ids]


def _draw(rng, presets):
    """One random configuration (may be infeasible; the caller filters)."""
    spec = costmodel.preset(presets[rng.integers(len(presets))])
    tp = int(rng.choice([1, 2, 4, 8]))
    pp = int(rng.choice([1, 2, 4]))
    vpp = int(rng.choice([1, 2])) if pp > 1 else 1
    cp = int(rng.choice([1, 2]))
    dp = int(rng.choice([1, 2, 4, 8]))
    ep = int(rng.choice([e for e in (1, 2, 4, 8) if (dp * cp) % e == 0])) if spec.is_moe else 1
    layout = ParallelLayout(tp=tp, pp=pp, vpp=vpp, dp=dp, cp=cp, ep=ep, sequence_parallel=True,
                            zero_stage=int(rng.integers(4)))
    mb = int(rng.choice([1, 2]))
    setup = TrainingSetup(
        precision=str(rng.choice(["bf16", "fp16", "fp8", "fp32", "tf32"], p=[.4, .15, .25, .1, .1])),
        optimizer=str(rng.choice(["adamw", "adam", "sgd", "momentum", "lion", "adafactor"])),
        optimizer_state_bits=int(rng.choice([32, 16, 8])),
        gradient_precision=str(rng.choice(["param", "fp32"])),
        recompute=str(rng.choice(["none", "selective", "full"])),
        micro_batch=mb, seq_len=int(rng.choice([1024, 2048, 4096])),
        global_batch=mb * dp * int(rng.choice([1, 2, 8])),
        flash_attention=bool(rng.random() < 0.8), dropout=bool(rng.random() < 0.2),
    )
    knobs = {k: float(rng.choice(v)) for k, v in KNOB_CHOICES.items() if rng.random() < 0.4}
    framework = str(rng.choice(sorted(frameworks())))
    acc = str(rng.choice(_accelerators()))
    return spec, layout, setup, framework, knobs, acc, float(rng.choice([1e9, 3e10, 2e12]))


def _configurations(n: int, seed: int = 2026):
    """``n`` configurations that fit, have a number format on their part and an offer."""
    rng = np.random.default_rng(seed)
    presets = list(costmodel.presets())
    out, seen_presets = [], set()
    while len(out) < n:
        spec, layout, setup, fw, knobs, acc, tokens = _draw(rng, presets)
        if layout_problems(spec, layout):
            continue
        try:
            est = costmodel.estimate_training(spec, acc, layout, setup, train_tokens=tokens,
                                              framework=fw, overrides=knobs)
        except ValueError:  # format the part lacks: a reason, tested below
            continue
        if est.cost_total_usd is None or not est.fits_in_memory:
            continue
        out.append((spec, layout, setup, fw, knobs, acc, tokens, est))
        seen_presets.add(spec.name)
    return out, seen_presets


@pytest.fixture(scope="module")
def oracle_configs():
    return _configurations(240)


def _close(a, b, what):
    assert math.isclose(float(a), float(b), rel_tol=REL, abs_tol=1e-12), (what, a, b)


def test_oracle_covers_every_preset_and_several_formats(oracle_configs):
    configs, seen = oracle_configs
    assert len(configs) == 240
    assert len(seen) >= 10, seen  # the feasible draws cover most presets (small ones fit more often)
    assert {c[2].precision for c in configs} >= {"bf16", "fp8", "fp16"}
    assert {c[2].optimizer_state_bits for c in configs} == {8, 16, 32}


def test_oracle_scalar_api_equals_dataframe_api(oracle_configs):
    """``evaluate_frame`` over all rows in one pass equals one ``estimate_training`` per row."""
    configs, _ = oracle_configs
    frame = pd.DataFrame([{
        "model": spec, "accelerator": acc, **layout.model_dump(), **setup.model_dump(),
        "framework": fw, "overrides": knobs, "train_tokens": tokens,
    } for spec, layout, setup, fw, knobs, acc, tokens, _ in configs])
    res = costmodel.evaluate_frame(frame)
    for i, (*_, est) in enumerate(configs):
        row = res.iloc[i]
        _close(row["memory_per_device_gib"] * 2**30, est.memory_per_device_bytes, f"memory {i}")
        _close(row["step_time_s"], est.step_time_s, f"step {i}")
        _close(row["time_total_hours"], est.time_total_hours, f"time {i}")
        _close(row["cost_total_usd"], est.cost_total_usd, f"cost {i}")
        assert row["priced_offer"] == est.offer


def _one_config_scenario(spec, layout, setup, fw, knobs, acc, tokens):
    return Scenario(
        model=spec, objective="cost", overrides=knobs,
        job=Job(train_tokens=tokens, seq_len=setup.seq_len, global_batch=setup.global_batch,
                optimizer=setup.optimizer, optimizer_state_bits=setup.optimizer_state_bits,
                gradient_precision=setup.gradient_precision, master_weights=setup.master_weights,
                flash_attention=setup.flash_attention, dropout=setup.dropout, framework=fw),
        # The oracle compares figures, so the planner's own limits (default deadline and memory
        # headroom) are lifted: every configuration the scalar API prices must appear in the plan.
        constraints=Constraints(pricing_models=["on-demand"], deadline_days=None, min_memory_headroom=0.0),
        search=SearchSpace(accelerators=[acc], device_counts=[layout.n_devices], tp=[layout.tp],
                           pp=[layout.pp], vpp=[layout.vpp], cp=[layout.cp], ep=[layout.ep],
                           zero_stage=[layout.zero_stage], recompute=[setup.recompute],
                           micro_batch=[setup.micro_batch], precision=[setup.precision],
                           sequence_parallel=layout.sequence_parallel, rank_order=layout.rank_order))


def test_oracle_scalar_api_equals_one_configuration_plan(oracle_configs):
    """The planner's grid, given exactly one configuration, prices it like the scalar API: the
    same figures for the same offer, and its cheapest plan on that system is the same offer."""
    configs, _ = oracle_configs
    for i, (spec, layout, setup, fw, knobs, acc, tokens, est) in enumerate(configs[:120]):
        result = costmodel.plan(_one_config_scenario(spec, layout, setup, fw, knobs, acc, tokens), top=500)
        same_system = result.plans[result.plans["system"] == est.system]
        best = same_system.iloc[0]
        assert f"{best['provider']} {best['offer']} ({best['region']}, {best['pricing_model']})" == est.offer
        _close(best["memory_per_device_gib"] * 2**30, est.memory_per_device_bytes, f"memory {i}")
        _close(best["step_time_s"], est.step_time_s, f"step {i}")
        _close(best["time_total_hours"], est.time_total_hours, f"time {i}")
        _close(best["cost_total_usd"], est.cost_total_usd, f"cost {i}")


def _cli_args(spec, layout, setup, fw, knobs, acc, tokens):
    args = ["train", spec.name, "--accelerator", acc, "--train-tokens", repr(tokens),
            "--tp", str(layout.tp), "--pp", str(layout.pp), "--vpp", str(layout.vpp),
            "--dp", str(layout.dp), "--cp", str(layout.cp), "--ep", str(layout.ep),
            "--zero", str(layout.zero_stage), "--precision", setup.precision,
            "--optimizer", setup.optimizer, "--optimizer-state-bits", str(setup.optimizer_state_bits),
            "--grad-precision", setup.gradient_precision, "--recompute", setup.recompute,
            "--micro-batch", str(setup.micro_batch), "--seq-len", str(setup.seq_len),
            "--global-batch", str(setup.global_batch), "--framework", fw, "--format", "json"]
    args += ["--sp"] if layout.sequence_parallel else []
    args += [] if setup.flash_attention else ["--no-flash"]
    args += ["--dropout"] if setup.dropout else []
    for k, v in knobs.items():
        args += ["--set", f"{k}={v!r}"]
    return args


def test_oracle_scalar_api_equals_cli(oracle_configs, capsys):
    configs, _ = oracle_configs
    for i, (spec, layout, setup, fw, knobs, acc, tokens, est) in enumerate(configs[:80]):
        if spec.name not in costmodel.presets():
            continue
        assert cli_main(_cli_args(spec, layout, setup, fw, knobs, acc, tokens)) == 0
        got = json.loads(capsys.readouterr().out)
        for key in ("memory_per_device_bytes", "step_time_s", "time_total_hours", "cost_total_usd"):
            _close(got[key], getattr(est, key), f"{key} {i}")
        assert got["offer"] == est.offer


# Regressions of the defects the one engine closes -----------------------------------------------

SINGLE = dict(accelerators=["h100-sxm5-80gb"], device_counts=[8], tp=[2], pp=[1], vpp=[1], cp=[1],
              ep=[1], zero_stage=[1], recompute=["none"], micro_batch=[1], precision=["bf16"])


@pytest.mark.parametrize("field,value,column", [
    ("optimizer_state_bits", 8, "memory_optimizer_states_bytes"),
    ("gradient_precision", "fp32", "memory_gradients_bytes"),
    ("master_weights", False, "memory_master_weights_bytes"),
    ("flash_attention", False, "memory_activations_bytes"),
    ("dropout", True, "memory_activations_bytes"),
    ("causal_discount", False, "mfu"),
])
def test_plan_honours_every_setup_field(field, value, column):
    """The grid used to fix these setup fields (a plan could not express 8-bit Adam): now the
    planner's figure equals the scalar API's with the same setting and differs from the default."""
    def top(**job):
        sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e10, seq_len=2048, global_batch=16, **job),
                      search=SearchSpace(**SINGLE))
        return costmodel.plan(sc, top=50).plans.iloc[0]
    changed, default = top(**{field: value}), top()
    assert changed[column] != pytest.approx(default[column], rel=1e-6)
    est = costmodel.estimate_training(
        "llama-3.1-8b", "h100-sxm5-80gb", ParallelLayout(tp=2, dp=4, zero_stage=1, sequence_parallel=True),
        TrainingSetup(seq_len=2048, global_batch=16, **{field: value}), train_tokens=1e10,
        system=changed["system"], offer=changed["offer"])
    if column == "mfu":
        assert changed[column] == pytest.approx(est.mfu, rel=1e-12)
    else:
        part = column.removeprefix("memory_").removesuffix("_bytes")
        assert changed[column] == pytest.approx(est.memory_breakdown_bytes[part], rel=1e-12)


def test_eight_bit_adam_quarters_the_optimizer_state():
    """8-bit Adam (Dettmers et al. 2022): two states of 1 byte instead of 4 per parameter.
    llama-3.1-8b, ZeRO-1 over dp=4, tp=2: the stage's states shrink by exactly 4x."""
    def states(bits):
        sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e10, seq_len=2048, global_batch=16,
                                                    optimizer_state_bits=bits), search=SearchSpace(**SINGLE))
        return costmodel.plan(sc, top=1).plans.iloc[0]["memory_optimizer_states_bytes"]
    assert states(32) == pytest.approx(4 * states(8), rel=1e-12)


def test_half_an_instance_is_billed_as_a_whole_instance_by_every_face():
    """4 devices on CoreWeave's 8-GPU HGX H100 instance: the provider bills 8 devices."""
    offer = "HGX H100 (8x H100 SXM)"
    layout = ParallelLayout(tp=4, sequence_parallel=True)
    setup = TrainingSetup(seq_len=2048, global_batch=4)
    est = costmodel.estimate_training("llama-3.1-8b", "h100-sxm5-80gb", layout, setup,
                                      train_tokens=1e9, offer=offer)
    assert est.instances == 1 and est.devices_per_instance == 8
    assert est.billed_device_hours == pytest.approx(2 * est.device_hours, rel=1e-12)
    assert est.cost_compute_usd == pytest.approx(8 * est.usd_per_device_hour * est.time_total_hours, rel=1e-12)
    assert "4 idle" in est.billing
    frame = costmodel.evaluate_frame(pd.DataFrame([{
        "model": "llama-3.1-8b", "accelerator": "h100-sxm5-80gb", "tp": 4, "sequence_parallel": True, "seq_len": 2048,
        "global_batch": 4, "train_tokens": 1e9, "offer": offer}]))
    assert frame["cost_total_usd"].iloc[0] == pytest.approx(est.cost_total_usd, rel=1e-12)
    assert frame["instances"].iloc[0] == 1
    sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e9, seq_len=2048, global_batch=4),
                  constraints=Constraints(providers=["CoreWeave"]),
                  search=SearchSpace(accelerators=["h100-sxm5-80gb"], device_counts=[4], tp=[4], pp=[1],
                                     vpp=[1], cp=[1], zero_stage=[0], recompute=["none"],
                                     micro_batch=[1], precision=["bf16"]))
    row = costmodel.plan(sc, top=5).plans.iloc[0]
    assert row["instances"] == 1 and row["billed_device_hours"] == pytest.approx(2 * row["device_hours"])
    assert row["cost_total_usd"] == pytest.approx(est.cost_total_usd, rel=1e-12)


def test_cheapest_offer_is_the_lowest_bill_not_the_lowest_rate():
    """One B200 for a run: Lambda's 8-GPU instance has the lowest rate per device-hour ($6.69)
    but bills 8 devices; its 1-GPU instance ($6.99) is the lowest bill."""
    est = costmodel.estimate_training("gpt2", "b200-sxm-180gb", ParallelLayout(),
                                      TrainingSetup(seq_len=1024, global_batch=8, micro_batch=8),
                                      train_tokens=1e9)
    assert est.devices_per_instance == 1 and est.usd_per_device_hour == pytest.approx(6.99)
    assert est.cost_compute_usd == pytest.approx(6.99 * est.time_total_hours, rel=1e-12)


def test_no_offer_means_explained_empty_cost_not_nan():
    """A100 80GB HGX has no on-demand offer in the catalog: cost fields are empty with a note."""
    layout, setup = ParallelLayout(dp=8), TrainingSetup(seq_len=2048)
    est = costmodel.estimate_training("gpt2", "a100-sxm4-80gb", layout, setup, train_tokens=1e9,
                                      system="hgx-a100-80gb-8")
    assert est.cost_total_usd is None and "no on-demand offer" in est.cost_note
    assert est.time_total_hours > 0
    frame = costmodel.evaluate_frame(pd.DataFrame([
        {"model": "gpt2", "accelerator": "a100-sxm4-80gb", "system": "hgx-a100-80gb-8", "dp": 8,
         "train_tokens": 1e9},
        {"model": "gpt2", "accelerator": "h100-sxm5-80gb", "dp": 8, "train_tokens": 1e9}]))
    assert pd.isna(frame["cost_total_usd"].iloc[0]) and "no on-demand offer" in frame["cost_note"].iloc[0]
    assert frame["cost_total_usd"].iloc[1] > 0 and pd.isna(frame["cost_note"].iloc[1])
    assert str(frame["cost_total_usd"].dtype) == "Float64"  # missing is <NA>, never a float NaN


def test_a_format_the_part_lacks_is_a_reason_not_a_crash():
    """fp8 on an A100 (no fp8 tensor cores): the planner counts the reason; the scalar API
    says which formats the part has."""
    sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e10),
                  constraints=Constraints(pricing_models=["on-demand", "spot", "commit-1y", "commit-3y"]),
                  search=SearchSpace(accelerators=["a100-sxm4-80gb"], precision=["fp8", "bf16"]))
    result = costmodel.plan(sc, top=3)
    reasons = dict(zip(result.infeasible["reason"], result.infeasible["plans"]))
    assert reasons.get("format unsupported on hardware", 0) > 0
    assert set(result.plans["precision"]) == {"bf16"}
    with pytest.raises(ValueError, match="format unsupported on hardware.*bf16"):
        costmodel.estimate_training("gpt2", "a100-sxm4-80gb", ParallelLayout(), TrainingSetup(precision="fp8"),
                                    train_tokens=1e9)


def test_hardware_table_reads_every_catalog_format():
    """int8/int4/fp4 peaks and sparsity speedups reach the engine's hardware table."""
    from costmodel.specs.codes import FORMAT_CODES
    from costmodel.tables.catalog import hardware_table

    cat = engine_catalog()
    table = hardware_table(cat)
    b200 = cat.accelerator("b200-sxm-180gb")
    code = table.system_code(cat.default_system("b200-sxm-180gb").id)
    for fmt in ("int8", "fp8", "fp4"):
        if b200.peak(fmt) is not None:
            assert table.peak[code, FORMAT_CODES[fmt]] == b200.peak(fmt)
    hw = table.columns(np.array([code]), np.array([FORMAT_CODES["fp4"]]))
    assert hw.sparsity_speedup[0] == (b200.sparsity_speedup or 1.0)


def test_capacity_a_provider_sells_is_a_limit():
    """A user's quota of 2 instances per offer: no plan uses more, the rest are counted under
    "above the offer's capacity"; an offer's own catalog limit (max_instances) caps the same way."""
    from costmodel.tables.offers import OfferTable

    sc = Scenario(model="llama-3.1-8b", job=Job(train_tokens=1e10),
                  constraints=Constraints(max_instances_per_offer=2),
                  search=SearchSpace(accelerators=["h100-sxm5-80gb"], device_counts=[8, 16, 32, 64]))
    result = costmodel.plan(sc, top=50)
    assert (result.plans["instances"] <= 2).all()
    assert dict(zip(result.infeasible["reason"], result.infeasible["plans"]))["above the offer's capacity"] > 0
    frame = engine_catalog().offers_frame().head(2).assign(max_instances=[4, None])
    table = OfferTable.build(engine_catalog(), frame, lambda s: 0)
    assert table.instance_limits().tolist() == [4.0, float("inf")]
    assert table.instance_limits(quota=3).tolist() == [3.0, 3.0]
