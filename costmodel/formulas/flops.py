"""FLOP counts of a transformer, forward and backward, by component.

Conventions (each an explicit argument, never hidden):
- a multiply-accumulate is 2 FLOPs; only matrix multiplications are counted (norms, softmax and
  element-wise work are memory-bound and are timed from bytes moved, see ``timing``);
- the backward pass costs twice the forward pass (gradients with respect to inputs and to weights;
  Kaplan et al. 2020 Sec. 2.1, Narayanan et al. 2021 Sec. 5.1);
- ``causal_discount``: a causal decoder only needs the lower triangle of the attention matrix, so the
  two attention matmuls are counted at half the full s x s cost when True (what FlashAttention
  executes). Megatron-LM's published formula (Korthikanti et al. 2022, eq. 7) does not discount;
- model FLOPs (what MFU counts) exclude recomputation; hardware FLOPs (HFU) add the forward work that
  activation recomputation repeats (Korthikanti et al. 2022, Sec. 6 / Chowdhery et al. 2022 App. B);
- parameter-efficient fine-tuning (LoRA, QLoRA; ``frozen`` rows): model FLOPs are the FLOPs the step
  actually requires. A frozen linear layer (and the frozen LM head) needs no weight gradient, so it
  costs forward + input gradient = 2 x forward; the attention core has no weights and keeps
  3 x forward; the adapters (component ``adapters``) are trained, 3 x their forward. MFU of a
  LoRA run is therefore not comparable with 6N-convention MFU of full training (the same step
  time would show 6N/4N ~ 1.5x the MFU under the 6N convention). Dequantizing a QLoRA base is
  memory traffic, not FLOPs (see ``timing``).
"""

from __future__ import annotations

import numpy as np

from costmodel.specs.codes import RECOMPUTE_CODES, Recompute
from costmodel.specs.columns import Array, Breakdown, ModelColumns, as_array, model_columns
from costmodel.specs.spec import ModelSpec

#: Forward components that are matrix multiplications against weights (frozen under PEFT).
WEIGHT_GEMMS = ("qkv", "output_projection", "mlp", "experts", "shared_experts", "router", "lm_head")



def forward_flops_per_token(
    model: ModelSpec | ModelColumns,
    seq_len: Array | float,
    *,
    causal_discount: Array | bool = True,
    vocab_head: Array | bool = True,
) -> Breakdown:
    """Forward-pass FLOPs for one token of a ``seq_len``-token sequence, summed over all layers.

    ``vocab_head``: whether the output projection to the vocabulary is computed (LM training);
    False for e.g. sequence classification.
    """
    m = model_columns(model)
    s = as_array(seq_len)
    h, a, kv = m.d_model, m.n_heads, m.kv_heads
    dqk, dv = m.qk_head_dim, m.v_head_dim
    L = m.n_layers

    # Q/K/V projections. MLA (DeepSeek-V2 eqs. 9-13) computed in training form: the query and the
    # KV latent are projected down, then up to per-head keys and values.
    std_qkv = 2 * h * (a * dqk + 2 * kv * dqk)
    rq, rkv, rope = m.q_lora_rank, m.kv_lora_rank, m.qk_rope_head_dim
    q_path = np.where(rq > 0, 2 * (h * rq + rq * a * dqk), 2 * h * a * dqk)
    mla_qkv = q_path + 2 * h * (rkv + rope) + 2 * rkv * a * (dqk - rope + dv)
    qkv = np.where(m.is_mla > 0, mla_qkv, std_qkv)

    # Average attended context per query: s, halved for causal masks when discounted.
    context = s * (1 - 0.5 * m.causal * as_array(causal_discount))
    scores = 2 * a * dqk * context  # Q K^T
    values = 2 * a * dv * context  # softmax(.) V
    out_proj = 2 * a * dv * h

    mlp = 2 * m.mlp_matrices * h * m.d_ff
    expert = 2 * m.mlp_matrices * h * m.d_ff_expert
    return Breakdown({
        "qkv": L * qkv,
        "attention_scores": L * scores,
        "attention_values": L * values,
        "output_projection": L * out_proj,
        "mlp": m.n_dense_layers * mlp,
        "experts": m.n_moe_layers * m.experts_per_token * expert,
        "shared_experts": m.n_moe_layers * m.n_shared_experts * expert,
        "router": m.n_moe_layers * 2 * h * m.n_experts,
        "lm_head": as_array(vocab_head) * 2 * h * m.vocab_size,
    })


def training_flops_per_token(
    model: ModelSpec | ModelColumns,
    seq_len: Array | float,
    recompute: Array | str = "none",
    *,
    causal_discount: Array | bool = True,
    vocab_head: Array | bool = True,
    selective_keep_fraction: Array | float = 1.0,
    forward: Breakdown | None = None,
    frozen: Array | None = None,
    adapter_forward: Array | float = 0.0,
) -> tuple[Breakdown, Breakdown]:
    """(model FLOPs, hardware FLOPs) per trained token, each by component.

    Model FLOPs = forward + backward = 3 x forward. Hardware FLOPs add the recomputed forward work:
    full recomputation re-runs every transformer block's forward (not the LM head); selective
    recomputation re-runs the attention core (Korthikanti et al. 2022, Sec. 4.2) plus the share
    ``1 - selective_keep_fraction`` of the rest of the block (1.0 = Megatron's policy).
    ``frozen`` (1 for LoRA/QLoRA rows) and ``adapter_forward`` (the adapters' forward FLOPs per
    token, ``params.adapter_forward_flops_per_token``): see the PEFT convention above; the
    breakdown then has an ``adapters`` component.
    """
    fwd = forward if forward is not None else forward_flops_per_token(
        model, seq_len, causal_discount=causal_discount, vocab_head=vocab_head)
    code = as_array(RECOMPUTE_CODES[recompute] if isinstance(recompute, str) else recompute)
    block_fwd = fwd.total - fwd["lm_head"]
    if frozen is None:
        model_flops = fwd.scaled(3.0)
    else:
        fz = as_array(frozen) > 0
        adapters = np.where(fz, as_array(adapter_forward), 0.0)
        model_flops = Breakdown({
            **{k: v * (np.where(fz, 2.0, 3.0) if k in WEIGHT_GEMMS else 3.0) for k, v in fwd.items()},
            "adapters": 3.0 * adapters})
        block_fwd = block_fwd + adapters
    attn_core = fwd["attention_scores"] + fwd["attention_values"]
    other = block_fwd - attn_core
    selective = attn_core + (1 - as_array(selective_keep_fraction)) * other
    recomputed = np.where(code == Recompute.FULL, block_fwd,
                          np.where(code == Recompute.SELECTIVE, selective, 0.0))
    hardware = Breakdown({**dict(model_flops), "recompute": recomputed})
    return model_flops, hardware


def megatron_flops_per_iteration(
    batch: float, seq_len: float, n_layers: float, d_model: float, vocab_size: float
) -> float:
    """Korthikanti et al. 2022, eq. 7 (model FLOPs per iteration, GPT with 4h GELU MLP, MHA, no
    causal discount, logits included): 72 B s L h^2 (1 + s/(6h) + V/(12 h L))."""
    B, s, L, h, V = batch, seq_len, n_layers, d_model, vocab_size
    return 72 * B * s * L * h**2 * (1 + s / (6 * h) + V / (12 * h * L))
