"""Training step time: compute per micro-batch from a roofline per matrix multiplication, memory-bound
element-wise work from bytes moved, exposed communication per parallelism, the pipeline bubble and
the optimizer step. Reports a lower bound (all communication hidden), an upper bound (none hidden)
and the point estimate the planner ranks by (the framework's overlap knobs).

Sources:
- One block's forward time: ``blocks.block_forward`` (roofline per GEMM, Williams, Waterman &
  Patterson 2009; attention after Korthikanti et al. 2022 and Dao et al. 2022).
- Backward = 2 x forward for GEMMs and attention (Narayanan et al. 2021, Sec. 5.1).
- Pipeline: with m micro-batches, p stages and v virtual stages per device the bubble is
  (p - 1)/v micro-batch times (Narayanan et al. 2021, Sec. 2.2; see ``pipeline``).
- Communication volumes per parallelism: see ``comms`` and the comments below (Megatron-LM:
  Shoeybi et al. 2019 Sec. 3 for TP, Korthikanti et al. 2022 Sec. 4.2.2 for SP; ZeRO Sec. 7 for
  data-parallel volumes; ring attention (Liu et al. 2023) for CP; GShard/Megatron-core all-to-all
  dispatch and combine for EP).
- Parameter-efficient fine-tuning (``peft`` > 0; LoRA, Hu et al. 2021; QLoRA, Dettmers et al.
  2023): a frozen linear layer needs only its input gradient, so its GEMMs cost 2 x forward, not 3 x
  (the LM head likewise; the attention core and element-wise work are unchanged). Each adapter
  adds two skinny GEMMs per adapted matrix (x A^T, then B), forward and full backward (3 x),
  on the roofline like any GEMM. A base stored below the training weight format is dequantized
  before each use, forward, backward and recomputed forward (bitsandbytes ``MatMul4Bit``:
  ``dequantize_4bit`` then a 16-bit matmul): a memory-bound pass reading the stored bits and
  writing the 16-bit copy, base_bits / 8 + weight bytes per weight, at the element-wise rate (so
  ``elementwise_traffic_factor`` scales it). An 8-bit base is treated the same way (LLM.int8's
  int8 matmul with fp16 outliers is not modelled). Gradient reduction, the optimizer step and
  the ZeRO-1/2 parameter all-gather cover the adapters only; ZeRO-3 still gathers the frozen base
  (at its stored bits) every micro-batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np

from costmodel.specs.columns import Array, ModelColumns, as_array, model_columns
from costmodel.formulas.comms import all_gather_time, all_reduce_time, all_to_all_time, group, p2p_time, reduce_scatter_time
from costmodel.formulas.flops import forward_flops_per_token, training_flops_per_token
from costmodel.formulas.hardware import HardwareColumns
from costmodel.formulas.blocks import (  # noqa: F401  (_gemm_time: re-exported for callers)
    BlockForward, Roofline, _gemm_time, block_forward, kv_widths, lm_head_forward)
from costmodel.formulas.pipeline import (Pipeline, bubble_microbatches, pipeline_bubble, pipeline_of, pipeline_stages,
                                         select_stage, stage_parameters, stage_peft_parameters)
from costmodel.formulas.params import (adapter_forward_flops_per_token, adapter_params, frozen_linear_params,
                                       layer_params, linear_layers, lora_targeted)
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
    gemm_half_efficiency_gflops: Array = 0.0  # GEMM size at half efficiency (blocks docstring)
    expert_gemm_efficiency_scale: Array = 1.0  # routed-expert grouped GEMMs relative to dense ones
    attention_efficiency_scale: Array = 1.0  # framework's attention kernel relative to calibrated


def _block_times(m: ModelColumns, t: TrainingColumns, blk: BlockForward, roof: Roofline,
                 keep: Array, peft: SimpleNamespace | None = None) -> tuple[Array, Array, Array]:
    """Forward + backward (2x) + recomputed forward of one dense and one MoE block per
    micro-batch, and of the LM head and loss on the last stage. ``peft``: ``_peft_block`` when
    some row freezes its base (those rows then follow ``_peft_block_time``)."""
    r = t.recompute
    attn_core = blk.attention_core

    # Full recomputation repeats the whole block; selective the attention core and the share of
    # the rest the policy does not keep.
    def block_time(other_fwd: Array) -> Array:
        base = 3 * (other_fwd + attn_core)
        extra = np.where(r == Recompute.FULL, other_fwd + attn_core,
                         np.where(r == Recompute.SELECTIVE, attn_core + (1 - keep) * other_fwd, 0.0))
        return base + extra

    T = t.micro_batch * t.seq_len / t.cp
    e = t.act_bytes
    head_gemm = lm_head_forward(m, tokens=T, hw=roof, tp=t.tp, matmul_bytes=t.matmul_bytes)[0]
    # cross-entropy: ~3 passes over the logits at (16-bit + fp32) bytes each
    loss = 3 * T * m.vocab_size / t.tp * (e + 4.0) * roof.elementwise_s_per_byte
    head = t.vocab_head * (3 * head_gemm + loss)
    dense, moe = block_time(blk.dense_other), block_time(blk.moe_other)
    if peft is None:
        return dense, moe, head
    fz = t.frozen > 0
    dense_peft = _peft_block_time(t, blk.dense_other, blk.attention_gemms + blk.dense_mlp, attn_core,
                                  peft.dense_adapters, peft.dense_dequant, keep)
    moe_peft = _peft_block_time(t, blk.moe_other, blk.attention_gemms + blk.moe_mlp, attn_core,
                                peft.moe_adapters, peft.moe_dequant, keep)
    return (np.where(fz, dense_peft, dense), np.where(fz, moe_peft, moe),
            np.where(fz, t.vocab_head * (2 * head_gemm + loss), head))


def _peft_block_time(t: TrainingColumns, other_fwd: Array, gemm_fwd: Array, attn_core: Array,
                     adapters: Array, dequant: Array, keep: Array) -> Array:
    """One block of a frozen-base row: frozen GEMMs forward + input gradient (2x), attention core
    and element-wise work 3x, adapters 3x, a dequantization pass in forward and in backward, and
    the recomputed forward (with its own dequantization) under full or selective recomputation."""
    r = t.recompute
    base = 3 * (other_fwd + attn_core) - gemm_fwd + 3 * adapters + 2 * dequant
    rest = other_fwd + adapters + dequant
    extra = np.where(r == Recompute.FULL, rest + attn_core,
                     np.where(r == Recompute.SELECTIVE, attn_core + (1 - keep) * rest, 0.0))
    return base + extra


def _peft_block(m: ModelColumns, t: TrainingColumns, roof: Roofline, p) -> SimpleNamespace:
    """Forward seconds of one block's adapters (dense and MoE) and of one dequantization pass of
    its frozen weights, per micro-batch on one device. Adapter GEMMs are split across tp like their
    layer (x A^T: T x r x d_in/tp; then B: T x d_out/tp x r); routed experts' adapters run on the
    T k token copies over the device's local experts."""
    T = t.micro_batch * t.seq_len / t.cp
    r, tp = t.lora_rank, t.tp
    k, local_experts = m.experts_per_token, m.n_experts / t.ep
    gemm = lambda M, d_in, d_out, sets=1.0: (  # noqa: E731
        roof.gemm(M, r, d_in / tp, t.act_bytes, sets, quantized=False)[0]
        + roof.gemm(M, d_out / tp, r, t.act_bytes, sets, quantized=False)[0])
    attention, mlp, shared, routed = 0.0, 0.0, 0.0, 0.0
    for group, d_in, d_out, n in linear_layers(m):
        on = lora_targeted(group, t.lora_targets) * n
        if group in ("qv", "ko"):
            attention = attention + on * gemm(T, d_in, d_out)
        elif group == "mlp":
            mlp = mlp + on * gemm(T, d_in, d_out)
        else:
            shared = shared + on * m.n_shared_experts * gemm(T, d_in, d_out)
            routed = routed + on * np.where(m.n_experts > 0, gemm(T * k, d_in, d_out, local_experts), 0.0)
    dense_linear, moe_linear = frozen_linear_params(m, p)
    per_weight = np.where(t.base_weight_bits != t.weight_bits,
                          (t.base_weight_bytes + t.weight_bytes) * roof.elementwise_s_per_byte, 0.0)
    return SimpleNamespace(
        ap=adapter_params(m, r, t.lora_targets),
        dense_adapters=attention + mlp, moe_adapters=attention + shared + routed,
        dense_dequant=dense_linear / tp * per_weight,
        moe_dequant=(moe_linear / tp + local_experts * p.expert / tp) * per_weight)


def _block_comm(m: ModelColumns, t: TrainingColumns, hw: HardwareColumns, k: TimingKnobs,
                attn_core: Array) -> SimpleNamespace:
    """Per-micro-batch communication of one block (TP, EP, CP) plus the pipeline send/receive.

    Group strides follow the rank placement (default Megatron order tp-cp-dp-pp); expert groups
    are carved out of the data x context ranks (Megatron-core MoE)."""
    tp, cp, ep = t.tp, t.cp, t.ep
    T = t.micro_batch * t.seq_len / cp
    e, h = t.act_bytes, m.d_model
    r = t.recompute
    outside = np.where(t.sp > 0, tp, 1.0)
    fab = hw.fabric
    c = SimpleNamespace(outside=outside)
    c.dpcp_stride = np.minimum(np.where(cp > 1, t.stride_cp, np.inf), t.stride_dp)
    c.act_msg = T * h * e  # bytes of one block's activations on a TP rank
    c.tp_group = group(tp, t.stride_tp, fab)
    c.tp_collectives = 4 + 2 * (r == Recompute.FULL)  # 2 fwd + 2 bwd all-reduces (AG+RS pairs with SP)
    c.tp_block = c.tp_collectives * all_reduce_time(c.act_msg, c.tp_group, fab)
    # Expert groups: carved from dp x cp (etp = tp), or folded over tp x cp x dp with etp ranks
    # innermost (Megatron-core parallel folding), so an EP group may stay inside the TP domain.
    c.ep_stride = np.where(t.etp == tp, c.dpcp_stride, t.etp)
    c.ep_group = group(ep, c.ep_stride, fab)
    c.ep_msg = T / outside * m.experts_per_token * h * e
    c.ep_collectives = 4 + 2 * (r == Recompute.FULL)  # dispatch + combine, forward and backward
    c.ep_block = c.ep_collectives * all_to_all_time(c.ep_msg, c.ep_group, fab)
    c.cp_group = group(cp, t.stride_cp, fab)
    k_width, v_width = kv_widths(m)
    c.kv_chunk = T * (k_width + v_width) / tp * e
    c.cp_block = 3 * (cp - 1) * p2p_time(c.kv_chunk, c.cp_group.spans_domains, fab)
    c.cp_block_exposed = np.maximum(0.0, c.cp_block - as_array(k.cp_comm_overlap) * 3 * attn_core)
    # Pipeline send/receive: forward activations and backward gradients per virtual stage
    # (Megatron scatter-gather optimisation sends 1/tp of the tensor when SP is on).
    c.pp_crosses = t.stride_pp >= fab.scaleup_domain
    c.pp_msg = c.act_msg / outside
    c.pp_raw = np.where(t.pp > 1, 2 * t.vpp * p2p_time(c.pp_msg, c.pp_crosses, fab), 0.0)
    return c


def _slowest_stage(m: ModelColumns, p, t: TrainingColumns, dense_block: Array, moe_block: Array,
                   head: Array, c: SimpleNamespace, peft: SimpleNamespace | None = None,
                   pipe: Pipeline | None = None) -> dict[str, Array]:
    """Per-micro-batch compute and communication of the slowest of the first, second and last
    pipeline stages (it sets the pace), and the largest parameter counts of any of them (with
    ``peft``, also the largest adapter counts and frozen-weight bytes, ``_peft_stage_counts``)."""
    pipe = pipeline_of(m, t) if pipe is None else pipe
    last = t.pp - 1
    candidates = []
    params_dense = params_expert = None
    if peft is not None:
        _peft_stage_counts(m, p, t, peft, pipe)
    for stage in pipeline_stages(m, pipe):
        dense_n, moe_n, pd, pe = stage_parameters(m, p, stage, pipe, t.tp, t.expert_shard)
        blocks = dense_n + moe_n
        v = {
            "compute": dense_n * dense_block + moe_n * moe_block + (stage == last) * head,
            "tp": blocks * c.tp_block,
            "ep": moe_n * c.ep_block,
            "cp": blocks * c.cp_block,
            "cp_exposed": blocks * c.cp_block_exposed,
            "moe_n": moe_n,
            "layers": blocks,
        }
        candidates.append((v["compute"] + v["tp"] + v["ep"], v))
        params_dense = pd if params_dense is None else np.maximum(params_dense, pd)
        params_expert = pe if params_expert is None else np.maximum(params_expert, pe)
    best = select_stage(candidates)
    best["params_dense"], best["params_expert"] = params_dense, params_expert
    if peft is not None:
        best["peft"] = peft
    return best


def _peft_stage_counts(m: ModelColumns, p, t: TrainingColumns, peft: SimpleNamespace, pipe) -> None:
    """Largest (over the candidate stages) adapter counts, dense and expert, and bytes of the
    frozen base a ZeRO-3 all-gather moves (linear layers at their stored bits), on ``peft``."""
    wb, bb = t.weight_bytes, t.base_weight_bytes
    keys = ("adapters_dense", "adapters_expert", "frozen_dense_bytes", "frozen_expert_bytes")
    for key in keys:
        setattr(peft, key, 0.0)
    for stage in pipeline_stages(m, pipe):
        _, _, pd, pe = stage_parameters(m, p, stage, pipe, t.tp, t.expert_shard)
        linear, ad, ae = stage_peft_parameters(m, p, peft.ap, stage, pipe, t.tp, t.expert_shard)
        values = (ad, ae, (pd - linear) * wb + linear * bb, pe * bb)
        for key, v in zip(keys, values):
            setattr(peft, key, np.maximum(getattr(peft, key), v))


def _data_parallel(t: TrainingColumns, hw: HardwareColumns, st: dict[str, Array],
                   c: SimpleNamespace) -> SimpleNamespace:
    """Gradient reduction and parameter all-gather over dp x cp (dense) and the expert data-parallel
    group (experts: dp x cp / ep when etp = tp), with the stage's largest parameter counts."""
    fab = hw.fabric
    dp, cp, ep = t.dp, t.cp, t.ep
    pd, pe = st["params_dense"], st["params_expert"]
    g_dense = group(dp * cp, c.dpcp_stride, fab)
    g_expert = group(t.expert_dp, c.ep_stride * ep, fab)
    gb, wb = t.grad_bytes, t.weight_bytes
    grad_sync = np.where(
        t.zero_stage == 0,
        all_reduce_time(pd * gb, g_dense, fab) + all_reduce_time(pe * gb, g_expert, fab),
        reduce_scatter_time(pd * gb, g_dense, fab) + reduce_scatter_time(pe * gb, g_expert, fab),
    )
    param_gather = all_gather_time(pd * wb, g_dense, fab) + all_gather_time(pe * wb, g_expert, fab)
    d = SimpleNamespace(g_dense=g_dense, grad_sync=grad_sync, param_gather=param_gather,
                        grad_bytes=(pd + pe) * gb, gather_bytes=(pd + pe) * wb)
    peft = st.get("peft")
    if peft is not None:
        _peft_data_parallel(t, fab, peft, g_dense, g_expert, d)
    return d


def _peft_data_parallel(t: TrainingColumns, fab, peft: SimpleNamespace, g_dense, g_expert,
                        d: SimpleNamespace) -> None:
    """Frozen-base rows of ``d``: gradients of the adapters only; ZeRO-1/2 gathers the updated
    adapters, ZeRO-3 the frozen base (stored bits) and the adapters every micro-batch."""
    fz, z3 = t.frozen > 0, t.zero_stage >= 3
    ad, ae, gb, wb = peft.adapters_dense, peft.adapters_expert, t.grad_bytes, t.weight_bytes
    grad_sync = np.where(
        t.zero_stage == 0,
        all_reduce_time(ad * gb, g_dense, fab) + all_reduce_time(ae * gb, g_expert, fab),
        reduce_scatter_time(ad * gb, g_dense, fab) + reduce_scatter_time(ae * gb, g_expert, fab))
    dense_bytes = np.where(z3, peft.frozen_dense_bytes, 0.0) + ad * wb
    expert_bytes = np.where(z3, peft.frozen_expert_bytes, 0.0) + ae * wb
    gather = all_gather_time(dense_bytes, g_dense, fab) + all_gather_time(expert_bytes, g_expert, fab)
    d.grad_sync = np.where(fz, grad_sync, d.grad_sync)
    d.param_gather = np.where(fz, gather, d.param_gather)
    d.grad_bytes = np.where(fz, (ad + ae) * gb, d.grad_bytes)
    d.gather_bytes = np.where(fz, dense_bytes + expert_bytes, d.gather_bytes)


def _assemble_step(t: TrainingColumns, k: TimingKnobs, bw: Array, st: dict[str, Array],
                   c: SimpleNamespace, d: SimpleNamespace) -> SimpleNamespace:
    """Exposed time per component, the step and its lower and upper bounds."""
    z, n_micro = t.zero_stage, t.n_micro
    a = SimpleNamespace()
    stage_compute = st["compute"]
    a.tp_exp = st["tp"] * (1 - as_array(k.tp_comm_overlap))
    a.ep_exp = st["ep"] * (1 - as_array(k.ep_comm_overlap))
    a.pp_exp = c.pp_raw * (1 - as_array(k.pp_comm_overlap))
    a.zero3_micro = np.where(z >= 3, 2 * d.param_gather + d.grad_sync, 0.0)
    a.zero3_exp = np.maximum(0.0, a.zero3_micro - as_array(k.zero3_prefetch) * stage_compute)
    micro = stage_compute + a.tp_exp + a.ep_exp + st["cp_exposed"] + a.pp_exp + a.zero3_exp
    bubble = pipeline_bubble(micro, t.pp, t.vpp)
    a.bwd_window = 2.0 / 3.0 * stage_compute
    a.fwd_window = 1.0 / 3.0 * stage_compute
    dp_exp = np.where(
        z >= 3, 0.0,
        np.maximum(0.0, d.grad_sync - as_array(k.overlap_grad_reduce) * a.bwd_window)
        + np.where(z >= 1, np.maximum(0.0, d.param_gather - as_array(k.overlap_param_gather) * a.fwd_window), 0.0),
    )
    # Optimizer: read gradient, read+write master copy and states, write the 16-bit weights.
    shard = np.where(z >= 1, 1.0, 0.0)
    dp, cp = t.dp, t.cp
    trained_dense, trained_expert = st["params_dense"], st["params_expert"]
    if "peft" in st:  # the optimizer steps the adapters only
        fz = t.frozen > 0
        trained_dense = np.where(fz, st["peft"].adapters_dense, trained_dense)
        trained_expert = np.where(fz, st["peft"].adapters_expert, trained_expert)
    opt_params = (trained_dense / np.where(shard > 0, dp * cp, 1.0)
                  + trained_expert / np.where(shard > 0, t.expert_dp, 1.0))
    opt_bytes = opt_params * (2 * (t.master_bytes + t.optimizer_state_bytes) + t.grad_bytes + t.weight_bytes)
    optimizer = opt_bytes / bw
    a.parts = {
        "compute": n_micro * stage_compute,
        "tp_comm": n_micro * a.tp_exp,
        "cp_comm": n_micro * st["cp_exposed"],
        "ep_comm": n_micro * a.ep_exp,
        "pp_comm": n_micro * a.pp_exp,
        "dp_comm": dp_exp + n_micro * a.zero3_exp,
        "bubble": bubble,
        "optimizer": optimizer,
    }
    a.step = sum(a.parts.values())
    slots = n_micro + bubble_microbatches(t.pp, t.vpp)
    per_micro_comm = st["tp"] + st["ep"] + st["cp"] + c.pp_raw + a.zero3_micro
    dp_raw = np.where(z >= 3, 0.0, d.grad_sync + np.where(z >= 1, d.param_gather, 0.0))
    a.lower = slots * np.maximum(stage_compute, per_micro_comm) + np.maximum(
        0.0, dp_raw - n_micro * stage_compute) + optimizer
    a.upper = slots * (stage_compute + per_micro_comm) + dp_raw + optimizer
    return a


def _collective_report(t: TrainingColumns, k: TimingKnobs, st: dict[str, Array],
                       c: SimpleNamespace, d: SimpleNamespace, a: SimpleNamespace) -> dict[str, tuple]:
    """Per collective: (bytes a device sends per call, calls per step, group size, whether the
    group spans scale-up domains, raw seconds per step, exposed seconds per step)."""
    tp, pp, vpp, cp, dp, ep = t.tp, t.pp, t.vpp, t.cp, t.dp, t.ep
    z, n_micro = t.zero_stage, t.n_micro
    grad_sync, param_gather = d.grad_sync, d.param_gather
    grad_exposed = np.where(z >= 3, n_micro * a.zero3_exp * _share(grad_sync, 2 * param_gather),
                            np.maximum(0.0, grad_sync - as_array(k.overlap_grad_reduce) * a.bwd_window))
    gather_exposed = np.where(z >= 3, n_micro * a.zero3_exp * _share(2 * param_gather, grad_sync),
                              np.where(z >= 1, np.maximum(0.0, param_gather - as_array(k.overlap_param_gather) * a.fwd_window), 0.0))
    has_dp = dp * cp > 1
    return {
        "tp_allreduce": (c.act_msg, np.where(tp > 1, n_micro * st["layers"] * c.tp_collectives, 0.0), tp,
                         c.tp_group.spans_domains, n_micro * st["tp"], n_micro * a.tp_exp),
        "cp_kv_exchange": (c.kv_chunk, np.where(cp > 1, n_micro * st["layers"] * 3 * (cp - 1), 0.0), cp,
                           c.cp_group.spans_domains, n_micro * st["cp"], n_micro * st["cp_exposed"]),
        "ep_alltoall": (c.ep_msg, np.where(ep > 1, n_micro * st["moe_n"] * c.ep_collectives, 0.0), ep,
                        c.ep_group.spans_domains, n_micro * st["ep"], n_micro * a.ep_exp),
        "pp_send_recv": (c.pp_msg, np.where(pp > 1, n_micro * 2 * vpp, 0.0), np.where(pp > 1, 2.0, 1.0),
                         c.pp_crosses & (pp > 1), n_micro * c.pp_raw, n_micro * a.pp_exp),
        "dp_grad_sync": (d.grad_bytes,
                         np.where(has_dp, np.where(z >= 3, n_micro, 1.0), 0.0), dp * cp,
                         d.g_dense.spans_domains, np.where(z >= 3, n_micro, 1.0) * grad_sync, grad_exposed),
        "dp_param_gather": (d.gather_bytes,
                            np.where(has_dp, np.where(z >= 3, 2 * n_micro, np.where(z >= 1, 1.0, 0.0)), 0.0),
                            dp * cp, d.g_dense.spans_domains,
                            np.where(z >= 3, 2 * n_micro, np.where(z >= 1, 1.0, 0.0)) * param_gather,
                            gather_exposed),
    }


def training_step_time(
    model: ModelColumns,
    t: TrainingColumns,
    hw: HardwareColumns,
    k: TimingKnobs | None = None,
    report: bool = True,
    pipe: Pipeline | None = None,
) -> dict[str, Array]:
    """Step time (s) by component plus bounds, throughput and utilisation, for every row;
    ``report`` False returns only the step time, its bounds and the tokens per step (what the
    planner prices every row with; the same values).
    ``pipe``: ``pipeline.pipeline_of(model, t)`` when the caller already has it."""
    k = k or TimingKnobs()
    m = model_columns(model)
    hw = replace(hw, matmul_efficiency=hw.matmul_efficiency * as_array(k.matmul_efficiency_scale),
                 attention_efficiency=hw.attention_efficiency * as_array(k.attention_efficiency_scale))
    p = layer_params(m)
    s = t.seq_len
    keep = as_array(k.selective_keep_fraction)
    roof = Roofline.from_hardware(hw, k.gemm_kernel_overhead_s, k.elementwise_traffic_factor,
                                  gemm_half_efficiency_gflops=k.gemm_half_efficiency_gflops,
                                  expert_gemm_efficiency_scale=k.expert_gemm_efficiency_scale)
    blk = block_forward(m, tokens=t.micro_batch * s / t.cp, context=s, hw=roof, tp=t.tp,
                        sequence_parallel=t.sp, ep=t.ep, act_bytes=t.act_bytes,
                        matmul_bytes=t.matmul_bytes, flash=t.flash, dropout=t.dropout,
                        causal_discount=t.causal_discount)
    peft = _peft_block(m, t, roof, p) if np.any(t.frozen > 0) else None
    dense_block, moe_block, head = _block_times(m, t, blk, roof, keep, peft)
    c = _block_comm(m, t, hw, k, blk.attention_core)
    st = _slowest_stage(m, p, t, dense_block, moe_block, head, c, peft, pipe)
    d = _data_parallel(t, hw, st, c)
    a = _assemble_step(t, k, hw.achieved_memory_bandwidth, st, c, d)
    if not report:  # what a planner prices every row with; the rest for the rows it keeps
        return _step_columns(t, a)
    comm = _collective_report(t, k, st, c, d, a)

    fwd = forward_flops_per_token(m, s, causal_discount=t.causal_discount, vocab_head=t.vocab_head)
    peft_flops = {} if peft is None else {
        "frozen": t.frozen, "adapter_forward": adapter_forward_flops_per_token(m, t.lora_rank, t.lora_targets)}
    model_flops, hw_flops = training_flops_per_token(
        m, s, t.recompute, causal_discount=t.causal_discount, vocab_head=t.vocab_head,
        selective_keep_fraction=keep, forward=fwd, **peft_flops)
    return _outputs(t, hw, a, comm, model_flops.total, hw_flops.total)


def compute_floor_flops(model: ModelColumns, t: TrainingColumns, k: TimingKnobs | None = None) -> Array:
    """A floor of ``training_step_time``'s step time times the achieved matmul rate (FLOP/s of the
    matmul format x matmul efficiency x ``matmul_efficiency_scale``): the step's block GEMMs on
    the least loaded candidate stage, with attention, memory traffic, kernel overheads, the GEMM
    size term, the LM head and all communication, bubble and optimizer time taken as free.

    It reads no hardware column, so a planner computes it once per configuration and divides by
    each system's rate. It is a floor only where every other step component is >= 0, which holds
    for overlap fractions and ``selective_keep_fraction`` in [0, 1] and non-negative overheads,
    GEMM size term and traffic factor (``floor_knobs_ok``): each GEMM's time is max(FLOPs / rate
    (+ size term), bytes / bandwidth) + overhead >= FLOPs / rate, the blocks combine their parts
    with positive weights, and the stage that sets the pace holds at least the fewest blocks of
    any candidate stage."""
    k = k or TimingKnobs()
    m = model_columns(model)
    p = layer_params(m)
    inf = np.inf
    # 1 FLOP/s GEMMs (routed experts at their own rate, as in the engine), all else free.
    roof = Roofline(1.0, inf, inf, inf, 0.0, 0.0, None, 1.0, 0.0,
                    expert_compute_scale=1.0 / as_array(k.expert_gemm_efficiency_scale))
    keep = as_array(k.selective_keep_fraction)
    blk = block_forward(m, tokens=t.micro_batch * t.seq_len / t.cp, context=t.seq_len, hw=roof,
                        tp=t.tp, sequence_parallel=t.sp, ep=t.ep, act_bytes=t.act_bytes,
                        matmul_bytes=t.matmul_bytes, flash=t.flash, dropout=t.dropout,
                        causal_discount=t.causal_discount)
    peft = _peft_block(m, t, roof, p) if np.any(t.frozen > 0) else None
    dense_block, moe_block, _ = _block_times(m, t, blk, roof, keep, peft)
    block = np.where(m.n_experts > 0, np.minimum(dense_block, moe_block), dense_block)
    pipe = pipeline_of(m, t)
    fewest = None
    for stage in pipeline_stages(m, pipe):
        dense_n, moe_n, _, _ = stage_parameters(m, p, stage, pipe, t.tp, t.expert_shard)
        fewest = dense_n + moe_n if fewest is None else np.minimum(fewest, dense_n + moe_n)
    return t.n_micro * fewest * block


def floor_knobs_ok(k: TimingKnobs) -> bool:
    """Whether ``compute_floor_flops`` is a floor under these knobs (scalars; see there)."""
    v = {f: np.asarray(getattr(k, f), dtype=np.float64) for f in (
        "tp_comm_overlap", "ep_comm_overlap", "pp_comm_overlap", "cp_comm_overlap", "selective_keep_fraction",
        "overlap_grad_reduce", "overlap_param_gather", "zero3_prefetch", "elementwise_traffic_factor",
        "gemm_kernel_overhead_s", "gemm_half_efficiency_gflops", "matmul_efficiency_scale",
        "expert_gemm_efficiency_scale")}
    if any(x.ndim for x in v.values()) or not all(np.isfinite(x) for x in v.values()):
        return False
    fractions = ("tp_comm_overlap", "ep_comm_overlap", "pp_comm_overlap", "selective_keep_fraction")
    return (all(0.0 <= v[f] <= 1.0 for f in fractions)
            and all(v[f] >= 0.0 for f in ("cp_comm_overlap", "overlap_grad_reduce", "overlap_param_gather",
                                          "zero3_prefetch", "elementwise_traffic_factor",
                                          "gemm_kernel_overhead_s", "gemm_half_efficiency_gflops"))
            and v["matmul_efficiency_scale"] > 0.0 and v["expert_gemm_efficiency_scale"] > 0.0)


#: What ``training_step_time(report=False)`` returns: all a planner prices a row with.
PRICED_COLUMNS = ("step_time_s", "step_time_lower_s", "step_time_upper_s", "tokens_per_step")


def _step_columns(t: TrainingColumns, a: SimpleNamespace) -> dict[str, Array]:
    """The step time, its bounds (clipped to contain it) and the tokens one step trains on."""
    return dict(zip(PRICED_COLUMNS, (a.step, np.minimum(a.lower, a.step), np.maximum(a.upper, a.step),
                                     t.global_batch * t.seq_len)))


def _outputs(t: TrainingColumns, hw: HardwareColumns, a: SimpleNamespace, comm: dict[str, tuple],
             model_flops_per_token: Array, hw_flops_per_token: Array) -> dict[str, Array]:
    """The output columns: components, bounds, throughput, utilisation, per-collective report."""
    step = a.step
    n = t.n_devices
    out = {f"{name}_s": v for name, v in a.parts.items()}
    out.update(_step_columns(t, a))
    tokens = out["tokens_per_step"]
    out.update({
        "model_flops_per_step": model_flops_per_token * tokens,
        "hardware_flops_per_step": hw_flops_per_token * tokens,
    })
    out["tokens_per_s_per_device"] = tokens / step / n
    out["model_flops_per_s_per_device"] = out["model_flops_per_step"] / step / n
    # MFU/HFU convention (as published runs report them, e.g. Chowdhery et al. 2022 App. B): model
    # FLOPs over the dense 16-bit peak, whatever format the GEMMs ran in, so an fp8 plan and a bf16
    # plan of the same speed show the same MFU.
    peak16 = np.where(np.isfinite(hw.peak_16bit_flops_per_s), hw.peak_16bit_flops_per_s, hw.peak_matmul_flops_per_s)
    out["mfu"] = out["model_flops_per_s_per_device"] / peak16
    out["hfu"] = out["hardware_flops_per_step"] / step / n / peak16
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
