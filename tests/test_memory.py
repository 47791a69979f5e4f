"""Memory formulas: ZeRO Figure 1, Korthikanti Table 2, pipelines, inference KV cache."""

import pytest

from costmodel import (ModelColumns, ModelSpec, ParallelLayout, TrainingSetup, activation_terms,
                       inference_memory, kv_cache_bytes_per_token, layer_activation_bytes,
                       model_state_bytes, preset, presets, training_memory)
from costmodel.formulas.memory import in_flight_microbatches

GB = 1e9


@pytest.mark.parametrize("stage, expected_gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_figure_1(stage, expected_gb):
    """Rajbhandari et al. 2020, Figure 1: Psi = 7.5B parameters, N_d = 64, mixed-precision Adam
    (K = 12): (2 + 2 + K) Psi = 120 GB; P_os 2Psi + 2Psi + K Psi/N_d = 31.4 GB;
    P_os+g 2Psi + (2 + K) Psi/N_d = 16.6 GB; P_os+g+p (2 + 2 + K) Psi / N_d = 1.9 GB."""
    b = model_state_bytes(7.5e9, zero_stage=stage, shard_degree=64)
    assert float(b.total) / GB == pytest.approx(expected_gb, abs=0.05)


def test_zero_paper_figure_1_exact_values():
    exact = [120.0, 31.40625, 16.640625, 1.875]
    for stage, gb in enumerate(exact):
        assert float(model_state_bytes(7.5e9, zero_stage=stage, shard_degree=64).total) == gb * GB


def korthikanti_terms(t=8, sp=0, s=2048, b=1, h=12288, a=96):
    """GPT-3 175B layer as in Korthikanti et al. 2022: MHA, 4h GELU MLP, 16-bit activations,
    dropout, no flash attention."""
    spec = ModelSpec(name="gpt", n_layers=96, d_model=h, n_heads=a, d_ff=4 * h, vocab_size=51200,
                     mlp_activation="gelu", norm="layernorm")
    return activation_terms(ModelColumns.from_spec(spec), micro_batch=b, seq_len=s, tp=t,
                            sequence_parallel=sp, act_bytes=2, flash=0, dropout=1)


@pytest.mark.parametrize(
    "t, sp, recompute, formula",
    [
        # Table 2 of Korthikanti et al. 2022, activation memory per transformer layer.
        (1, 0, 0, lambda s, b, h, a, t: s * b * h * (34 + 5 * a * s / h)),
        (8, 0, 0, lambda s, b, h, a, t: s * b * h * (10 + 24 / t + 5 * a * s / (h * t))),
        (8, 1, 0, lambda s, b, h, a, t: s * b * h / t * (34 + 5 * a * s / h)),
        (8, 0, 1, lambda s, b, h, a, t: s * b * h * (10 + 24 / t)),
        (8, 1, 1, lambda s, b, h, a, t: s * b * h * 34 / t),
        (8, 0, 2, lambda s, b, h, a, t: 2 * s * b * h),
        (8, 1, 2, lambda s, b, h, a, t: 2 * s * b * h / t),
    ],
)
def test_korthikanti_table_2(t, sp, recompute, formula):
    s, b, h, a = 2048, 1, 12288, 96
    got = layer_activation_bytes(korthikanti_terms(t=t, sp=sp), recompute)
    assert float(got) == pytest.approx(formula(s, b, h, a, t), rel=1e-12)


def test_flash_attention_drops_the_quadratic_term():
    spec = preset("llama-3.1-8b")
    m = ModelColumns.from_spec(spec)
    kw = dict(micro_batch=1, seq_len=8192, act_bytes=2)
    flash = activation_terms(m, flash=1, **kw)
    eager = activation_terms(m, flash=0, **kw)
    assert float(eager.attention_scores) == 2 * 32 * 8192 * 8192  # 2 a s^2 b bytes, no dropout
    assert float(flash.attention_scores) == 4 * 32 * 8192  # fp32 log-sum-exp


def test_pipeline_in_flight_microbatches():
    """1F1B: stage k holds p - k micro-batches; interleaved first stage p(1 + (p-1)/(pv))
    (Korthikanti et al. 2022 Sec. 4.2.3); never more than the micro-batches of a step."""
    assert float(in_flight_microbatches(0, 8, 1, 64)) == 8
    assert float(in_flight_microbatches(7, 8, 1, 64)) == 1
    assert float(in_flight_microbatches(0, 8, 3, 64)) == pytest.approx(8 * (1 + 7 / 24))
    assert float(in_flight_microbatches(0, 8, 1, 4)) == 4
    assert float(in_flight_microbatches(0, 1, 1, 16)) == 1


def test_training_memory_components_sum_and_zero_shards_states():
    spec = preset("llama-3.1-8b")
    setup = TrainingSetup(micro_batch=1, seq_len=4096)
    ddp = training_memory(spec, ParallelLayout(dp=8), setup)
    z1 = training_memory(spec, ParallelLayout(dp=8, zero_stage=1), setup)
    z3 = training_memory(spec, ParallelLayout(dp=8, zero_stage=3), setup)
    assert float(ddp.total) == pytest.approx(sum(float(v) for v in ddp.values()))
    n = 8_030_261_248
    assert float(ddp["weights"]) == 2 * n and float(ddp["optimizer_states"]) == 8 * n
    assert float(z1["optimizer_states"]) == 8 * n / 8 and float(z1["master_weights"]) == 4 * n / 8
    assert float(z1["gradients"]) == 2 * n
    assert float(z3["weights"]) == 2 * n / 8
    assert float(z3.total) < float(z1.total) < float(ddp.total)


def test_tensor_and_pipeline_parallel_divide_the_weights():
    spec = preset("llama-3.1-70b")
    base = training_memory(spec, ParallelLayout(), TrainingSetup())
    split = training_memory(spec, ParallelLayout(tp=8, pp=4), TrainingSetup(global_batch=16))
    # The largest stage holds a quarter of the blocks plus the embedding or the head.
    assert float(split["weights"]) < float(base["weights"]) / 32 * 1.1


def test_recompute_orders_activation_memory():
    spec = preset("llama-2-13b")
    layout = ParallelLayout(tp=2)
    acts = [float(training_memory(spec, layout, TrainingSetup(recompute=r, flash_attention=False,
                                                              seq_len=4096))["activations"])
            for r in ("none", "selective", "full")]
    assert acts[0] > acts[1] > acts[2]


@pytest.mark.parametrize("name", sorted(presets()))
def test_memory_grows_with_micro_batch(name):
    spec = preset(name)
    layout = ParallelLayout(ep=spec.n_experts // 8 if spec.is_moe else 1,
                            dp=spec.n_experts // 8 if spec.is_moe else 1)
    small = training_memory(spec, layout, TrainingSetup(micro_batch=1, seq_len=512))
    big = training_memory(spec, layout, TrainingSetup(micro_batch=4, seq_len=512))
    assert float(big["activations"]) > float(small["activations"])
    assert float(big.total) > float(small.total)


def test_kv_cache_per_token_gqa_and_mla():
    """Llama-2-70B (GQA, 8 KV heads of 128): 2 * 80 * 8 * 128 * 2 bytes = 327,680 bytes/token.
    DeepSeek-V3 MLA caches (d_c + d_rope) = 512 + 64 elements per layer (DeepSeek-V2 paper
    Table 1): 61 * 576 * 2 bytes = 70,272 bytes/token."""
    assert float(kv_cache_bytes_per_token(preset("llama-2-70b"), 16)) == 327_680
    assert float(kv_cache_bytes_per_token(preset("deepseek-v3"), 16)) == 70_272
    assert float(kv_cache_bytes_per_token(preset("llama-2-70b"), 8)) == 163_840


def test_inference_memory_weights_at_any_bit_width():
    spec = preset("llama-2-70b")
    m16 = inference_memory(spec, batch=1, context_len=1, weight_bits=16, overrides={"cuda_context_bytes": 0})
    m4 = inference_memory(spec, batch=1, context_len=1, weight_bits=4, overrides={"cuda_context_bytes": 0})
    assert float(m16["weights"]) == 68_976_648_192 * 2
    assert float(m4["weights"]) == 68_976_648_192 * 0.5
    kv = inference_memory(spec, batch=8, context_len=4096, tp=4)
    # 8 KV heads over 4 devices: a quarter of the cache each.
    assert float(kv["kv_cache"]) == 8 * 4096 * 327_680 / 4


def test_layout_that_does_not_divide_is_rejected():
    with pytest.raises(ValueError, match="n_heads"):
        training_memory(preset("llama-3.1-8b"), ParallelLayout(tp=3), TrainingSetup())
    with pytest.raises(ValueError, match="ep"):
        ParallelLayout(ep=4, dp=2)
