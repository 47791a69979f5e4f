"""Uneven pipeline stages and expert tensor parallelism (issue 12: layouts real runs use).

Worked examples, by hand:
- Llama 3 405B: 126 blocks over 16 stages. 126 + 2 = 128 = 16 x 8, so with the embedding and the
  loss each counted as a block (Megatron-LM --account-for-embedding-in-pipeline-split
  --account-for-loss-in-pipeline-split) the first and last stages hold 7 blocks, the 14 middle
  ones 8 (7 + 14 x 8 + 7 = 126).
- 25 blocks over 8 stages: 25 = 3 x 8 + 1 and 27 is not a multiple of 8, so the balanced split
  (torchtitan accepts any split) puts 4 blocks on one middle stage and 3 on the others, first and
  last included.
- Megatron-LM --decoder-first/last-pipeline-num-layers 7 and 7 on 126 blocks x 16 stages leave
  112 = 14 x 8 for the middle stages: allowed. 5 and 5 leave 116, not a multiple of 14: refused.
"""

from __future__ import annotations

import numpy as np
import pytest

from costmodel.faces.api import training_memory
from costmodel.specs.columns import ModelColumns
from costmodel.specs.layout import ParallelLayout, layout_problems, stage_split
from costmodel.specs.setup import TrainingSetup, training_columns
from costmodel.specs.spec import make_spec
from costmodel.formulas.timing import training_step_time
from costmodel.tables.catalog import engine_catalog, hardware_table


def test_llama3_405b_split_counts_embedding_and_loss():
    s = stage_split(126, 16)
    assert (float(s.first), float(s.middle), float(s.last), bool(s.ok)) == (7, 8, 7, True)


def test_even_split_and_single_stage():
    s = stage_split(32, 4)
    assert (float(s.first), float(s.middle), float(s.last)) == (8, 8, 8)
    s = stage_split(30, 1)
    assert (float(s.first), float(s.last), bool(s.ok)) == (30, 30, True)


def test_balanced_split_without_interleaving():
    s = stage_split(25, 8)
    assert (float(s.first), float(s.middle), float(s.last), bool(s.ok)) == (3, 4, 3, True)
    # 2 stages, odd blocks: the lighter stage is the first (it holds the embedding and the most
    # in-flight micro-batches).
    s = stage_split(25, 2)
    assert (float(s.first), float(s.last)) == (12, 13)


def test_interleaving_needs_equal_chunks():
    assert not bool(stage_split(25, 8, vpp=2).ok)
    assert bool(stage_split(30, 4, vpp=2).ok)  # 30 + 2 = 32 = 4 x 2 x 4: embedding/loss counted
    assert not bool(stage_split(7, 8).ok)  # a stage with no block
    # 126 + 2 = 128 = 16 x 8 chunks of one block: the first chunk would hold only the embedding.
    assert not bool(stage_split(126, 16, vpp=8).ok) and bool(stage_split(126, 16, vpp=4).ok)
    from costmodel.specs.layout import split_problem

    assert "without a transformer block" in split_problem(126, 16, 8, 0, 0)
    assert "divides neither" in split_problem(25, 8, 2, 0, 0)


def _dense(n_layers: int, vocab: int = 128):
    return make_spec({"name": f"d{n_layers}", "n_layers": n_layers, "d_model": 4096, "n_heads": 32,
                      "d_ff": 14336, "vocab_size": vocab, "mlp_activation": "swiglu"})


def test_megatron_first_last_flags():
    spec = _dense(126)
    ok = ParallelLayout(pp=16, first_stage_layers=7, last_stage_layers=7)
    assert layout_problems(spec, ok) == []
    s = stage_split(126, 16, 1, 6, 8)
    assert (float(s.first), float(s.middle), float(s.last), bool(s.ok)) == (6, 8, 8, True)
    bad = ParallelLayout(pp=16, first_stage_layers=5, last_stage_layers=5)
    (problem,) = layout_problems(spec, bad)
    assert "116" in problem and "decoder-first/last-pipeline-num-layers" in problem
    with pytest.raises(ValueError, match="need pp > 1"):
        ParallelLayout(pp=1, first_stage_layers=4)


def _activations(spec, layout, n_micro_batches: int) -> float:
    setup = TrainingSetup(micro_batch=1, seq_len=4096, global_batch=n_micro_batches * layout.dp)
    return float(training_memory(spec, layout, setup)["activations"])


def test_fullest_stage_memory_of_uneven_split():
    """126 blocks over 16 stages (7, 8 x 14, 7), 1F1B with 32 micro-batches: stage k holds 16 - k
    micro-batches in flight. Stage 0: 16 x (7 a + e) + w; stage 1: 15 x 8 a + w = 120 a + w, the
    larger (a, one block's activations, is far above 2 e, the embedding output): the engine must
    report stage 1's 120 a + w (even stages of 126/16 = 7.875 blocks would give 126 a + 16 e + w).

    a, e, w from single-stage runs of the same blocks: A = act(126, pp=1) = 126 a + e + w,
    B = act(125, pp=1) = 125 a + e + w, C = act(126, pp=2, 63 + 63) = 2 (63 a + e) + w."""
    A = _activations(_dense(126), ParallelLayout(), 32)
    B = _activations(_dense(125), ParallelLayout(), 32)
    C = _activations(_dense(126), ParallelLayout(pp=2), 32)
    a = A - B
    e = C - A
    w = A - 126 * a - e
    assert a > 2 * e > 0
    got = _activations(_dense(126), ParallelLayout(pp=16), 32)
    assert got == pytest.approx(120 * a + w, rel=1e-9)


def test_slowest_stage_sets_the_pace():
    """With a 128-token vocabulary the head is negligible: 126 blocks over 16 stages run 8 blocks
    per micro-batch on the slowest (middle) stage, exactly as 128 blocks over 16 even stages do,
    so the compute time per step agrees (not 126/128 of it, which even stages would give)."""
    catalog = engine_catalog()
    table = hardware_table(catalog)
    system = table.system_code(catalog.default_system("h100-sxm5-80gb").id)
    setup = TrainingSetup(micro_batch=1, seq_len=4096, global_batch=64)
    layout = ParallelLayout(pp=16, dp=1)

    def compute_s(n_layers: int) -> float:
        t = training_columns(layout, setup)
        hw = table.columns(np.atleast_1d(system), t.matmul_format, t.attention_format)
        out = training_step_time(ModelColumns.from_spec(_dense(n_layers)), t, hw)
        return float(np.asarray(out["compute_s"]).reshape(-1)[0])

    ratio = compute_s(126) / compute_s(128)
    assert ratio == pytest.approx(1.0, abs=2e-3)
    assert abs(ratio - 126 / 128) > 0.01


MIXTRAL_LIKE = {"name": "moe", "n_layers": 32, "d_model": 4096, "n_heads": 32, "n_kv_heads": 8,
                "d_ff": 14336, "vocab_size": 32000, "mlp_activation": "swiglu", "n_experts": 8,
                "experts_per_token": 2, "d_ff_expert": 14336}


def test_expert_groups_may_span_tensor_parallel_ranks():
    """8 experts, tp = 8, dp = 1: classic expert parallelism (etp = tp) needs ep | dp x cp = 1,
    so ep = 8 is refused; with expert TP 1 (Megatron-core parallel folding) 1 x 8 divides
    tp x dp x cp = 8 and each device holds one whole expert per layer: the same expert parameter
    count per device as ep = 1 with every expert split 8 ways (8 / (1 x 8) = 8 / (8 x 1))."""
    spec = make_spec(MIXTRAL_LIKE)
    with pytest.raises(ValueError, match=r"ep \(8\) must divide dp \* cp \(1\)"):
        ParallelLayout(tp=8, ep=8, dp=1)
    folded = ParallelLayout(tp=8, ep=8, etp=1, dp=1)
    assert layout_problems(spec, folded) == []
    with pytest.raises(ValueError, match=r"etp \* ep \(16\) must divide tp \* dp \* cp \(8\)"):
        ParallelLayout(tp=8, ep=8, etp=2, dp=1)
    setup = TrainingSetup(micro_batch=1, seq_len=4096, global_batch=8)
    w_folded = training_memory(spec, folded, setup)["weights"]
    w_classic = training_memory(spec, ParallelLayout(tp=8, dp=1), setup)["weights"]
    assert float(w_folded) == pytest.approx(float(w_classic), rel=1e-12)


def test_expert_data_parallel_degree():
    """tp 4, dp 4, ep 8, etp 1: experts split over 8 devices, replicated over 4 x 4 / 8 = 2."""
    t = training_columns(ParallelLayout(tp=4, dp=4, ep=8, etp=1), TrainingSetup(global_batch=8))
    assert float(t.expert_shard) == 8 and float(t.expert_dp) == 2
    t = training_columns(ParallelLayout(tp=4, dp=4, ep=2), TrainingSetup(global_batch=8))
    assert float(t.etp) == 4 and float(t.expert_dp) == 2  # classic: dp x cp / ep = 4 / 2


def _row_file(tmp_path, **cells):
    import csv

    from costmodel.validation.measurements import EXTENSION_COLUMNS, SCHEMA_COLUMNS

    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*SCHEMA_COLUMNS, *EXTENSION_COLUMNS])
        w.writeheader()
        w.writerow(cells)
    return path


LLAMA_405B_ROW = dict(
    id="U-1", category="train_throughput", model="Llama 3.1 405B", n_layers=126, d_model=16384,
    n_heads=128, n_kv_heads=8, d_ff=53248, mlp="swiglu", vocab_size=128256,
    accelerator="h100-sxm5-80gb", n_devices=2048, precision="bf16", tp=8, pp=16, cp=1, vpp=1,
    sequence_parallel="true", zero_stage=1, recompute="none", micro_batch=1, global_batch=256,
    seq_len=8192, metric="tokens_per_s_per_device", value=100, tier="C", source="test")


def test_validation_accepts_the_layouts_real_runs_use(tmp_path):
    """A 126-block model over 16 stages (Llama 3 405B's published layout) and an MoE run whose
    expert groups span tensor-parallel ranks (ep 8 with tp 8, dp 1) both evaluate; the MoE row
    lists the inferred expert TP among its defaults; an explicit split the rules refuse is
    reported with the rule."""
    from costmodel.validation.measurements import validate

    res = validate([_row_file(tmp_path, **LLAMA_405B_ROW)])
    assert res.loc[0, "status"] == "ok" and res.loc[0, "predicted"] > 0
    moe = dict(id="U-2", category="train_throughput", model="moe", n_layers=32, d_model=4096,
               n_heads=32, n_kv_heads=8, d_ff=14336, mlp="swiglu", vocab_size=32000, n_experts=8,
               experts_per_token=2, d_ff_expert=14336, accelerator="h100-sxm5-80gb", n_devices=8,
               tp=8, pp=1, ep=8, sequence_parallel="true", micro_batch=1, global_batch=64,
               seq_len=4096, metric="step_time_s", value=1, tier="C", source="test")
    res = validate([_row_file(tmp_path, **moe)])
    assert res.loc[0, "status"] == "ok", res.loc[0, "status"]
    assert "etp=1" in res.loc[0, "defaults"]
    bad = dict(LLAMA_405B_ROW, extra="first_stage_layers=5;last_stage_layers=5")
    res = validate([_row_file(tmp_path, **bad)])
    assert "116" in res.loc[0, "status"]


def test_gemm_size_efficiency_follows_calculons_curve():
    """A compute-bound GEMM of G GFLOP takes (G + G0) / rate with G0 = 0.6 GFLOP (the knob
    gemm_half_efficiency_gflops): its efficiency relative to a large GEMM is G / (G + G0), which is
    0.625 at 1 GFLOP and 0.964 at 16 (Calculon: 0.6 / 0.95 = 0.632 and 0.9 / 0.95 = 0.947).
    M = 512, N = K = 1024: 2 x 512 x 1024^2 = 1.074 GFLOP, rate 1e15 FLOP/s, bandwidth huge:
    time = (1.074e9 + 0.6e9) / 1e15 = 1.674 us (no launch overhead). Grouped: 8 expert matrices
    of the same total size pay G0 eight times: (1.074e9 + 8 x 0.6e9) / 1e15."""
    from costmodel.formulas.blocks import _gemm_roofline

    flops = 2 * 512 * 1024 * 1024
    t, bound = _gemm_roofline(512, 1024, 1024, 1e15, 1e30, 0.0, 2.0, half_flops=0.6e9)
    assert float(t) == pytest.approx((flops + 0.6e9) / 1e15, rel=1e-12) and not bool(bound)
    t8, _ = _gemm_roofline(512, 1024, 1024, 1e15, 1e30, 0.0, 2.0, weight_sets=8, half_flops=0.6e9)
    assert float(t8) == pytest.approx((flops + 8 * 0.6e9) / 1e15, rel=1e-12)
    t0, _ = _gemm_roofline(0, 1024, 1024, 1e15, 1e30, 0.0, 2.0, half_flops=0.6e9)
    assert float(t0) < 1e-20  # no rows: no compute, no G0 (only the weight read at 1e30 B/s)


def test_framework_inferred_from_the_source_when_the_column_is_blank():
    """Rows in the plain v1 schema have no framework column: the stack named in the source decides
    the profile (the rule recovers the framework cell of every public row that has one)."""
    from costmodel.validation.measurements import read_measurements, row_framework

    checked = 0
    for row in read_measurements():
        stated = row.text("framework")
        if not stated:
            continue
        row.cells["framework"] = ""
        assert row_framework(row) == stated, row.text("id")
        checked += 1
    assert checked >= 80
    res_row = dict(LLAMA_405B_ROW, id="U-3", accelerator="tpu-v5p", source="a MaxText recipe")
    from costmodel.validation.measurements import Row

    assert row_framework(Row("f", 2, {k: str(v) for k, v in res_row.items()})) == "jax"
    assert row_framework(Row("f", 2, {"accelerator": "tpu-v5e", "source": "blog"})) == "jax"
    assert row_framework(Row("f", 2, {"accelerator": "h100-sxm5-80gb", "source": "blog"})) == "nemo"
    # A stack's own name in the framework cell is read as its profile; an unknown one is an error
    # naming the column and the profiles.
    for cell, profile in (("MaxText", "jax"), ("Megatron-LM", "megatron"), ("llm-foundry", "fsdp"),
                          ("PyTorch FSDP", "fsdp"), ("Megatron-DeepSpeed", "megatron_deepspeed")):
        row = Row("f", 2, {"accelerator": "h100-sxm5-80gb", "source": "blog", "framework": cell})
        assert row_framework(row) == profile, cell
        assert f"framework={profile} (from framework: {cell!r})" in row.defaults
    with pytest.raises(ValueError, match="framework"):
        row_framework(Row("f", 2, {"accelerator": "h100-sxm5-80gb", "source": "blog", "framework": "bespoke"}))


def test_cli_takes_the_stage_and_expert_flags(capsys):
    from costmodel.faces.cli import main

    args = ["train", "llama-3.1-405b", "--accelerator", "h100-sxm5-80gb", "--train-tokens", "1e12",
            "--tp", "8", "--pp", "16", "--dp", "16", "--sp", "--seq-len", "8192"]
    assert main(args) == 0
    assert "first 7, middle up to 8, last 7 of 126" in capsys.readouterr().out
    assert main(args + ["--first-stage-layers", "6", "--last-stage-layers", "8"]) == 0
    assert "first 6, middle up to 8, last 8 of 126" in capsys.readouterr().out
    assert main(args + ["--first-stage-layers", "5", "--last-stage-layers", "5"]) != 0
    assert "leave 116 of n_layers (126)" in capsys.readouterr().err
