"""Oracle: the grid path (1-d columns) equals the single-configuration path row by row."""

import numpy as np

from costmodel.specs.codes import FORMAT_CODES
import pytest

from costmodel import (ModelColumns, ParallelLayout, TrainingColumns, TrainingSetup, preset,
                       training_columns, training_memory_per_device)
from costmodel.formulas.flops import training_flops_per_token
from costmodel.specs.layout import layout_problems

MODELS = ["gpt2", "llama-3.1-8b", "llama-2-70b", "mixtral-8x7b", "deepseek-v3", "bert-base",
          "qwen2.5-7b"]


def random_configs(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        spec = preset(MODELS[rng.integers(len(MODELS))])
        tp = int(rng.choice([1, 2, 4, 8]))
        pp = int(rng.choice([1, 2, 4]))
        vpp = int(rng.choice([1, 2])) if pp > 1 else 1
        cp = int(rng.choice([1, 2]))
        dp = int(rng.choice([1, 2, 4, 8]))
        ep = int(rng.choice([e for e in (1, 2, 4, 8) if (dp * cp) % e == 0])) if spec.is_moe else 1
        layout = ParallelLayout(tp=tp, pp=pp, vpp=vpp, dp=dp, cp=cp, ep=ep,
                                sequence_parallel=bool(rng.integers(2)),
                                zero_stage=int(rng.integers(4)))
        if layout_problems(spec, layout):
            continue
        mb = int(rng.choice([1, 2, 4]))
        setup = TrainingSetup(
            precision=str(rng.choice(["fp32", "bf16", "fp16", "fp8"])),
            optimizer=str(rng.choice(["adamw", "sgd", "momentum", "lion", "adafactor"])),
            recompute=str(rng.choice(["none", "selective", "full"])),
            micro_batch=mb, seq_len=int(rng.choice([512, 2048, 8192])),
            global_batch=mb * dp * int(rng.choice([1, 4, 16])),
            flash_attention=bool(rng.integers(2)), dropout=bool(rng.integers(2)),
        )
        out.append((spec, layout, setup))
    return out


def test_grid_memory_and_flops_equal_scalar_path():
    configs = random_configs(300)
    knobs = dict(cuda_context_bytes=1e9, fragmentation_fraction=0.07, logits_bytes_per_element=10.0,
                 selective_keep_fraction=0.6)
    scalar_mem, scalar_flops = [], []
    for spec, layout, setup in configs:
        t = training_columns(layout, setup)
        m = ModelColumns.from_spec(spec)
        scalar_mem.append({k: float(v) for k, v in training_memory_per_device(m, t, **knobs).items()})
        model_f, hw_f = training_flops_per_token(m, t.seq_len, t.recompute,
                                                 causal_discount=t.causal_discount)
        scalar_flops.append((float(model_f.total), float(hw_f.total)))

    grid_t = TrainingColumns.stack([training_columns(l, s) for _, l, s in configs])
    grid_m = ModelColumns.from_specs([spec for spec, _, _ in configs])
    grid_mem = training_memory_per_device(grid_m, grid_t, **knobs)
    model_f, hw_f = training_flops_per_token(grid_m, grid_t.seq_len, grid_t.recompute,
                                             causal_discount=grid_t.causal_discount)
    assert grid_mem.total.shape == (300,)
    for i, row in enumerate(scalar_mem):
        for k, v in row.items():
            assert grid_mem[k][i] == pytest.approx(v, rel=1e-12, abs=1e-6), (i, k)
        assert model_f.total[i] == pytest.approx(scalar_flops[i][0], rel=1e-12)
        assert hw_f.total[i] == pytest.approx(scalar_flops[i][1], rel=1e-12)


def test_grid_engine_equals_scalar_engine_for_time_and_cost():
    """Mixed models, layouts and hardware in one pass equal one-row passes, for every output."""
    from costmodel.tables.catalog import engine_catalog, hardware_table
    from costmodel.jobs.train import evaluate_training, knob_columns

    table = hardware_table(engine_catalog())
    systems = ["hgx-h100-8", "hgx-a100-80gb-8", "aws-p5en-48xlarge", "mi300x-oam-8", "tpu-v5p-12288"]
    rng = np.random.default_rng(7)
    configs = random_configs(120, seed=11)
    codes = [table.system_code(systems[rng.integers(len(systems))]) for _ in configs]
    # fp8 only where the part has it; otherwise bf16
    cols, specs = [], []
    for (spec, layout, setup), code in zip(configs, codes):
        if not np.isfinite(table.peak[code, FORMAT_CODES["fp8"]]) and setup.precision == "fp8":
            setup = setup.model_copy(update={"precision": "bf16"})
        cols.append(training_columns(layout, setup))
        specs.append(spec)
    knobs = knob_columns("nemo")
    grid = evaluate_training(ModelColumns.from_specs(specs), TrainingColumns.stack(cols),
                             table.columns(np.array(codes), TrainingColumns.stack(cols).matmul_format,
                                           TrainingColumns.stack(cols).attention_format), knobs)
    for i, (spec, code, c) in enumerate(zip(specs, codes, cols)):
        one = evaluate_training(ModelColumns.from_spec(spec), c,
                                table.columns(np.array([code]), c.matmul_format, c.attention_format), knobs)
        for key, value in one.items():
            # NaN where the part lacks the format (e.g. fp16 on a TPU): NaN in both paths.
            np.testing.assert_allclose(np.asarray(grid[key], dtype=float)[i],
                                       float(np.asarray(value, dtype=float).reshape(-1)[0]),
                                       rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=f"{i} {key}")
    assert np.isfinite(np.asarray(grid["step_time_s"], dtype=float)).sum() > 60


@pytest.mark.parametrize("name", ["gpt2", "llama-3.1-8b", "mixtral-8x7b", "qwen2.5-7b", "bert-base"])
def test_conformance_cost_and_time_move_the_right_way(name):
    from costmodel.formulas.cost import training_run_cost
    from costmodel.formulas.hardware import hardware_from_values
    from costmodel.formulas.timing import training_step_time

    spec = preset(name)
    layout = ParallelLayout(dp=8, ep=8 if spec.is_moe else 1, zero_stage=1)
    t = training_columns(layout, TrainingSetup(seq_len=512, micro_batch=2, global_batch=64))
    base = dict(peak_attention_flops_per_s=989e12, matmul_efficiency=0.55,
                attention_efficiency=0.545, memory_bandwidth_bytes_per_s=3.35e12,
                memory_bandwidth_efficiency=0.9, memory_bytes=80e9,
                tdp_w=700.0, devices_per_node=8.0, scaleup_allreduce_bytes_per_s=450e9,
                scaleup_alltoall_bytes_per_s=300e9, scaleup_latency_s=5e-6, scaleup_domain=8.0,
                scaleout_allreduce_bytes_per_s=45e9, scaleout_alltoall_bytes_per_s=40e9,
                scaleout_latency_s=20e-6)
    m = ModelColumns.from_spec(spec)
    slow = training_step_time(m, t, hardware_from_values(peak_matmul_flops_per_s=500e12, **base))
    fast = training_step_time(m, t, hardware_from_values(peak_matmul_flops_per_s=989e12, **base))
    assert float(fast["step_time_s"]) < float(slow["step_time_s"])
    costs = [float(training_run_cost(
        step_time_s=fast["step_time_s"], step_time_lower_s=fast["step_time_lower_s"],
        step_time_upper_s=fast["step_time_upper_s"], tokens_per_step=fast["tokens_per_step"],
        train_tokens=1e10, n_devices=8, devices_per_instance=8, usd_per_device_hour=price,
        checkpoint_bytes=1e9, checkpoints_retained=2, storage_usd_per_gb_month=0.02, tdp_w=700,
        power_utilization_fraction=0.8, pue=1.2)["cost_total_usd"]) for price in (1.0, 2.0, 4.0)]
    assert costs[0] < costs[1] < costs[2]
    assert costs[2] / costs[1] == pytest.approx(2.0, rel=1e-3)
