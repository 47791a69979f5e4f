"""Forward time of one transformer block on one device, by component, from a roofline per matrix
multiplication and bytes moved for element-wise work. Training (``timing``) multiplies it into
forward + backward + recomputation; a serving model can call it for prefill (tokens = prompt
tokens, context = prompt length) and decode (tokens = sequences in the batch, context = current KV
length, ``kv_read_bytes`` = the KV cache the attention reads).

Sources:
- GEMM time: roofline (Williams, Waterman & Patterson 2009, 'Roofline: an insightful visual
  performance model'): max(FLOPs / achieved peak, bytes / achieved bandwidth) plus a fixed
  per-kernel overhead; 'achieved' fractions come from the catalog's efficiency data (e.g. an
  8192^3 BF16 GEMM at 798 of 989 TFLOP/s on H100 SXM).
- Unfused attention stores and re-reads the s x s score tensors of Korthikanti et al. 2022
  ('Reducing Activation Recomputation in Large Transformer Models', Sec. 4.1, the 5 a s^2 b term);
  fused (flash) attention never materialises them and runs at its own measured efficiency
  (Dao et al. 2022, 'FlashAttention').
- Tensor-parallel split of every GEMM and sequence parallelism of the element-wise regions:
  Shoeybi et al. 2019 Sec. 3; Korthikanti et al. 2022 Sec. 4.2.2.
- GEMM size: small matrix products run below the large-GEMM efficiency (too few tiles to fill
  the device, tile and wave quantization, prologue/epilogue). Calculon (Isaev et al. 2023,
  calculon-ai/calculon systems/a100_80g.json and h100_80g_nvl8.json, "gflops_efficiency") gives
  efficiency 0.95 at >= 128 GFLOP per GEMM, 0.9 at 16, 0.6 at 1 and 0.1 near 0. Relative to the
  large-GEMM value these are 1, 0.947, 0.632, ~0.1, which G / (G + G0) reproduces with
  G0 = 0.6 GFLOP (0.995, 0.964, 0.625, -> 0): a GEMM of G GFLOP takes the time of G + G0 at the
  large-GEMM rate. G0 is the knob ``gemm_half_efficiency_gflops`` (data/assumptions.yaml);
  grouped expert GEMMs pay it once per expert matrix (``weight_sets``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from costmodel.formulas.flops import forward_flops_per_token
from costmodel.formulas.hardware import HardwareColumns
from costmodel.specs.columns import Array, ModelColumns, as_array


def _gemm_roofline(M: Array, N: Array, K: Array, peak: Array, bandwidth: Array, overhead: Array,
                   elem_bytes: Array, weight_sets: Array = 1.0, weight_bytes: Array | None = None,
                   compute_scale: Array = 1.0, half_flops: Array = 0.0) -> tuple[Array, Array]:
    """(time, memory-bound flag) of an (M x K) @ (K x N) product on the roofline (Williams et al.
    2009) at achieved ``peak`` FLOP/s and ``bandwidth`` bytes/s, plus a fixed ``overhead``.
    Bytes are the two operands and the output once each; ``weight_sets`` distinct K x N matrices
    (grouped expert GEMMs) are read once each. ``weight_bytes``: bytes of one stored weight when
    they differ from the operands' (quantized or sparse weights, scales included);
    ``compute_scale`` multiplies the compute time (dequantization work, sparse tensor cores);
    ``half_flops``: the GEMM size (FLOPs, per weight matrix) that runs at half the large-GEMM
    efficiency (module docstring: Calculon's curve)."""
    flops = 2.0 * M * N * K
    compute = (flops + np.where(flops > 0, weight_sets * half_flops, 0.0)) / peak * compute_scale
    w = elem_bytes if weight_bytes is None else weight_bytes
    memory = (elem_bytes * (M * K + M * N) + w * weight_sets * K * N) / bandwidth
    return np.maximum(compute, memory) + overhead, memory > compute


def _gemm_time(M: Array, N: Array, K: Array, peak: Array, bandwidth: Array, overhead: Array,
               elem_bytes: Array, weight_sets: Array = 1.0) -> Array:
    """Roofline time of an (M x K) @ (K x N) product at achieved ``peak`` FLOP/s and
    ``bandwidth`` bytes/s; ``weight_sets`` distinct K x N matrices (grouped expert GEMMs) are read
    once each."""
    return _gemm_roofline(M, N, K, peak, bandwidth, overhead, elem_bytes, weight_sets)[0]


@dataclass(frozen=True)
class Roofline:
    """Achieved rates one device runs a block's kernels at."""

    matmul_flops_per_s: Array  # GEMMs: peak of the matmul format x matmul efficiency
    attention_flops_per_s: Array  # fused attention: attention peak x attention efficiency
    eager_attention_flops_per_s: Array  # unfused attention GEMMs: attention peak x matmul eff.
    bytes_per_s: Array  # achieved memory bandwidth
    gemm_overhead_s: Array = 5e-6  # fixed launch/tail time per GEMM
    elementwise_traffic_factor: Array = 1.0  # multiplier on the counted element-wise bytes
    weight_bytes: Array | None = None  # stored bytes per weight of the linear layers (None: operands')
    weight_compute_scale: Array = 1.0  # compute-time multiplier of the linear layers' GEMMs
    gemm_half_flops: Array = 0.0  # GEMM size at half the large-GEMM efficiency (FLOPs)
    expert_compute_scale: Array = 1.0  # compute-time multiplier of routed-expert (grouped) GEMMs

    @classmethod
    def from_hardware(cls, hw: HardwareColumns, gemm_overhead_s: Array = 5e-6,
                      elementwise_traffic_factor: Array = 1.0, weight_bytes: Array | None = None,
                      weight_compute_scale: Array = 1.0, gemm_half_efficiency_gflops: Array = 0.0,
                      expert_gemm_efficiency_scale: Array = 1.0) -> Roofline:
        return cls(hw.peak_matmul_flops_per_s * hw.matmul_efficiency,
                   hw.peak_attention_flops_per_s * hw.attention_efficiency,
                   hw.peak_attention_flops_per_s * hw.matmul_efficiency,
                   hw.achieved_memory_bandwidth, as_array(gemm_overhead_s),
                   as_array(elementwise_traffic_factor),
                   None if weight_bytes is None else as_array(weight_bytes),
                   as_array(weight_compute_scale), as_array(gemm_half_efficiency_gflops) * 1e9,
                   1.0 / as_array(expert_gemm_efficiency_scale))

    def gemm(self, M: Array, N: Array, K: Array, elem_bytes: Array, weight_sets: Array = 1.0,
             quantized: bool = True, expert: bool = False) -> tuple[Array, Array]:
        """A GEMM against a weight matrix; ``quantized`` False for matrices kept in the operand
        format (router, LM head); ``expert`` for the routed experts' grouped GEMMs, whose
        compute runs at ``expert_gemm_efficiency_scale`` of the dense rate."""
        if expert:
            return _gemm_roofline(M, N, K, self.matmul_flops_per_s, self.bytes_per_s,
                                  self.gemm_overhead_s, elem_bytes, weight_sets, self.weight_bytes,
                                  self.weight_compute_scale * self.expert_compute_scale,
                                  self.gemm_half_flops)
        if not quantized:
            return _gemm_roofline(M, N, K, self.matmul_flops_per_s, self.bytes_per_s,
                                  self.gemm_overhead_s, elem_bytes, weight_sets,
                                  half_flops=self.gemm_half_flops)
        return _gemm_roofline(M, N, K, self.matmul_flops_per_s, self.bytes_per_s,
                              self.gemm_overhead_s, elem_bytes, weight_sets, self.weight_bytes,
                              self.weight_compute_scale, self.gemm_half_flops)

    @property
    def elementwise_s_per_byte(self) -> Array:
        return self.elementwise_traffic_factor / self.bytes_per_s


@dataclass(frozen=True)
class BlockForward:
    """Forward seconds of one block on one device, by component, and the fraction of each
    component's time spent in memory-bound kernels (0 = all compute-bound, 1 = all memory-bound;
    GEMMs by the roofline, unfused attention counts its score-matrix traffic, element-wise work is
    memory-bound by construction). Dense and MoE blocks share the attention half."""

    attention_gemms: Array  # QKV and output projections
    attention_core: Array  # Q K^T, softmax, (dropout), x V
    dense_mlp: Array  # gate/up (or fc1) and down projections
    moe_mlp: Array  # routed experts, shared experts and router (0 without MoE rows)
    dense_elementwise: Array  # norms, residuals, rotary, activation function
    moe_elementwise: Array  # the same with the experts' widths, plus permute/unpermute copies
    attention_gemms_memory_bound: Array
    attention_core_memory_bound: Array
    dense_mlp_memory_bound: Array
    moe_mlp_memory_bound: Array

    @property
    def dense_other(self) -> Array:
        """A dense block's forward time outside the attention core."""
        return self.attention_gemms + self.dense_mlp + self.dense_elementwise

    @property
    def moe_other(self) -> Array:
        """An MoE block's forward time outside the attention core."""
        return self.attention_gemms + self.moe_mlp + self.moe_elementwise

    @property
    def dense(self) -> Array:
        return self.dense_other + self.attention_core

    @property
    def moe(self) -> Array:
        return self.moe_other + self.attention_core


def _bound_share(parts: list[tuple[Array, Array]]) -> Array:
    """Fraction of the summed time of (time, memory-bound flag) parts that is memory-bound."""
    total = sum(t for t, _ in parts)
    bound = sum(t * f for t, f in parts)
    return np.where(total > 0, bound / np.where(total > 0, total, 1.0), 0.0)


def kv_widths(m: ModelColumns) -> tuple[Array, Array]:
    """Widths of the keys and values one token has in attention (all heads; MLA decompresses its
    latent to per-head keys and values)."""
    k_width = np.where(m.is_mla > 0, m.n_heads * m.qk_head_dim, m.kv_heads * m.qk_head_dim)
    v_width = np.where(m.is_mla > 0, m.n_heads * m.v_head_dim, m.kv_heads * m.qk_head_dim)
    return k_width, v_width


def kv_cache_read_bytes(m: ModelColumns, *, sequences: Array, context: Array, tp: Array = 1.0,
                        kv_bytes: Array = 2.0) -> Array:
    """Bytes of one block's KV cache a device reads per decode step: K and V per KV head (split
    across tp, at least one head per device), or MLA's latent and rotary key (replicated)."""
    tp = as_array(tp)
    std = 2 * np.maximum(m.kv_heads / tp, 1.0) * m.qk_head_dim
    mla = m.kv_lora_rank + m.qk_rope_head_dim
    return as_array(sequences) * as_array(context) * np.where(m.is_mla > 0, mla, std) * as_array(kv_bytes)


def _attention(m: ModelColumns, fwd, roof: Roofline, T: Array, s: Array, tp: Array, e: Array,
               mm_bytes: Array, flash: Array, dropout: Array, causal_discount: Array,
               kv_read_bytes: Array | None) -> tuple[Array, Array, Array, Array]:
    """(projection GEMMs, their memory-bound share, attention core, its memory-bound share)."""
    L, h, a = m.n_layers, m.d_model, m.n_heads
    qkv_n = fwd["qkv"] / L / (2 * h) / tp
    qkv = roof.gemm(T, qkv_n, h, mm_bytes)
    out = roof.gemm(T, h, a * m.v_head_dim / tp, mm_bytes)
    gemms = qkv[0] + out[0]
    # Attention core. Fused (flash) attention runs at the measured attention efficiency. Unfused
    # attention is two batched GEMMs at the matmul efficiency plus the traffic of the s x s score
    # matrix: write scores, read and write the softmax, and with dropout a 1-byte mask and its
    # output (the tensors of Korthikanti et al.'s 5as^2b term); backward moves about twice that.
    # Fused kernels skip the masked half of a causal score matrix; unfused attention computes and
    # stores all of it, whatever the FLOP-counting convention says.
    attn_flops = T * (fwd["attention_scores"] + fwd["attention_values"]) / L / tp
    discounted = m.causal * causal_discount > 0
    full_attn_flops = attn_flops * np.where(discounted, 2.0, 1.0)
    flash_core = attn_flops / roof.attention_flops_per_s
    score_bytes = a * T * s / tp * (3 * e + dropout * (1 + e))
    score_time = score_bytes / roof.bytes_per_s
    eager_core = full_attn_flops / roof.eager_attention_flops_per_s + score_time
    flash_bound = 0.0 * flash_core
    if kv_read_bytes is not None:  # decode: the kernel streams the KV cache from memory
        kv_time = as_array(kv_read_bytes) / roof.bytes_per_s
        flash_bound = np.where(kv_time > flash_core, 1.0, 0.0)
        flash_core = np.maximum(flash_core, kv_time)
        score_time = score_time + kv_time
        eager_core = eager_core + kv_time
    core = np.where(flash > 0, flash_core, eager_core)
    eager_bound = score_time / np.where(eager_core > 0, eager_core, 1.0)
    core_bound = np.where(flash > 0, flash_bound, eager_bound)
    return gemms, _bound_share([qkv, out]), core, core_bound


def _mlps(m: ModelColumns, roof: Roofline, T: Array, tp: Array, ep: Array, e: Array,
          mm_bytes: Array, experts_touched: Array | None = None, expert_tp: Array | None = None
          ) -> tuple[Array, Array, Array, Array]:
    """(dense MLP, its memory-bound share, MoE layer, its memory-bound share). ``experts_touched``:
    distinct routed experts whose weights are read (default all: large training batches)."""
    h = m.d_model
    hidden_mult = m.mlp_matrices - 1  # gate+up (gated) or fc1
    up = roof.gemm(T, hidden_mult * m.d_ff / tp, h, mm_bytes)
    down = roof.gemm(T, h, m.d_ff / tp, mm_bytes)
    dense = up[0] + down[0]
    dense_bound = _bound_share([up, down])
    if not np.any(m.n_experts > 0):
        return dense, dense_bound, 0.0, 0.0  # no MoE block in any row
    touched = m.n_experts if experts_touched is None else as_array(experts_touched)
    local_experts = touched / ep  # grouped GEMMs read each touched local expert's weights once
    routed_tokens = T * m.experts_per_token  # token-expert pairs a device processes
    ffe, n_sh = m.d_ff_expert, m.n_shared_experts
    etp = tp if expert_tp is None else as_array(expert_tp)  # ranks one expert is split across
    parts = [
        roof.gemm(routed_tokens, hidden_mult * ffe / etp, h, mm_bytes, local_experts, expert=True),
        roof.gemm(routed_tokens, h, ffe / etp, mm_bytes, local_experts, expert=True),
    ]
    sh_up = roof.gemm(T, hidden_mult * n_sh * ffe / tp, h, mm_bytes)
    sh_down = roof.gemm(T, h, n_sh * ffe / tp, mm_bytes)
    shared = np.where(n_sh > 0, sh_up[0] + sh_down[0], 0.0)
    router = roof.gemm(T, m.n_experts, h, e, quantized=False)
    moe = parts[0][0] + parts[1][0] + shared + router[0]
    parts += [(np.where(n_sh > 0, sh_up[0], 0.0), sh_up[1]),
              (np.where(n_sh > 0, sh_down[0], 0.0), sh_down[1]), router]
    return dense, dense_bound, moe, _bound_share(parts)


def _elementwise(m: ModelColumns, roof: Roofline, T: Array, tp: Array, outside: Array, e: Array
                 ) -> tuple[Array, Array]:
    """Seconds of the memory-bound element-wise work of a dense and of an MoE block.

    Bytes per token and block (forward): two norms (read+write h each), two residual adds (read
    2h, write h), rotary on Q and K (read+write), the MLP activation (gated: read 2 ff, write ff;
    otherwise read ff, write ff); MoE adds permute/unpermute copies."""
    h = m.d_model
    q_width = m.n_heads * m.qk_head_dim
    k_width = kv_widths(m)[0]
    act_rw = np.where(m.mlp_matrices >= 3, 3.0, 2.0)
    base_elem = 10 * h / outside + 2 * (q_width + k_width) / tp
    dense_elem_bytes = e * T * (base_elem + act_rw * m.d_ff / tp)
    moe_elem_bytes = e * T * (base_elem + act_rw * (m.experts_per_token + m.n_shared_experts)
                              * m.d_ff_expert / tp + 4 * m.experts_per_token * h / outside)
    per_byte = roof.elementwise_s_per_byte
    return dense_elem_bytes * per_byte, moe_elem_bytes * per_byte


def block_forward(
    m: ModelColumns,
    *,
    tokens: Array,
    context: Array,
    hw: Roofline | HardwareColumns,
    tp: Array = 1.0,
    sequence_parallel: Array = 0.0,
    ep: Array = 1.0,
    act_bytes: Array = 2.0,
    matmul_bytes: Array = 2.0,
    flash: Array = 1.0,
    dropout: Array = 0.0,
    causal_discount: Array = 1.0,
    kv_read_bytes: Array | None = None,
    experts_touched: Array | None = None,
    expert_tp: Array | None = None,
) -> BlockForward:
    """Forward time of one transformer block on one device, by component.

    ``tokens``: tokens the device processes in this pass (training: micro_batch x seq_len / cp;
    prefill: prompt tokens; decode: sequences in the batch). ``context``: keys each query attends
    to before any causal discount (training and prefill: the full sequence length; decode: the
    current KV length, with ``causal_discount`` = 0). ``kv_read_bytes``: bytes of K/V the
    attention reads from memory (decode: ``kv_cache_read_bytes``); the fused core then takes the
    longer of its FLOP time and that read. ``matmul_bytes``: operand bytes of the linear layers
    (1 under fp8); ``act_bytes``: activation bytes (router and element-wise work).
    ``sequence_parallel``: element-wise regions are split across tp (Korthikanti et al. 2022).
    ``experts_touched``: distinct routed experts a pass reads (decode at a small batch touches few;
    see ``expected_experts_touched``); default every expert. ``expert_tp``: ranks one expert's
    matrices are split across (default tp, Megatron's expert tensor parallelism = tp).
    ``hw``: a ``Roofline``, or hardware columns taken at their efficiencies with default overheads.
    """
    roof = hw if isinstance(hw, Roofline) else Roofline.from_hardware(hw)
    T, s = as_array(tokens), as_array(context)
    tp, ep, e = as_array(tp), as_array(ep), as_array(act_bytes)
    outside = np.where(as_array(sequence_parallel) > 0, tp, 1.0)
    fwd = forward_flops_per_token(m, s, causal_discount=causal_discount)
    gemms, gemms_bound, core, core_bound = _attention(
        m, fwd, roof, T, s, tp, e, as_array(matmul_bytes), as_array(flash), as_array(dropout),
        as_array(causal_discount), kv_read_bytes)
    dense, dense_bound, moe, moe_bound = _mlps(m, roof, T, tp, ep, e, as_array(matmul_bytes),
                                               experts_touched, expert_tp)
    dense_elem, moe_elem = _elementwise(m, roof, T, tp, outside, e)
    return BlockForward(gemms, core, dense, moe, dense_elem, moe_elem,
                        gemms_bound, core_bound, dense_bound, moe_bound)


def attention_forward(m: ModelColumns, *, tokens: Array, context: Array, hw: Roofline | HardwareColumns,
                      tp: Array = 1.0, act_bytes: Array = 2.0, flash: Array = 1.0,
                      causal_discount: Array = 1.0, kv_read_bytes: Array | None = None) -> Array:
    """Seconds of one block's attention core alone (no projections) for ``tokens`` queries over
    ``context`` keys; see ``block_forward``. Serving adds decode and prefill cores of one iteration."""
    roof = hw if isinstance(hw, Roofline) else Roofline.from_hardware(hw)
    s = as_array(context)
    fwd = forward_flops_per_token(m, s, causal_discount=causal_discount)
    e = as_array(act_bytes)
    return _attention(m, fwd, roof, as_array(tokens), s, as_array(tp), e, e, as_array(flash), 0.0,
                      as_array(causal_discount), kv_read_bytes)[2]


def expected_experts_touched(m: ModelColumns, tokens: Array) -> Array:
    """Expected distinct routed experts ``tokens`` tokens select with top-k routing, uniform
    routing assumed: E (1 - (1 - k/E)^tokens). Each token picks k of E experts; an expert is
    missed by one token with probability 1 - k/E (0 for dense rows)."""
    E = np.maximum(m.n_experts, 1.0)
    k = m.experts_per_token
    return np.where(m.n_experts > 0, E * (1.0 - (1.0 - k / E) ** as_array(tokens)), 0.0)


def lm_head_forward(m: ModelColumns, *, tokens: Array, hw: Roofline | HardwareColumns,
                    tp: Array = 1.0, matmul_bytes: Array = 2.0) -> tuple[Array, Array]:
    """(seconds, memory-bound flag) of the vocabulary projection of ``tokens`` tokens on one
    device (vocabulary split across tp). Decode passes the sequences in the batch."""
    roof = hw if isinstance(hw, Roofline) else Roofline.from_hardware(hw)
    return roof.gemm(as_array(tokens), m.vocab_size / as_array(tp), m.d_model, as_array(matmul_bytes),
                     quantized=False)
