"""Device memory: training (model states, activations, buffers, overheads) and inference (weights,
KV cache, workspace). Every function broadcasts over numpy columns; results are bytes.

Sources:
- Model states and ZeRO partitioning: Rajbhandari et al. 2020 (ZeRO), Sec. 3.1 and 5 / Figure 1:
  (2 + 2 + K) x Psi bytes for mixed-precision Adam (K = 12: fp32 master, momentum, variance),
  stage 1 divides the K part, stage 2 also the gradients, stage 3 also the weights by N_d.
- Activations: Korthikanti et al. 2022 ('Reducing Activation Recomputation in Large Transformer
  Models'), Sec. 4, Table 2: per layer s b h (34 + 5 a s / h) bytes with 16-bit activations and
  dropout, (10 + 24/t + 5as/(ht)) with tensor parallelism, (34 + 5as/h)/t with sequence
  parallelism, 34/t with selective recomputation, 2 s b h (/t with SP) with full recomputation.
  Generalised here term by term to GQA/MLA, gated MLPs, any d_ff, MoE, dropout off and fused
  (flash) attention, which never stores the s x s matrix (Dao et al. 2022).
- Pipeline: the first 1F1B stage holds p micro-batches in flight; interleaving multiplies by
  (1 + (p - 1)/(p v)) (Korthikanti et al. 2022, Sec. 4.2.3; Narayanan et al. 2021 Sec. 2.2.2).
- Parameter-efficient fine-tuning (rows with ``peft`` > 0): LoRA (Hu et al. 2021) freezes the base,
  so it has no gradients, master copy or optimizer states; its linear layers are stored at
  ``base_weight_bits`` (QLoRA: NF4 with double quantization, 4.127 bits, Dettmers et al. 2023
  Sec. 3), norms, router, embedding and head at the training weight format (bitsandbytes replaces
  only ``nn.Linear`` layers of the blocks and keeps ``lm_head`` in 16 bits). ZeRO-3 still shards
  the frozen weights. Adapters (r (d_in + d_out) per adapted matrix) carry weights, gradients,
  master copy and optimizer states as full training does. Activations are those of full training
  (nonlinearities, norms and attention still need their inputs to pass input gradients down) plus
  each adapter's r-wide intermediate (x A^T, kept for B's gradient); LoRA dropout is not modelled.
  A quantized base is dequantized to 16 bits one matrix at a time (bitsandbytes ``MatMul4Bit``
  dequantizes the weight, multiplies, and frees it in forward and again in backward): the largest
  matrix of a block at the training weight format is counted as a transient in the activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from costmodel.specs.codes import Recompute
from costmodel.specs.columns import Array, Breakdown, ModelColumns, as_array, model_columns
from costmodel.formulas.params import (adapter_parameter_count, adapter_params, frozen_linear_params,
                                       layer_params, matrix_shape_sum, parameter_count)
from costmodel.formulas.pipeline import (  # noqa: F401  (re-exported: callers import them from here)
    in_flight_microbatches, pipeline_of, pipeline_stages, select_stage, stage_parameters,
    stage_peft_parameters)
from costmodel.specs.spec import ModelSpec
from costmodel.specs.setup import TrainingColumns

TRAIN_MEMORY_COMPONENTS = (
    "weights", "gradients", "master_weights", "optimizer_states", "activations", "logits",
    "zero3_buffers", "framework", "fragmentation",
)


# ZeRO model states --------------------------------------------------------------------------------

def model_state_bytes(
    psi: Array,
    *,
    zero_stage: Array,
    shard_degree: Array,
    weight_bytes: Array = 2.0,
    grad_bytes: Array = 2.0,
    master_bytes: Array = 4.0,
    optimizer_state_bytes: Array = 8.0,
) -> Breakdown:
    """Bytes of weights, gradients, master copy and optimizer states for ``psi`` parameters held
    by one data-parallel group member (ZeRO paper Sec. 5, Figure 1).

    ``shard_degree`` is N_d, the number of ranks the states are partitioned across.
    """
    psi, z, nd = as_array(psi), as_array(zero_stage), as_array(shard_degree)
    return Breakdown({
        "weights": psi * weight_bytes / np.where(z >= 3, nd, 1.0),
        "gradients": psi * grad_bytes / np.where(z >= 2, nd, 1.0),
        "master_weights": psi * master_bytes / np.where(z >= 1, nd, 1.0),
        "optimizer_states": psi * optimizer_state_bytes / np.where(z >= 1, nd, 1.0),
    })


# Activations ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActivationTerms:
    """Activation bytes of one transformer block for one micro-batch on one device."""

    attention: Array  # norms before attention, QKV input, Q/K/V, attention output, dropout mask
    attention_scores: Array  # s x s softmax/dropout tensors, or flash-attention statistics
    mlp: Array  # norm, MLP input, hidden activations, dropout mask (dense or MoE)
    layer_input: Array  # what full recomputation keeps: the block's input


def activation_terms(
    m: ModelColumns,
    *,
    micro_batch: Array,
    seq_len: Array,
    tp: Array = 1.0,
    cp: Array = 1.0,
    sequence_parallel: Array = 0.0,
    act_bytes: Array = 2.0,
    flash: Array = 1.0,
    dropout: Array = 0.0,
    moe: bool = False,
) -> ActivationTerms:
    """Per-layer activation memory, term by term after Korthikanti et al. 2022 Sec. 4.1.

    With 16-bit activations, dropout on, no flash attention, MHA and a 4h GELU MLP this reduces
    exactly to s b h (34 + 5 a s / h) bytes (Table 2), with the stated TP/SP divisions.
    """
    b, t, e = as_array(micro_batch), as_array(tp), as_array(act_bytes)
    s_total = as_array(seq_len)
    cp = as_array(cp)
    s = s_total / cp  # tokens held locally under context parallelism
    drop, fl = as_array(dropout), as_array(flash)
    outside = np.where(as_array(sequence_parallel) > 0, t, 1.0)  # SP splits the non-TP regions
    h, a = m.d_model, m.n_heads
    dqk, dv = m.qk_head_dim, m.v_head_dim
    sbh = s * b * h

    # Widths of the stored Q, K and V (MLA decompresses keys/values to every head in training).
    q_width = a * dqk
    k_width = np.where(m.is_mla > 0, a * dqk, m.kv_heads * dqk)
    v_width = np.where(m.is_mla > 0, a * dv, m.kv_heads * dqk)
    latent = m.is_mla * (m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim)

    attention = (
        2 * e * sbh / outside  # inputs of the two norms (Korthikanti: 4sbh)
        + e * sbh / outside  # QKV matmul input (2sbh)
        + e * s * b * latent / outside  # MLA latents (kept replicated across tp)
        + e * s * b * (q_width + k_width) / t  # Q and K (4sbh)
        + e * s * b * v_width / t  # V (2sbh)
        + e * s * b * a * dv / t  # attention output = output-projection input (2sbh)
        + drop * sbh / outside  # dropout mask after attention (sbh)
    )
    # Scores: softmax output (2as^2b), its dropout mask (as^2b) and dropout output (2as^2b) unless
    # fused attention keeps only its row statistics (fp32 log-sum-exp, 4 a s b). Each local query
    # attends to the full context under context parallelism.
    quadratic = e * a * s * s_total * b + drop * (1 + e) * a * s * s_total * b
    scores = np.where(fl > 0, 4 * a * s * b, quadratic) / t

    hidden_tensors = np.where(m.mlp_matrices >= 3, 3.0, 2.0)  # gate+up+product, or in+out of act.
    if moe:
        k, n_sh, ffe = m.experts_per_token, m.n_shared_experts, m.d_ff_expert
        mlp_hidden = (
            k * e * sbh / outside  # dispatched token copies, one per selected expert
            + (k + n_sh) * e * s * b * ffe * hidden_tensors / t
            + 4 * s * b * m.n_experts / outside  # fp32 router logits
        )
    else:
        mlp_hidden = e * s * b * m.d_ff * hidden_tensors / t  # 16sbh for a 4h GELU MLP
    mlp = e * sbh / outside + mlp_hidden + drop * sbh / outside  # (2sbh + 16sbh + sbh)
    return ActivationTerms(attention, scores, mlp, e * sbh / outside)


def layer_activation_bytes(
    terms: ActivationTerms, recompute: Array, selective_keep_fraction: Array = 1.0
) -> Array:
    """Bytes a block keeps between its forward and backward pass under a recompute mode.

    0 none; 2 full: keep only the block input; 1 selective: drop the attention-core tensors
    (Korthikanti et al. 2022 Sec. 4.2.2) and keep ``selective_keep_fraction`` of the rest (1.0 in
    Megatron-LM; policies that also recompute some matmuls, such as torchtitan's per-op policy that
    saves every other matmul output, keep less).
    """
    r = as_array(recompute)
    full_layer = terms.attention + terms.attention_scores + terms.mlp
    selective = (terms.attention + terms.mlp) * as_array(selective_keep_fraction)
    return np.where(r == Recompute.FULL, terms.layer_input, np.where(r == Recompute.SELECTIVE, selective, full_layer))


# Training memory per device --------------------------------------------------------------------

def _layer_activations(m: ModelColumns, t: TrainingColumns, selective_keep_fraction: Array
                       ) -> tuple[Array, Array, Array]:
    """Bytes one dense block and one MoE block keep per micro-batch under the row's recompute
    mode, and the working set full recomputation re-materialises (one block at a time)."""
    per_layer_args = dict(micro_batch=t.micro_batch, seq_len=t.seq_len, tp=t.tp, cp=t.cp,
                          sequence_parallel=t.sp, act_bytes=t.act_bytes, flash=t.flash,
                          dropout=t.dropout)
    dense_terms = activation_terms(m, **per_layer_args)
    moe_terms = activation_terms(m, moe=True, **per_layer_args)
    dense_act = layer_activation_bytes(dense_terms, t.recompute, selective_keep_fraction)
    moe_act = layer_activation_bytes(moe_terms, t.recompute, selective_keep_fraction)
    # Full recomputation re-materialises one block at a time during backward.
    working_set = np.where(
        t.recompute == Recompute.FULL,
        np.maximum(layer_activation_bytes(dense_terms, 0.0) * (m.n_dense_layers > 0),
                   layer_activation_bytes(moe_terms, 0.0) * (m.n_moe_layers > 0)),
        0.0,
    )
    return dense_act, moe_act, working_set


def _stage_independent_bytes(m: ModelColumns, p, t: TrainingColumns,
                             logits_bytes_per_element: Array | None) -> tuple[Array, Array, Array]:
    """Logits of the last stage, ZeRO-3 block buffers and Adafactor's factored state."""
    tp = t.tp
    s_local = t.seq_len / t.cp
    e = t.act_bytes
    # Logits of the vocabulary-parallel output layer and the loss's working copies.
    per_logit = e + 4.0 if logits_bytes_per_element is None else as_array(logits_bytes_per_element)
    logits_bytes = t.vocab_head * t.micro_batch * s_local * m.vocab_size / tp * per_logit
    # Largest unsharded block under ZeRO-3: current and prefetched weights plus its gradients.
    moe_block_local = p.moe_nonexpert / tp + m.n_shared_experts * p.expert / tp + m.n_experts * p.expert / t.expert_shard
    dense_block_local = p.dense_block / tp
    block_local = np.maximum(np.where(m.n_dense_layers > 0, dense_block_local, 0.0),
                             np.where(m.n_moe_layers > 0, moe_block_local, 0.0))
    zero3 = np.where(t.zero_stage >= 3, block_local * (2 * t.weight_bytes + t.grad_bytes), 0.0)
    # Adafactor: factored state instead of full-size moments, spread over the model's devices.
    factored = t.adafactor * matrix_shape_sum(m) * 4.0 / (tp * t.pp)
    return logits_bytes, zero3, factored


def _stage_states(m: ModelColumns, p, t: TrainingColumns, stage: Array, pipe, ap=None
                  ) -> tuple[Array, Array, dict[str, Array]]:
    """(dense blocks, MoE blocks, ZeRO model states) of one device of pipeline stage ``stage``:
    non-expert parameters sharded over dp x cp, experts over their expert data-parallel group
    (dp x cp / ep when etp = tp). ``ap``: the adapters (``params.adapter_params``) when some row
    trains with PEFT (see ``_peft_stage_states``)."""
    dense_n, moe_n, dense_params, expert_params = stage_parameters(m, p, stage, pipe, t.tp, t.expert_shard)
    states_args = dict(zero_stage=t.zero_stage, weight_bytes=t.weight_bytes,
                       grad_bytes=t.grad_bytes, master_bytes=t.master_bytes,
                       optimizer_state_bytes=t.optimizer_state_bytes)
    dense_states = model_state_bytes(dense_params, shard_degree=t.dp * t.cp, **states_args)
    if bool(np.any(m.n_experts > 0)):
        expert_states = model_state_bytes(expert_params, shard_degree=t.expert_dp, **states_args)
    else:
        expert_states = {k: 0.0 for k in dense_states}
    states = {k: dense_states[k] + expert_states[k] for k in dense_states}
    if ap is not None:
        peft = _peft_stage_states(m, p, ap, t, stage, pipe)
        states = {k: np.where(t.frozen > 0, peft[k], v) for k, v in states.items()}
    return dense_n, moe_n, states


def _peft_stage_states(m: ModelColumns, p, ap, t: TrainingColumns, stage: Array, pipe) -> dict[str, Array]:
    """ZeRO model states of a PEFT device: the adapters' full set (weights, gradients, master copy,
    optimizer states) plus the frozen base weights, linear layers at ``base_weight_bits`` and the
    rest at the training weight format, sharded by ZeRO-3 like any weight."""
    _, _, dense_params, expert_params = stage_parameters(m, p, stage, pipe, t.tp, t.expert_shard)
    linear, adapters, expert_adapters = stage_peft_parameters(m, p, ap, stage, pipe, t.tp, t.expert_shard)
    args = dict(zero_stage=t.zero_stage, weight_bytes=t.weight_bytes, grad_bytes=t.grad_bytes,
                master_bytes=t.master_bytes, optimizer_state_bytes=t.optimizer_state_bytes)
    dense_shard, expert_shard = t.dp * t.cp, t.expert_dp
    dense = model_state_bytes(adapters, shard_degree=dense_shard, **args)
    expert = model_state_bytes(expert_adapters, shard_degree=expert_shard, **args)
    states = {k: dense[k] + expert[k] for k in dense}
    z3 = t.zero_stage >= 3
    base = (((dense_params - linear) * t.weight_bytes + linear * t.base_weight_bytes)
            / np.where(z3, dense_shard, 1.0)
            + expert_params * t.base_weight_bytes / np.where(z3, expert_shard, 1.0))
    states["weights"] = states["weights"] + base
    return states


def _peft_stage_independent_bytes(m: ModelColumns, p, ap, t: TrainingColumns) -> tuple[Array, Array]:
    """ZeRO-3 block buffers and Adafactor's factored state of a PEFT row: the unsharded block
    holds its frozen weights at their stored bits (current and prefetched) and its adapters with
    gradients; Adafactor factors only the adapters (rows + columns of A and B ~ d_in + d_out per
    adapted matrix: adapters / r, the 2 r per matrix dropped)."""
    wb, bb, gb = t.weight_bytes, t.base_weight_bytes, t.grad_bytes
    dense_linear, moe_linear = frozen_linear_params(m, p)

    def block(total: Array, linear: Array, adapters: Array) -> Array:
        return 2 * (total - linear) * wb + 2 * linear * bb + adapters * (2 * wb + gb)

    n_sh = m.n_shared_experts
    dense = block(p.dense_block, dense_linear, ap.attention + ap.dense_mlp) / t.tp
    moe = (block(p.moe_nonexpert + n_sh * p.expert, moe_linear, ap.attention + n_sh * ap.expert) / t.tp
           + m.n_experts * block(p.expert, p.expert, ap.expert) / t.expert_shard)
    local = np.maximum(np.where(m.n_dense_layers > 0, dense, 0.0), np.where(m.n_moe_layers > 0, moe, 0.0))
    zero3 = np.where(t.zero_stage >= 3, local, 0.0)
    adapters = adapter_parameter_count(m, t.lora_rank, t.lora_targets).total
    factored = t.adafactor * adapters / t.lora_rank * 4.0 / (t.tp * t.pp)
    return zero3, factored


def _peft_activations(m: ModelColumns, t: TrainingColumns, ap, dense_act: Array, moe_act: Array,
                      working_set: Array) -> tuple[Array, Array, Array]:
    """Activations of PEFT rows: full training's plus each adapter's r-wide intermediate (dropped
    by full recomputation, re-materialised with its block), and the transient 16-bit copy of the
    largest frozen matrix a quantized base dequantizes into (one at a time)."""
    per_matrix = t.act_bytes * t.micro_batch * t.seq_len / t.cp * t.lora_rank
    dense_ad = per_matrix * (ap.attention_matrices + ap.dense_mlp_matrices)
    moe_ad = per_matrix * (ap.attention_matrices
                           + (m.experts_per_token + m.n_shared_experts) * ap.expert_matrices)
    full = t.recompute == Recompute.FULL
    kept = np.where(full, 0.0, 1.0)
    block_ad = np.maximum(dense_ad * (m.n_dense_layers > 0), moe_ad * (m.n_moe_layers > 0))
    dequant = np.where(t.base_weight_bits != t.weight_bits, ap.largest_matrix / t.tp * t.weight_bytes, 0.0)
    frozen = t.frozen > 0
    return (np.where(frozen, dense_act + kept * dense_ad, dense_act),
            np.where(frozen, moe_act + kept * moe_ad, moe_act),
            np.where(frozen, working_set + np.where(full, block_ad, 0.0) + dequant, working_set))


def training_memory_per_device(
    model: ModelSpec | ModelColumns,
    t: TrainingColumns,
    *,
    cuda_context_bytes: Array = 0.0,
    fragmentation_fraction: Array = 0.0,
    logits_bytes_per_element: Array | None = None,
    selective_keep_fraction: Array = 1.0,
) -> Breakdown:
    """Peak bytes on the most loaded device of a training job, by component.

    ``logits_bytes_per_element``: bytes held per vocabulary logit at the loss (default: the 16-bit
    logits plus the fp32 copy a fused vocabulary-parallel cross-entropy makes, act_bytes + 4 as in
    Megatron-LM; an unfused PyTorch cross-entropy also keeps fp32 log-probabilities and gradients).

    The first, second and last pipeline stages are evaluated (the first holds the embedding and the
    most in-flight micro-batches, the last the output head and logits, the second the most MoE
    blocks) and the largest total is reported. ``framework`` is the CUDA context and libraries;
    ``fragmentation`` is a fraction of the dynamically allocated memory (activations, logits,
    buffers) that the caching allocator cannot reuse.
    """
    m = model_columns(model)
    p = layer_params(m)
    dense_shard = t.dp * t.cp  # ZeRO/FSDP partition group of non-expert parameters
    dense_act, moe_act, working_set = _layer_activations(m, t, selective_keep_fraction)
    logits_bytes, zero3, factored = _stage_independent_bytes(m, p, t, logits_bytes_per_element)
    ap = adapter_params(m, t.lora_rank, t.lora_targets) if np.any(t.frozen > 0) else None
    if ap is not None:
        dense_act, moe_act, working_set = _peft_activations(m, t, ap, dense_act, moe_act, working_set)
        peft_zero3, peft_factored = _peft_stage_independent_bytes(m, p, ap, t)
        zero3 = np.where(t.frozen > 0, peft_zero3, zero3)
        factored = np.where(t.frozen > 0, peft_factored, factored)
    embedding_out = t.act_bytes * t.micro_batch * (t.seq_len / t.cp) * m.d_model / np.where(t.sp > 0, t.tp, 1.0)

    pipe = pipeline_of(m, t)

    def stage_parts(stage: Array) -> tuple[Array, dict[str, Array]]:
        dense_n, moe_n, states = _stage_states(m, p, t, stage, pipe, ap)
        in_flight = in_flight_microbatches(stage, t.pp, t.vpp, t.n_micro)
        activations = (
            in_flight * (dense_n * dense_act + moe_n * moe_act + (stage == 0) * embedding_out)
            + working_set
        )
        logits = (stage == t.pp - 1) * logits_bytes
        dynamic = activations + logits + zero3
        parts = {
            "weights": states["weights"],
            "gradients": states["gradients"],
            "master_weights": states["master_weights"],
            "optimizer_states": (states["optimizer_states"]
                                 + factored / np.where(t.zero_stage >= 1, dense_shard, 1.0)),
            "activations": activations,
            "logits": logits,
            "zero3_buffers": zero3,
            "framework": as_array(cuda_context_bytes) + 0.0 * dynamic,
            "fragmentation": as_array(fragmentation_fraction) * dynamic,
        }
        return sum(parts.values()), parts

    return Breakdown(select_stage(stage_parts(stage) for stage in pipeline_stages(m, pipe)))


# Inference memory -------------------------------------------------------------------------------

def kv_cache_bytes_per_token(model: ModelSpec | ModelColumns, kv_bits: Array = 16.0) -> Array:
    """KV-cache bytes one token occupies across all layers.

    Standard attention stores K and V for each KV head: 2 L n_kv d_head (GQA/MQA shrink n_kv).
    MLA caches only the compressed latent and the shared rotary key: L (d_c + d_rope)
    (DeepSeek-V2 paper, Sec. 2.1.2 and Table 1).
    """
    m = model_columns(model)
    bits = as_array(kv_bits)
    std = 2 * m.n_layers * m.kv_heads * m.qk_head_dim
    mla = m.n_layers * (m.kv_lora_rank + m.qk_rope_head_dim)
    return np.where(m.is_mla > 0, mla, std) * bits / 8


def inference_memory_per_device(
    model: ModelSpec | ModelColumns,
    *,
    batch: Array,
    context_len: Array,
    weight_bits: Array = 16.0,
    kv_bits: Array = 16.0,
    act_bytes: Array = 2.0,
    prefill_chunk: Array | None = None,
    tp: Array = 1.0,
    pp: Array = 1.0,
    ep: Array = 1.0,
    cuda_context_bytes: Array = 0.0,
) -> Breakdown:
    """Bytes per device when serving: weights at ``weight_bits``, the KV cache of ``batch``
    sequences of ``context_len`` tokens at ``kv_bits`` (KV heads split across tp, replicated when tp
    exceeds them), and the activation workspace of one prefill chunk (default: the whole context).
    """
    m = model_columns(model)
    tp, pp, ep = as_array(tp), as_array(pp), as_array(ep)
    counts = parameter_count(m)
    expert_params = counts["experts"]
    other = counts.total - expert_params
    weights = (other / tp + expert_params / (tp * ep)) / pp * as_array(weight_bits) / 8
    # KV heads per device: split by tp, at least one (replicated) per device; MLA latent is
    # replicated across tp.
    kv_share = np.where(m.is_mla > 0, 1.0, np.maximum(m.kv_heads / tp, 1.0) / m.kv_heads)
    kv = as_array(batch) * as_array(context_len) * kv_cache_bytes_per_token(m, kv_bits) * kv_share / pp
    chunk = as_array(context_len if prefill_chunk is None else prefill_chunk)
    tokens = as_array(batch) * chunk
    # Transient of one block during prefill: residual stream and norm output (2h), the larger of
    # the QKV output and the MLP hidden tensors, and fp32 logits of the last position per sequence.
    qkv_width = m.n_heads * m.qk_head_dim + 2 * m.kv_heads * m.qk_head_dim
    ff = np.maximum(m.d_ff, m.d_ff_expert * np.maximum(m.experts_per_token + m.n_shared_experts, 1))
    hidden = np.maximum(qkv_width, ff * np.where(m.mlp_matrices >= 3, 3.0, 2.0)) / tp
    workspace = tokens * as_array(act_bytes) * (2 * m.d_model + hidden) + as_array(batch) * m.vocab_size * 4.0 / tp
    return Breakdown({
        "weights": weights,
        "kv_cache": kv,
        "activations": workspace,
        "framework": as_array(cuda_context_bytes) + 0.0 * weights,
    })
