"""Structured pruning, the cost of pruning, distillation TCO, and the compression flags."""

from __future__ import annotations

import pytest

import costmodel
from costmodel.faces.cli import main as cli_main
from costmodel.faces.compression import estimate_distillation, estimate_pruning
from costmodel.specs.pruning import shrink
from costmodel.specs.spec import ModelSpecError


def test_shrink_llama_by_hand():
    """Llama-3.1-8B with half the layers and 3/4 of the MLP channels: 16 layers, d_ff 10,752
    (14,336 x 0.75). Per layer: attention 4096 x (4096 + 2 x 1024) + 4096 x 4096 = 41,943,040;
    MLP 3 x 4096 x 10,752 = 132,120,576; norms 8,192 -> 174,071,808 x 16 = 2,785,148,928; plus
    embedding and head 2 x 128,256 x 4,096 = 1,050,673,152 and the final norm 4,096:
    3,835,826,176 parameters."""
    s = shrink(costmodel.preset("llama-3.1-8b"), layers=0.5, ffn=0.75)
    assert (s.n_layers, s.d_ff) == (16, 10752)
    assert int(costmodel.parameter_count(s).total) == 3_835_826_176


def test_shrink_keeps_kv_groups_and_top_k_experts():
    s = shrink(costmodel.preset("llama-3.1-70b"), heads=0.5)
    assert (s.n_heads, s.kv_heads) == (32, 4) and s.head_dim == 128
    m = shrink(costmodel.preset("mixtral-8x7b"), experts=0.1)
    assert m.n_experts == m.experts_per_token == 2
    with pytest.raises(ModelSpecError, match="keep fraction"):
        shrink(costmodel.preset("gpt2"), layers=0.0)


LOAD = costmodel.ServingLoad(requests_per_s=5, input_len=1000, output_len=250, ttft_p95_s=2.0)


def test_distillation_tco_equals_its_parts():
    """TCO(student) = teacher forward + logits storage + student training + months x student
    serving; TCO(teacher) = months x teacher serving; break-even month = one-off cost / monthly
    saving. Stored top-32 logits of 1e10 tokens: 1e10 x 32 x (2 + 4) bytes = 1,920 GB."""
    d = estimate_distillation("llama-3.1-70b", "llama-3.1-8b", "h100-sxm5-80gb", distill_tokens=1e10,
                              load=LOAD, months=12, stored_top_k=32)
    once = d.teacher_forward_cost_usd + d.logits_storage_cost_usd + d.student_training_cost_usd
    assert d.distillation_cost_usd == pytest.approx(once, rel=1e-12)
    assert d.logits_storage_gb == pytest.approx(1920.0)
    assert d.tco_student_usd == pytest.approx(once + 12 * d.student_serving_per_month_usd, rel=1e-12)
    assert d.tco_teacher_usd == pytest.approx(12 * d.teacher_serving_per_month_usd, rel=1e-12)
    saving = d.teacher_serving_per_month_usd - d.student_serving_per_month_usd
    assert saving > 0 and d.breakeven_month == pytest.approx(once / saving, rel=1e-12)
    online = estimate_distillation("llama-3.1-70b", "llama-3.1-8b", "h100-sxm5-80gb", distill_tokens=1e10,
                                   load=LOAD, months=12, epochs=2)
    assert online.teacher_forward_hours == pytest.approx(2 * d.teacher_forward_hours, rel=1e-9)
    assert "unknown" in d.quality_impact


def test_pruning_cost_is_calibration_plus_recovery():
    base = costmodel.preset("llama-3.1-8b")
    small = shrink(base, layers=0.75)
    cal = estimate_pruning(base, small, "h100-sxm5-80gb")
    rec = estimate_pruning(base, small, "h100-sxm5-80gb", recovery_tokens=1e9)
    assert cal.calibration_tokens == 128 * 2048 and cal.recovery_cost_usd == 0.0
    assert rec.total_cost_usd == pytest.approx(rec.calibration_cost_usd + rec.recovery_cost_usd)
    assert rec.recovery_cost_usd > 0 and rec.pruned_parameters < rec.parameters


def test_cli_distil_and_compression_flags(capsys):
    assert cli_main(["distil", "--teacher", "llama-3.1-70b", "--student", "shrink:layers=0.5",
                     "--accelerator", "h100-sxm5-80gb", "--distill-tokens", "1e9", "--serve-rps", "2",
                     "--input-len", "500", "--output-len", "100"]) == 0
    assert "break-even" in capsys.readouterr().out
    assert cli_main(["distil", "--teacher", "gpt2", "--student", "shrink:depth=0.5",
                     "--accelerator", "h100-sxm5-80gb", "--distill-tokens", "1e9", "--serve-rps", "2",
                     "--input-len", "500", "--output-len", "100"]) == 2
    assert "unknown shrink axis" in capsys.readouterr().err
    assert cli_main(["plan", "--model", "llama-3.1-8b", "--serve-rps", "2", "--input-len", "500",
                     "--output-len", "100", "--compression", "w4a16,kv8", "--accelerators",
                     "h100-sxm5-80gb", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "w4a16" in out or "bf16" in out
    assert cli_main(["plan", "--model", "llama-3.1-8b", "--serve-rps", "2", "--input-len", "500",
                     "--output-len", "100", "--compression", "int3"]) == 2
    assert "unknown choice" in capsys.readouterr().err
