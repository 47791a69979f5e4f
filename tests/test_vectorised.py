"""Oracle: the grid path (1-d columns) equals the single-configuration path row by row."""

import numpy as np
import pytest

from costmodel import (ModelColumns, ParallelLayout, TrainingColumns, TrainingSetup, preset,
                       training_columns, training_memory_per_device)
from costmodel.flops import training_flops_per_token
from costmodel.layout import layout_problems

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
