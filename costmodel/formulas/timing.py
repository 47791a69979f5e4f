"""Training step time: compute per micro-batch from a roofline per matrix multiplication, memory-bound
element-wise work from bytes moved, exposed communication per parallelism, the pipeline bubble and
the optimizer step. Reports a lower bound (all communication hidden), an upper bound (none hidden)
and the point estimate the planner ranks by (the framework's overlap knobs).

Sources:
- GEMM time: roofline (Williams, Waterman & Patterson 2009): max(FLOPs / achieved peak, bytes /
  achieved bandwidth) plus a fixed per-kernel overhead; 'achieved' fractions come from the catalog's
  efficiency data (e.g. an 8192^3 BF16 GEMM at 798 of 989 TFLOP/s on H100 SXM).
- Backward = 2 x forward for GEMMs and attention (Narayanan et al. 2021, Sec. 5.1).
- Pipeline: with m micro-batches, p stages and v virtual stages per device the bubble is
  (p - 1)/v micro-batch times (Narayanan et al. 2021, Sec. 2.2, eq. for the interleaved schedule).
- Communication volumes per parallelism: see ``comms`` and the comments below (Megatron-LM:
  Shoeybi et al. 2019 Sec. 3 for TP, Korthikanti et al. 2022 Sec. 4.2.2 for SP; ZeRO Sec. 7 for
  data-parallel volumes; ring attention (Liu et al. 2023) for CP; GShard/Megatron-core all-to-all
  dispatch and combine for EP).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from costmodel.specs.columns import Array, ModelColumns, as_array, model_columns
from costmodel.formulas.comms import all_gather_time, all_reduce_time, all_to_all_time, group, p2p_time, reduce_scatter_time
from costmodel.formulas.flops import forward_flops_per_token, training_flops_per_token
from costmodel.formulas.hardware import HardwareColumns
from costmodel.formulas.memory import pipeline_stages, stage_parameters
from costmodel.formulas.params import layer_params
from costmodel.specs.codes import Recompute
from costmodel.specs.setup import TrainingColumns

STEP_COMPONENTS = (
    "compute", "tp_comm", "cp_comm", "ep_comm", "pp_comm", "dp_comm", "bubble", "optimizer",
)


@dataclass(frozen=True)
class TimingKnobs:
    """What the framework overlaps (fractions of a communication that can hide behind compute,
    0..1) and the element-wise traffic multiplier. Values come from ``data/frameworks.yaml``."""

    overlap_grad_reduce: Array = 1.0  # DP gradient reduction behind the last backward
    overlap_param_gather: Array = 1.0  # ZeRO-1/2 parameter all-gather behind the next forward
    zero3_prefetch: Array = 1.0  # ZeRO-3/FSDP all-gathers behind the micro-batch's compute
    tp_comm_overlap: Array = 0.0  # TP collectives hidden behind GEMMs (TE userbuffers, async TP)
    cp_comm_overlap: Array = 1.0  # ring-attention KV exchange behind attention compute
    ep_comm_overlap: Array = 0.0  # MoE all-to-all hidden behind expert compute
    pp_comm_overlap: Array = 1.0  # pipeline send/receive behind compute
    elementwise_traffic_factor: Array = 1.0  # multiplier on the counted element-wise bytes
    selective_keep_fraction: Array = 1.0  # see memory.layer_activation_bytes
    matmul_efficiency_scale: Array = 1.0  # framework's GEMM kernels relative to the calibrated ones
    gemm_kernel_overhead_s: Array = 5e-6  # fixed launch/tail time per GEMM (data/assumptions.yaml)
    attention_efficiency_scale: Array = 1.0  # framework's attention kernel relative to calibrated


def _gemm_time(M: Array, N: Array, K: Array, peak: Array, bandwidth: Array, overhead: Array,
               elem_bytes: Array, weight_sets: Array = 1.0) -> Array:
    """Roofline time of an (M x K) @ (K x N) product at achieved ``peak`` FLOP/s and
    ``bandwidth`` bytes/s; ``weight_sets`` distinct K x N matrices (grouped expert GEMMs) are read
    once each."""
    compute = 2.0 * M * N * K / peak
    memory = elem_bytes * (M * K + weight_sets * K * N + M * N) / bandwidth
    return np.maximum(compute, memory) + overhead


def training_step_time(
    model: ModelColumns,
    t: TrainingColumns,
    hw: HardwareColumns,
    k: TimingKnobs | None = None,
) -> dict[str, Array]:
    """Step time (s) by component plus bounds, throughput and utilisation, for every row."""
    k = k or TimingKnobs()
    m = model_columns(model)
    hw = replace(hw, matmul_efficiency=hw.matmul_efficiency * as_array(k.matmul_efficiency_scale),
                 attention_efficiency=hw.attention_efficiency * as_array(k.attention_efficiency_scale))
    p = layer_params(m)
    tp, pp, vpp, cp, dp, ep = t.tp, t.pp, t.vpp, t.cp, t.dp, t.ep
    b, s = t.micro_batch, t.seq_len
    e = t.act_bytes
    T = b * s / cp  # tokens a device processes per micro-batch (after SP gathers)
    outside = np.where(t.sp > 0, tp, 1.0)
    mm_bytes = t.matmul_bytes  # operand bytes of the linear layers (1 under fp8 training)
    h, a = m.d_model, m.n_heads
    fwd = forward_flops_per_token(m, s, causal_discount=t.causal_discount, vocab_head=t.vocab_head)
    L = m.n_layers

    # ---- one block's forward time for one micro-batch --------------------------------------
    peak = hw.peak_matmul_flops_per_s * hw.matmul_efficiency  # achieved GEMM FLOP/s
    bw = hw.achieved_memory_bandwidth
    ovh = as_array(k.gemm_kernel_overhead_s)

    def gemm(M, N, K, elem, weight_sets=1.0):
        return _gemm_time(M, N, K, peak, bw, ovh, elem, weight_sets)

    qkv_n = fwd["qkv"] / L / (2 * h) / tp
    attn_common = gemm(T, qkv_n, h, mm_bytes) + gemm(T, h, a * m.v_head_dim / tp, mm_bytes)
    # Attention core. Fused (flash) attention runs at the measured attention efficiency. Unfused
    # attention is two batched GEMMs at the matmul efficiency plus the traffic of the s x s score
    # matrix: write scores, read and write the softmax, and with dropout a 1-byte mask and its
    # output (the tensors of Korthikanti et al.'s 5as^2b term); backward moves about twice that.
    # Fused kernels skip the masked half of a causal score matrix; unfused attention computes and
    # stores all of it, whatever the FLOP-counting convention says.
    attn_flops = T * (fwd["attention_scores"] + fwd["attention_values"]) / L / tp
    discounted = m.causal * t.causal_discount > 0
    full_attn_flops = attn_flops * np.where(discounted, 2.0, 1.0)
    flash_core = attn_flops / (hw.peak_attention_flops_per_s * hw.attention_efficiency)
    score_bytes = a * T * s / tp * (3 * e + t.dropout * (1 + e))
    eager_core = (full_attn_flops / (hw.peak_attention_flops_per_s * hw.matmul_efficiency)
                  + score_bytes / bw)
    attn_core = np.where(t.flash > 0, flash_core, eager_core)
    hidden_mult = m.mlp_matrices - 1  # gate+up (gated) or fc1
    dense_mlp = gemm(T, hidden_mult * m.d_ff / tp, h, mm_bytes) + gemm(T, h, m.d_ff / tp, mm_bytes)
    local_experts = m.n_experts / ep
    routed_tokens = T * m.experts_per_token  # token-expert pairs a device processes
    if np.any(m.n_experts > 0):
        moe_mlp = (
            gemm(routed_tokens, hidden_mult * m.d_ff_expert / tp, h, mm_bytes, local_experts)
            + gemm(routed_tokens, h, m.d_ff_expert / tp, mm_bytes, local_experts)
            + np.where(m.n_shared_experts > 0,
                       gemm(T, hidden_mult * m.n_shared_experts * m.d_ff_expert / tp, h, mm_bytes)
                       + gemm(T, h, m.n_shared_experts * m.d_ff_expert / tp, mm_bytes), 0.0)
            + gemm(T, m.n_experts, h, e)  # router
        )
    else:
        moe_mlp = 0.0  # no MoE block in any row
    # Element-wise bytes per token and block (forward): two norms (read+write h each), two
    # residual adds (read 2h, write h), rotary on Q and K (read+write), the MLP activation
    # (gated: read 2 ff, write ff; otherwise read ff, write ff); MoE adds permute/unpermute copies.
    q_width = a * m.qk_head_dim
    k_width = np.where(m.is_mla > 0, a * m.qk_head_dim, m.kv_heads * m.qk_head_dim)
    act_rw = np.where(m.mlp_matrices >= 3, 3.0, 2.0)
    base_elem = 10 * h / outside + 2 * (q_width + k_width) / tp
    dense_elem_bytes = e * T * (base_elem + act_rw * m.d_ff / tp)
    moe_elem_bytes = e * T * (base_elem + act_rw * (m.experts_per_token + m.n_shared_experts)
                              * m.d_ff_expert / tp + 4 * m.experts_per_token * h / outside)
    elem_time = k.elementwise_traffic_factor / bw
    dense_other_fwd = attn_common + dense_mlp + dense_elem_bytes * elem_time
    moe_other_fwd = attn_common + moe_mlp + moe_elem_bytes * elem_time

    # Forward + backward (2x) + recomputed forward: full = whole block, selective = attention core
    # and the share of the rest the policy does not keep.
    r = t.recompute
    keep = as_array(k.selective_keep_fraction)

    def block_time(other_fwd: Array) -> Array:
        base = 3 * (other_fwd + attn_core)
        extra = np.where(r == Recompute.FULL, other_fwd + attn_core,
                         np.where(r == Recompute.SELECTIVE, attn_core + (1 - keep) * other_fwd, 0.0))
        return base + extra

    dense_block = block_time(dense_other_fwd)
    moe_block = block_time(moe_other_fwd)
    head = t.vocab_head * (
        3 * gemm(T, m.vocab_size / tp, h, mm_bytes)
        # cross-entropy: ~3 passes over the logits at (16-bit + fp32) bytes each
        + 3 * T * m.vocab_size / tp * (e + 4.0) * elem_time
    )

    # ---- per-micro-batch communication of one block -----------------------------------------
    # Group strides follow the rank placement (default Megatron order tp-cp-dp-pp); expert groups
    # are carved out of the data x context ranks (Megatron-core MoE).
    fab = hw.fabric
    dpcp_stride = np.minimum(np.where(cp > 1, t.stride_cp, np.inf), t.stride_dp)
    act_msg = T * h * e  # bytes of one block's activations on a TP rank
    tp_group = group(tp, t.stride_tp, fab)
    tp_collectives = 4 + 2 * (r == Recompute.FULL)  # 2 fwd + 2 bwd all-reduces (AG+RS pairs with SP)
    tp_block = tp_collectives * all_reduce_time(act_msg, tp_group, fab)
    ep_group = group(ep, dpcp_stride, fab)
    ep_msg = T / outside * m.experts_per_token * h * e
    ep_collectives = 4 + 2 * (r == Recompute.FULL)  # dispatch + combine, forward and backward
    ep_block = ep_collectives * all_to_all_time(ep_msg, ep_group, fab)
    cp_group = group(cp, t.stride_cp, fab)
    kv_chunk = T * (k_width + np.where(m.is_mla > 0, a * m.v_head_dim, m.kv_heads * m.qk_head_dim)) / tp * e
    cp_block = 3 * (cp - 1) * p2p_time(kv_chunk, cp_group.spans_domains, fab)
    cp_block_exposed = np.maximum(0.0, cp_block - as_array(k.cp_comm_overlap) * 3 * attn_core)

    # ---- pipeline stages: first, second and last; the slowest sets the pace ------------------
    layers_per_stage = L / pp
    last = pp - 1
    stage_compute = stage_tp = stage_ep = stage_cp = stage_cp_exp = stage_moe_n = None
    best_params_dense = best_params_expert = None
    for stage in pipeline_stages(m, pp):
        dense_n, moe_n, params_dense, params_expert = stage_parameters(m, p, stage, pp, tp, ep)
        compute = dense_n * dense_block + moe_n * moe_block + (stage == last) * head
        tp_c = layers_per_stage * tp_block
        ep_c = moe_n * ep_block
        cp_c = layers_per_stage * cp_block
        cp_e = layers_per_stage * cp_block_exposed
        if stage_compute is None:
            stage_compute, stage_tp, stage_ep, stage_cp, stage_cp_exp = compute, tp_c, ep_c, cp_c, cp_e
            stage_moe_n = moe_n
            best_params_dense, best_params_expert = params_dense, params_expert
        else:
            slower = compute + tp_c + ep_c > stage_compute + stage_tp + stage_ep
            stage_compute = np.where(slower, compute, stage_compute)
            stage_tp = np.where(slower, tp_c, stage_tp)
            stage_ep = np.where(slower, ep_c, stage_ep)
            stage_cp = np.where(slower, cp_c, stage_cp)
            stage_cp_exp = np.where(slower, cp_e, stage_cp_exp)
            stage_moe_n = np.where(slower, moe_n, stage_moe_n)
            best_params_dense = np.maximum(best_params_dense, params_dense)
            best_params_expert = np.maximum(best_params_expert, params_expert)

    # Pipeline send/receive: forward activations and backward gradients per virtual stage
    # (Megatron scatter-gather optimisation sends 1/tp of the tensor when SP is on).
    pp_crosses = t.stride_pp >= fab.scaleup_domain
    pp_msg = act_msg / outside
    pp_raw = np.where(pp > 1, 2 * vpp * p2p_time(pp_msg, pp_crosses, fab), 0.0)

    # Data parallelism over dp x cp (dense) and dp x cp / ep (experts).
    g_dense = group(dp * cp, dpcp_stride, fab)
    g_expert = group(dp * cp / ep, dpcp_stride * ep, fab)
    gb, wb = t.grad_bytes, t.weight_bytes
    z = t.zero_stage
    grad_sync = np.where(
        z == 0,
        all_reduce_time(best_params_dense * gb, g_dense, fab) + all_reduce_time(best_params_expert * gb, g_expert, fab),
        reduce_scatter_time(best_params_dense * gb, g_dense, fab) + reduce_scatter_time(best_params_expert * gb, g_expert, fab),
    )
    param_gather = all_gather_time(best_params_dense * wb, g_dense, fab) + all_gather_time(best_params_expert * wb, g_expert, fab)
    n_micro = t.n_micro

    # ---- assemble the step -----------------------------------------------------------------------
    tp_exp = stage_tp * (1 - as_array(k.tp_comm_overlap))
    ep_exp = stage_ep * (1 - as_array(k.ep_comm_overlap))
    pp_exp = pp_raw * (1 - as_array(k.pp_comm_overlap))
    zero3_micro = np.where(z >= 3, 2 * param_gather + grad_sync, 0.0)
    zero3_exp = np.maximum(0.0, zero3_micro - as_array(k.zero3_prefetch) * stage_compute)
    micro = stage_compute + tp_exp + ep_exp + stage_cp_exp + pp_exp + zero3_exp
    bubble = (pp - 1) / vpp * micro
    bwd_window = 2.0 / 3.0 * stage_compute
    fwd_window = 1.0 / 3.0 * stage_compute
    dp_exp = np.where(
        z >= 3, 0.0,
        np.maximum(0.0, grad_sync - as_array(k.overlap_grad_reduce) * bwd_window)
        + np.where(z >= 1, np.maximum(0.0, param_gather - as_array(k.overlap_param_gather) * fwd_window), 0.0),
    )
    # Optimizer: read gradient, read+write master copy and states, write the 16-bit weights.
    shard = np.where(z >= 1, 1.0, 0.0)
    opt_params = (best_params_dense / np.where(shard > 0, dp * cp, 1.0)
                  + best_params_expert / np.where(shard > 0, dp * cp / ep, 1.0))
    opt_bytes = opt_params * (2 * (t.master_bytes + t.optimizer_state_bytes) + gb + wb)
    optimizer = opt_bytes / bw

    parts = {
        "compute": n_micro * stage_compute,
        "tp_comm": n_micro * tp_exp,
        "cp_comm": n_micro * stage_cp_exp,
        "ep_comm": n_micro * ep_exp,
        "pp_comm": n_micro * pp_exp,
        "dp_comm": dp_exp + n_micro * zero3_exp,
        "bubble": bubble,
        "optimizer": optimizer,
    }
    step = sum(parts.values())
    slots = n_micro + (pp - 1) / vpp
    per_micro_comm = stage_tp + stage_ep + stage_cp + pp_raw + zero3_micro
    dp_raw = np.where(z >= 3, 0.0, grad_sync + np.where(z >= 1, param_gather, 0.0))
    lower = slots * np.maximum(stage_compute, per_micro_comm) + np.maximum(
        0.0, dp_raw - n_micro * stage_compute) + optimizer
    upper = slots * (stage_compute + per_micro_comm) + dp_raw + optimizer

    # ---- per-collective report: bytes a device sends per call, calls per step, group, fabric --
    grad_exposed = np.where(z >= 3, n_micro * zero3_exp * _share(grad_sync, 2 * param_gather),
                            np.maximum(0.0, grad_sync - as_array(k.overlap_grad_reduce) * bwd_window))
    gather_exposed = np.where(z >= 3, n_micro * zero3_exp * _share(2 * param_gather, grad_sync),
                              np.where(z >= 1, np.maximum(0.0, param_gather - as_array(k.overlap_param_gather) * fwd_window), 0.0))
    has_dp = dp * cp > 1
    comm = {
        "tp_allreduce": (act_msg, np.where(tp > 1, n_micro * layers_per_stage * tp_collectives, 0.0), tp,
                         tp_group.spans_domains, n_micro * stage_tp, n_micro * tp_exp),
        "cp_kv_exchange": (kv_chunk, np.where(cp > 1, n_micro * layers_per_stage * 3 * (cp - 1), 0.0), cp,
                           cp_group.spans_domains, n_micro * stage_cp, n_micro * stage_cp_exp),
        "ep_alltoall": (ep_msg, np.where(ep > 1, n_micro * stage_moe_n * ep_collectives, 0.0), ep,
                        ep_group.spans_domains, n_micro * stage_ep, n_micro * ep_exp),
        "pp_send_recv": (pp_msg, np.where(pp > 1, n_micro * 2 * vpp, 0.0), np.where(pp > 1, 2.0, 1.0),
                         pp_crosses & (pp > 1), n_micro * pp_raw, n_micro * pp_exp),
        "dp_grad_sync": ((best_params_dense + best_params_expert) * gb,
                         np.where(has_dp, np.where(z >= 3, n_micro, 1.0), 0.0), dp * cp,
                         g_dense.spans_domains, np.where(z >= 3, n_micro, 1.0) * grad_sync, grad_exposed),
        "dp_param_gather": ((best_params_dense + best_params_expert) * wb,
                            np.where(has_dp, np.where(z >= 3, 2 * n_micro, np.where(z >= 1, 1.0, 0.0)), 0.0),
                            dp * cp, g_dense.spans_domains,
                            np.where(z >= 3, 2 * n_micro, np.where(z >= 1, 1.0, 0.0)) * param_gather,
                            gather_exposed),
    }

    model_flops, hw_flops = training_flops_per_token(
        m, s, r, causal_discount=t.causal_discount, vocab_head=t.vocab_head,
        selective_keep_fraction=keep, forward=fwd)
    tokens = t.global_batch * s
    n = t.n_devices
    out = {f"{name}_s": v for name, v in parts.items()}
    out.update({
        "step_time_s": step,
        "step_time_lower_s": np.minimum(lower, step),
        "step_time_upper_s": np.maximum(upper, step),
        "tokens_per_step": tokens,
        "model_flops_per_step": model_flops.total * tokens,
        "hardware_flops_per_step": hw_flops.total * tokens,
    })
    out["tokens_per_s_per_device"] = tokens / step / n
    out["model_flops_per_s_per_device"] = out["model_flops_per_step"] / step / n
    out["mfu"] = out["model_flops_per_s_per_device"] / hw.peak_matmul_flops_per_s
    out["hfu"] = out["hardware_flops_per_step"] / step / n / hw.peak_matmul_flops_per_s
    for name, (nbytes, calls, size, spans, raw, exposed) in comm.items():
        out[f"comm_{name}_bytes_per_call"] = nbytes + 0.0 * step
        out[f"comm_{name}_calls_per_step"] = calls + 0.0 * step
        out[f"comm_{name}_group_size"] = size + 0.0 * step
        out[f"comm_{name}_spans_nodes"] = (spans + 0.0 * step) > 0
        out[f"comm_{name}_raw_s"] = raw + 0.0 * step
        out[f"comm_{name}_exposed_s"] = exposed + 0.0 * step
    return out


COLLECTIVES = ("tp_allreduce", "cp_kv_exchange", "ep_alltoall", "pp_send_recv", "dp_grad_sync",
               "dp_param_gather")


def _share(part: Array, other: Array) -> Array:
    total = part + other
    return np.where(total > 0, part / np.where(total > 0, total, 1.0), 0.0)
