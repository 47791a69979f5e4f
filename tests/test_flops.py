"""FLOP counts: Megatron-LM eq. 7, 6ND, components and recomputation."""

import numpy as np
import pytest

from costmodel import (ModelSpec, active_parameter_count, forward_flops_per_token,
                       megatron_flops_per_iteration, parameter_count, preset, training_flops_per_token)


def megatron_gpt(L, h, a, V=51200, s=2048):
    """A GPT as Korthikanti et al. 2022 assume it: MHA, 4h GELU MLP, vocabulary V."""
    return ModelSpec(name="gpt", n_layers=L, d_model=h, n_heads=a, d_ff=4 * h, vocab_size=V,
                     max_position_embeddings=s, position_embedding="learned",
                     tied_embeddings=True, mlp_activation="gelu", norm="layernorm",
                     qkv_bias=True, attn_out_bias=True, mlp_bias=True)


@pytest.mark.parametrize("L, h, a, B", [(96, 12288, 96, 64), (48, 6144, 64, 4), (105, 20480, 128, 280)])
def test_matches_megatron_eq7_without_causal_discount(L, h, a, B):
    """Korthikanti et al. 2022, eq. 7: 72 B s L h^2 (1 + s/6h + V/12hL) model FLOPs per iteration
    for GPT-3 175B, the 22B and the 530B configurations of their Table 3 (V = 51200, s = 2048)."""
    s, V = 2048, 51200
    model_flops, _ = training_flops_per_token(megatron_gpt(L, h, a, V, s), s, "none",
                                              causal_discount=False)
    ours = float(model_flops.total) * B * s
    assert ours == pytest.approx(megatron_flops_per_iteration(B, s, L, h, V), rel=1e-12)


def test_causal_discount_halves_only_the_attention_matmuls():
    spec = preset("llama-3.1-8b")
    full = forward_flops_per_token(spec, 8192, causal_discount=False)
    half = forward_flops_per_token(spec, 8192, causal_discount=True)
    for k in full:
        ratio = 0.5 if k.startswith("attention_") else 1.0
        assert float(half[k]) == pytest.approx(ratio * float(full[k]))


def test_six_n_d_for_a_large_dense_model():
    """Kaplan et al. 2020 Sec. 2.1: C ~ 6 N per token when the context term is small. For GPT-3
    175B at s = 2048 the attention term adds 12 L h s / (6 N) ~ 1.4%; the embedding's table is in
    N but costs no matmul (-0.2%)."""
    spec = preset("gpt3-175b")
    n = float(parameter_count(spec).total)
    flops, _ = training_flops_per_token(spec, 2048, causal_discount=True)
    assert float(flops.total) == pytest.approx(6 * n, rel=0.02)


def test_moe_uses_active_parameters():
    """Mixtral 8x7B: model FLOPs per token ~ 6 x active parameters (12.9B), not x 46.7B."""
    spec = preset("mixtral-8x7b")
    flops, _ = training_flops_per_token(spec, 1024)
    active = float(active_parameter_count(spec).total)
    assert float(flops.total) == pytest.approx(6 * active, rel=0.05)


def test_hand_worked_llama_8b_components():
    """Llama-3.1-8B forward per token at s = 4096 with causal discount, by hand:
    qkv 2*4096*(4096 + 2*1024) = 50,331,648 per layer; scores 2*32*128*2048 = 16,777,216;
    values the same; output 2*4096*4096 = 33,554,432; MLP 2*3*4096*14336 = 352,321,536;
    32 layers; head 2*4096*128256 = 1,050,673,152."""
    f = forward_flops_per_token(preset("llama-3.1-8b"), 4096)
    assert float(f["qkv"]) == 32 * 50_331_648
    assert float(f["attention_scores"]) == 32 * 16_777_216
    assert float(f["attention_values"]) == 32 * 16_777_216
    assert float(f["output_projection"]) == 32 * 33_554_432
    assert float(f["mlp"]) == 32 * 352_321_536
    assert float(f["lm_head"]) == 1_050_673_152
    assert float(f["experts"]) == 0.0


def test_recompute_hardware_flops():
    """Full recompute adds one forward of the blocks (HFU = 4/3 MFU minus the head's share);
    selective adds the attention core only (Korthikanti et al. 2022 Sec. 6)."""
    spec = preset("gpt3-175b")
    fwd = forward_flops_per_token(spec, 2048)
    model, hw_full = training_flops_per_token(spec, 2048, "full")
    _, hw_sel = training_flops_per_token(spec, 2048, "selective")
    _, hw_none = training_flops_per_token(spec, 2048, "none")
    assert float(hw_none.total) == pytest.approx(float(model.total))
    assert float(hw_full["recompute"]) == pytest.approx(float(fwd.total - fwd["lm_head"]))
    assert float(hw_sel["recompute"]) == pytest.approx(
        float(fwd["attention_scores"] + fwd["attention_values"]))


def test_vectorised_over_sequence_lengths():
    s = np.array([512.0, 1024.0, 2048.0])
    f = forward_flops_per_token(preset("gpt2"), s)
    assert f.total.shape == (3,)
    assert np.all(np.diff(f.total) > 0)
