"""One transformer block's forward time (``blocks.block_forward``) and pipeline partitioning
(``pipeline``), checked against hand-computed numbers.

Worked example (test_block_forward_worked_example): one Llama-3.1-8B block (h = 4096, 32 query
heads and 8 KV heads of 128, gated MLP with d_ff = 14336), tp = 1, BF16 operands (2 bytes), on
made-up round hardware: 1000 TFLOP/s peak at 50 % efficiency = 5e14 FLOP/s achieved for GEMMs and
for fused attention, 4 TB/s at 50 % = 2e12 B/s achieved, 5 us per GEMM launch. Roofline per GEMM
(Williams et al. 2009): t = max(2 M N K / 5e14, 2 (M K + K N + M N) / 2e12) + 5e-6.

Prefill-shaped, M = T = 4096 tokens:
- QKV, N = 32*128 + 2*8*128 = 6144, K = 4096: 2.0616e11 FLOP -> 412.3 us; 134.2 MB -> 67.1 us;
  compute-bound, 417.3 us.
- output projection, N = K = 4096: 1.3744e11 FLOP -> 274.9 us, compute-bound, 279.9 us.
- MLP up (gate+up, N = 28672, K = 4096): 9.621e11 FLOP -> 1924.1 us; down (N = 4096, K = 14336):
  4.810e11 FLOP -> 962.1 us; compute-bound; 2896.3 us with two launches.
- flash attention, causal discount on: 2 x 2 x 32 x 128 x (4096 / 2) FLOP per token x 4096 tokens
  = 1.3744e11 FLOP -> 274.9 us.
Decode-shaped, M = 8: QKV moves 2 (8*4096 + 4096*6144 + 8*6144) = 50.5 MB -> 25.2 us against
0.8 us of FLOPs: memory-bound, 30.2 us.
"""

import numpy as np
import pytest

from costmodel import ModelColumns, preset
from costmodel.formulas import memory
from costmodel.formulas.blocks import (BlockForward, Roofline, block_forward, kv_cache_read_bytes,
                                       lm_head_forward)
from costmodel.formulas.hardware import hardware_from_values
from costmodel.formulas.pipeline import (bubble_microbatches, in_flight_microbatches,
                                         pipeline_bubble, select_stage)

FABRIC = dict(scaleup_allreduce_bytes_per_s=450e9, scaleup_alltoall_bytes_per_s=300e9,
              scaleup_latency_s=5e-6, scaleup_domain=8.0, scaleout_allreduce_bytes_per_s=45e9,
              scaleout_alltoall_bytes_per_s=40e9, scaleout_latency_s=20e-6)
ROUND = hardware_from_values(
    peak_matmul_flops_per_s=1e15, peak_attention_flops_per_s=1e15, matmul_efficiency=0.5,
    attention_efficiency=0.5, memory_bandwidth_bytes_per_s=4e12, memory_bandwidth_efficiency=0.5,
    memory_bytes=80e9, tdp_w=700.0, devices_per_node=8.0, **FABRIC)
H100 = hardware_from_values(  # H100 SXM: 989 TFLOP/s dense BF16, 3.35 TB/s HBM3
    peak_matmul_flops_per_s=989e12, peak_attention_flops_per_s=989e12, matmul_efficiency=0.8,
    attention_efficiency=0.55, memory_bandwidth_bytes_per_s=3.35e12,
    memory_bandwidth_efficiency=0.9, memory_bytes=80e9, tdp_w=700.0, devices_per_node=8.0, **FABRIC)
PEAK, BW, OVH = 5e14, 2e12, 5e-6


def _compute_bound(M, N, K):
    return 2 * M * N * K / PEAK + OVH


def _memory_bound(M, N, K):
    return 2 * (M * K + K * N + M * N) / BW + OVH


def test_block_forward_worked_example():
    m = ModelColumns.from_spec(preset("llama-3.1-8b"))
    blk = block_forward(m, tokens=4096, context=4096, hw=ROUND, matmul_bytes=2.0)
    assert isinstance(blk, BlockForward)
    qkv, out = _compute_bound(4096, 6144, 4096), _compute_bound(4096, 4096, 4096)
    assert qkv == pytest.approx(417.3e-6, rel=1e-4) and out == pytest.approx(279.9e-6, rel=1e-4)
    assert float(blk.attention_gemms) == pytest.approx(qkv + out, rel=1e-12)
    mlp = _compute_bound(4096, 28672, 4096) + _compute_bound(4096, 4096, 14336)
    assert mlp == pytest.approx(2896.3e-6, rel=1e-4)
    assert float(blk.dense_mlp) == pytest.approx(mlp, rel=1e-12)
    assert float(blk.attention_core) == pytest.approx(4096 * 4 * 32 * 128 * 2048 / PEAK, rel=1e-12)
    for flag in (blk.attention_gemms_memory_bound, blk.dense_mlp_memory_bound,
                 blk.attention_core_memory_bound, blk.moe_mlp_memory_bound):
        assert float(flag) == 0.0
    assert float(blk.dense) == pytest.approx(
        float(blk.attention_gemms + blk.dense_mlp + blk.dense_elementwise + blk.attention_core))

    dec = block_forward(m, tokens=8, context=4096, hw=ROUND, causal_discount=0.0)
    qkv8 = _memory_bound(8, 6144, 4096)
    assert qkv8 == pytest.approx(30.25e-6, rel=1e-3)
    assert float(dec.attention_gemms) == pytest.approx(qkv8 + _memory_bound(8, 4096, 4096), rel=1e-12)
    assert float(dec.attention_gemms_memory_bound) == 1.0
    assert float(dec.dense_mlp_memory_bound) == 1.0


def test_decode_is_memory_bound_on_h100():
    """Decode: 8 sequences attending a 4096-token KV cache. Every weight GEMM reads its whole
    matrix for 8 rows (arithmetic intensity ~8 FLOP/B, far below H100's ~300), and the attention
    streams the KV cache: all memory-bound. The same block at prefill size is compute-bound."""
    for name in ("llama-3.1-8b", "mixtral-8x7b", "deepseek-v3"):
        m = ModelColumns.from_spec(preset(name))
        kv = kv_cache_read_bytes(m, sequences=8, context=4096, kv_bytes=2.0)
        dec = block_forward(m, tokens=8, context=4096, hw=H100, causal_discount=0.0, kv_read_bytes=kv)
        assert float(dec.attention_gemms_memory_bound) == 1.0, name
        assert float(dec.dense_mlp_memory_bound) == 1.0, name
        assert float(dec.attention_core_memory_bound) == 1.0, name
        assert float(dec.attention_core) >= float(kv) / (3.35e12 * 0.9)
        if m.n_experts > 0:
            assert float(dec.moe_mlp_memory_bound) == 1.0, name
        head_t, head_bound = lm_head_forward(m, tokens=8, hw=H100)
        assert bool(head_bound) and float(head_t) > 0
        pre = block_forward(m, tokens=8192, context=8192, hw=H100)
        assert float(pre.attention_gemms_memory_bound) == 0.0, name
        assert float(pre.dense_mlp_memory_bound) == 0.0, name
    m = ModelColumns.from_spec(preset("llama-3.1-8b"))
    # KV read per block: 8 sequences x 4096 tokens x (K and V of 8 heads x 128) x 2 bytes.
    assert float(kv_cache_read_bytes(m, sequences=8, context=4096)) == 8 * 4096 * 2 * 8 * 128 * 2
    # Without the KV read the decode core is FLOP-timed: cheaper than with it.
    no_kv = block_forward(m, tokens=8, context=4096, hw=H100, causal_discount=0.0)
    with_kv = block_forward(m, tokens=8, context=4096, hw=H100, causal_discount=0.0,
                            kv_read_bytes=kv_cache_read_bytes(m, sequences=8, context=4096))
    assert float(no_kv.attention_core) < float(with_kv.attention_core)


def test_roofline_from_hardware_matches_block_inputs():
    roof = Roofline.from_hardware(ROUND, gemm_overhead_s=5e-6)
    assert float(roof.matmul_flops_per_s) == PEAK and float(roof.bytes_per_s) == BW
    m = ModelColumns.from_spec(preset("llama-3.1-8b"))
    a = block_forward(m, tokens=512, context=512, hw=roof)
    b = block_forward(m, tokens=512, context=512, hw=ROUND)
    assert float(a.dense) == float(b.dense)


def test_pipeline_in_flight_and_bubble():
    # 1F1B: stage 0 holds p micro-batches, the last stage one, never more than n_micro.
    for p in (2, 4, 8):
        assert float(in_flight_microbatches(0, p, 1, 64)) == p
        assert float(in_flight_microbatches(p - 1, p, 1, 64)) == 1
    assert float(in_flight_microbatches(0, 8, 1, 4)) == 4
    # Interleaved (Korthikanti et al. 2022 Sec. 4.2.3): stage 0 holds p (1 + (p - 1)/(p v)).
    for p, v in ((4, 2), (8, 3), (16, 4)):
        assert float(in_flight_microbatches(0, p, v, 1000)) == pytest.approx(p * (1 + (p - 1) / (p * v)))
    # Bubble: (p - 1)/v micro-batch times (Narayanan et al. 2021 Sec. 2.2).
    assert float(bubble_microbatches(8, 1)) == 7
    assert float(bubble_microbatches(8, 4)) == pytest.approx(7 / 4)
    assert float(pipeline_bubble(2.0, 4, 2)) == pytest.approx(3.0)
    # memory.py keeps re-exporting the pipeline helpers.
    assert memory.in_flight_microbatches is in_flight_microbatches


def test_select_stage_takes_the_largest_key_row_by_row():
    first = (np.array([3.0, 1.0, 2.0]), {"x": np.array([10.0, 11.0, 12.0])})
    second = (np.array([1.0, 5.0, 2.0]), {"x": np.array([20.0, 21.0, 22.0])})
    best = select_stage([first, second])
    np.testing.assert_array_equal(best["x"], [10.0, 21.0, 12.0])  # ties keep the earlier stage


def test_expert_gemm_efficiency_scale_slows_only_the_routed_experts():
    """Mixtral 8x7B, 4096 tokens, top-2 of 8 experts, on ROUND (achieved 5e14 FLOP/s): the routed
    experts' two grouped GEMMs (8192 token-expert pairs; w1+w3 8192 x 28672 x 4096 over 8 matrices,
    w2 8192 x 4096 x 14336) are compute-bound, 2 x 8192 x 28672 x 4096 / 5e14 = 3.85 ms and
    2 x 8192 x 4096 x 14336 / 5e14 = 1.92 ms. At expert_gemm_efficiency_scale 0.5 those two take
    twice as long (their 5 us launch terms do not); the router, the attention and dense blocks do
    not change."""
    m = ModelColumns.from_spec(preset("mixtral-8x7b"))
    base = block_forward(m, tokens=4096, context=4096, hw=Roofline.from_hardware(ROUND))
    slow = block_forward(m, tokens=4096, context=4096,
                         hw=Roofline.from_hardware(ROUND, expert_gemm_efficiency_scale=0.5))
    routed = 2 * 8192 * 28672 * 4096 / PEAK + 2 * 8192 * 4096 * 14336 / PEAK
    assert routed == pytest.approx(5.77e-3, rel=1e-3)
    assert float(slow.moe_mlp - base.moe_mlp) == pytest.approx(routed, rel=1e-9)
    assert float(slow.attention_gemms) == float(base.attention_gemms)
    assert float(slow.dense_mlp) == float(base.dense_mlp)
