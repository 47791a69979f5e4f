"""Parameter counts: total and active per token, by component.

Counts follow the module structure of the Hugging Face implementations (weights and biases of every
``nn.Linear``/``nn.Embedding``/norm), so that fully specified architectures match the published
``num_parameters()`` exactly. All functions take ``ModelSpec`` or ``ModelColumns`` and broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from costmodel.specs.columns import Array, Breakdown, ModelColumns, model_columns
from costmodel.specs.setup import LORA_ALL, LORA_QV, LORA_TARGET_CODES
from costmodel.specs.spec import ModelSpec


@dataclass(frozen=True)
class LayerParams:
    """Parameters of the pieces a parallel layout distributes (element counts, per piece)."""

    attention: Array  # one block's attention (projections, biases, MLA latent norms)
    block_norms: Array  # one block's two norms
    dense_mlp: Array  # one dense MLP
    expert: Array  # one routed or shared expert
    router: Array  # one MoE layer's router
    embedding: Array  # token (+ position, token-type, embedding norm) tables
    head: Array  # separate output head (0 when tied)
    final_norm: Array
    pooler: Array

    @property
    def moe_nonexpert(self) -> Array:
        """Parameters of one MoE block outside the routed experts (attention, norms, router, shared)."""
        return self.attention + self.block_norms + self.router

    @property
    def dense_block(self) -> Array:
        return self.attention + self.block_norms + self.dense_mlp


def layer_params(model: ModelSpec | ModelColumns) -> LayerParams:
    m = model_columns(model)
    h, a, kv = m.d_model, m.n_heads, m.kv_heads
    dqk, dv = m.qk_head_dim, m.v_head_dim

    # Standard attention (MHA/GQA/MQA): Q, K, V and output projections (Vaswani et al. 2017).
    std = h * a * dqk + 2 * h * kv * dqk + a * dv * h
    std = std + m.qkv_bias * (a * dqk + 2 * kv * dqk) + m.attn_out_bias * h
    # Multi-head latent attention (DeepSeek-V2 paper, Sec. 2.1.2, eqs. 9-13; layer names as in
    # modeling_deepseek.py): optional low-rank query (q_a_proj, q_a_layernorm, q_b_proj), the joint
    # KV latent plus decoupled rotary key (kv_a_proj_with_mqa, kv_a_layernorm), its up-projection to
    # per-head keys and values (kv_b_proj), and o_proj.
    rq, rkv, rope = m.q_lora_rank, m.kv_lora_rank, m.qk_rope_head_dim
    nope = dqk - rope
    has_q_lora = rq > 0
    q_path = np.where(has_q_lora, h * rq + m.norm_params * rq + rq * a * dqk, h * a * dqk)
    mla = q_path + h * (rkv + rope) + m.norm_params * rkv + rkv * a * (nope + dv) + a * dv * h
    attention = np.where(m.is_mla > 0, mla, std)

    block_norms = 2 * h * m.norm_params
    hidden_bias = (m.mlp_matrices - 1)  # bias vectors of size d_ff (gate/up or fc1)
    dense_mlp = m.mlp_matrices * h * m.d_ff + m.mlp_bias * (hidden_bias * m.d_ff + h)
    expert = m.mlp_matrices * h * m.d_ff_expert + m.mlp_bias * (hidden_bias * m.d_ff_expert + h)
    router = (h + m.router_bias) * m.n_experts
    embedding = (m.vocab_size + m.position_rows + m.type_vocab_size) * h + m.embedding_norm * m.norm_params * h
    head = (1 - m.tied_embeddings) * m.vocab_size * h
    final_norm = m.final_norm * m.norm_params * h
    pooler = m.pooler * (h * h + h)
    return LayerParams(attention, block_norms, dense_mlp, expert, router, embedding, head,
                       final_norm, pooler)


def parameter_count(model: ModelSpec | ModelColumns) -> Breakdown:
    """Total parameters by component (element counts)."""
    m = model_columns(model)
    p = layer_params(m)
    return Breakdown({
        "embedding": p.embedding,
        "attention": m.n_layers * p.attention,
        "mlp": m.n_dense_layers * p.dense_mlp,
        "experts": m.n_moe_layers * m.n_experts * p.expert,
        "shared_experts": m.n_moe_layers * m.n_shared_experts * p.expert,
        "router": m.n_moe_layers * p.router,
        "norms": m.n_layers * p.block_norms + p.final_norm,
        "head": p.head,
        "pooler": p.pooler,
    })


def active_parameter_count(model: ModelSpec | ModelColumns) -> Breakdown:
    """Parameters a single token touches: the routed experts count only ``experts_per_token`` of
    ``n_experts``. Embedding and head are included, as in the Mixtral and DeepSeek-V3 reports."""
    m = model_columns(model)
    total = parameter_count(m)
    share = np.where(m.n_experts > 0, m.experts_per_token / np.maximum(m.n_experts, 1), 0.0)
    parts = dict(total)
    parts["experts"] = total["experts"] * share
    return Breakdown(parts)


def matrix_shape_sum(model: ModelSpec | ModelColumns) -> Array:
    """Sum over all weight matrices of (rows + columns) plus all vector parameters.

    This is the optimizer-state size of Adafactor with factored second moments and no first moment
    (Shazeer & Stern 2018, Alg. 4): one row and one column accumulator per matrix, a full
    accumulator per vector.
    """
    m = model_columns(model)
    h, a, kv, dqk, dv = m.d_model, m.n_heads, m.kv_heads, m.qk_head_dim, m.v_head_dim
    std = (h + a * dqk) + 2 * (h + kv * dqk) + (a * dv + h)
    std = std + m.qkv_bias * (a * dqk + 2 * kv * dqk) + m.attn_out_bias * h
    rq, rkv, rope = m.q_lora_rank, m.kv_lora_rank, m.qk_rope_head_dim
    q_path = np.where(rq > 0, (h + rq) + rq + (rq + a * dqk), h + a * dqk)
    mla = q_path + (h + rkv + rope) + rkv + (rkv + a * (dqk - rope + dv)) + (a * dv + h)
    attention = np.where(m.is_mla > 0, mla, std)
    norms = 2 * h * m.norm_params
    mlp_one = lambda ff: m.mlp_matrices * (h + ff) + m.mlp_bias * ((m.mlp_matrices - 1) * ff + h)  # noqa: E731
    per_layer = attention + norms
    moe = (m.n_experts + m.n_shared_experts) * mlp_one(m.d_ff_expert) + (h + m.n_experts) + m.router_bias * m.n_experts
    total = m.n_layers * per_layer + m.n_dense_layers * mlp_one(m.d_ff) + m.n_moe_layers * moe
    emb = (m.vocab_size + h) + (m.position_rows > 0) * (m.position_rows + h)
    emb = emb + (m.type_vocab_size > 0) * (m.type_vocab_size + h) + m.embedding_norm * m.norm_params * h
    head = (1 - m.tied_embeddings) * (m.vocab_size + h)
    return total + emb + head + m.final_norm * m.norm_params * h + m.pooler * (2 * h + h)


# Parameter-efficient fine-tuning ----------------------------------------------------------------

def linear_layers(model: ModelSpec | ModelColumns) -> list[tuple[str, Array, Array, Array]]:
    """(group, d_in, d_out, matrices per piece) of every linear layer a LoRA adapter can target,
    with the shapes ``layer_params`` counts. Groups: 'qv' and 'ko' (per block: q and v, the rest of
    attention), 'mlp' (per dense MLP: gate/up/down or fc1/fc2), 'expert' (per routed or shared
    expert). Standard attention: q, k, v, o projections; MLA (DeepSeek-V2 Sec. 2.1.2): q_proj or
    q_a/q_b and kv_b_proj count as 'qv' (kv_b makes the values), kv_a_proj_with_mqa and o_proj as
    'ko'. Counts are 0 in rows where a layer does not exist."""
    m = model_columns(model)
    h, a, kv, dqk, dv = m.d_model, m.n_heads, m.kv_heads, m.qk_head_dim, m.v_head_dim
    rq, rkv, rope = m.q_lora_rank, m.kv_lora_rank, m.qk_rope_head_dim
    mla = (m.is_mla > 0).astype(np.float64)
    std, q_lora = 1.0 - mla, mla * (rq > 0)
    return [
        ("qv", h, a * dqk, std + mla - q_lora),  # q_proj
        ("qv", h, kv * dqk, std),  # v_proj
        ("ko", h, kv * dqk, std),  # k_proj
        ("ko", a * dv, h, 1.0 + 0.0 * h),  # o_proj
        ("qv", h, rq, q_lora), ("qv", rq, a * dqk, q_lora),  # q_a_proj, q_b_proj
        ("ko", h, rkv + rope, mla),  # kv_a_proj_with_mqa
        ("qv", rkv, a * (dqk - rope + dv), mla),  # kv_b_proj
        ("mlp", h, m.d_ff, (m.mlp_matrices - 1) * (m.n_dense_layers > 0)),  # gate + up, or fc1
        ("mlp", m.d_ff, h, 1.0 * (m.n_dense_layers > 0)),  # down, or fc2
        ("expert", h, m.d_ff_expert, (m.mlp_matrices - 1) * (m.n_moe_layers > 0)),
        ("expert", m.d_ff_expert, h, 1.0 * (m.n_moe_layers > 0)),
    ]


def lora_targeted(group: str, targets: Array) -> Array:
    """1 where LoRA target mode ``targets`` (code into ``setup.LORA_TARGETS``) adapts ``group``."""
    code = np.asarray(targets, dtype=np.float64)
    if group == "qv":
        return 1.0 + 0.0 * code
    if group == "ko":
        return (code != LORA_QV).astype(np.float64)
    return (code == LORA_ALL).astype(np.float64)


@dataclass(frozen=True)
class AdapterParams:
    """LoRA adapters of the pieces a parallel layout distributes: r (d_in + d_out) parameters per
    adapted d_in x d_out matrix (A: r x d_in, B: d_out x r; Hu et al. 2021, Sec. 4.1), the number
    of adapted matrices per piece, and the largest frozen matrix of any block (elements)."""

    attention: Array  # one block's attention adapters
    dense_mlp: Array  # one dense MLP's
    expert: Array  # one routed or shared expert's
    attention_matrices: Array
    dense_mlp_matrices: Array
    expert_matrices: Array
    largest_matrix: Array


def adapter_params(model: ModelSpec | ModelColumns, rank: Array, targets: Array) -> AdapterParams:
    """Adapter parameters per piece for LoRA rank ``rank`` on ``targets`` (see ``linear_layers``)."""
    m = model_columns(model)
    r = np.asarray(rank, dtype=np.float64)
    sums = {g: 0.0 for g in ("attention", "mlp", "expert")}
    counts = dict(sums)
    largest = 0.0
    for group, d_in, d_out, n in linear_layers(m):
        piece = "attention" if group in ("qv", "ko") else group
        on = lora_targeted(group, targets) * n
        sums[piece] = sums[piece] + on * (d_in + d_out)
        counts[piece] = counts[piece] + on
        largest = np.maximum(largest, np.where(n > 0, d_in * d_out, 0.0))
    return AdapterParams(r * sums["attention"], r * sums["mlp"], r * sums["expert"],
                         counts["attention"], counts["mlp"], counts["expert"], largest)


def adapter_parameter_count(model: ModelSpec | ModelColumns, rank: Array, targets: Array | str = "all"
                            ) -> Breakdown:
    """Trainable LoRA parameters of the whole model by component (what PEFT's
    ``print_trainable_parameters`` reports). ``targets``: a name or code of ``setup.LORA_TARGETS``."""
    m = model_columns(model)
    code = LORA_TARGET_CODES[targets] if isinstance(targets, str) else targets
    ap = adapter_params(m, rank, code)
    return Breakdown({
        "attention": m.n_layers * ap.attention,
        "mlp": m.n_dense_layers * ap.dense_mlp,
        "experts": m.n_moe_layers * m.n_experts * ap.expert,
        "shared_experts": m.n_moe_layers * m.n_shared_experts * ap.expert,
    })


def adapter_forward_flops_per_token(model: ModelSpec | ModelColumns, rank: Array, targets: Array) -> Array:
    """Forward FLOPs of the adapters for one token: 2 per multiply-accumulate, r (d_in + d_out)
    per adapted matrix the token passes (routed experts: ``experts_per_token`` of them)."""
    m = model_columns(model)
    ap = adapter_params(m, rank, targets)
    per_moe = ap.attention + (m.experts_per_token + m.n_shared_experts) * ap.expert
    return 2.0 * (m.n_dense_layers * (ap.attention + ap.dense_mlp) + m.n_moe_layers * per_moe)


def frozen_linear_params(m: ModelColumns, p: LayerParams) -> tuple[Array, Array]:
    """Parameters of a dense block and of an MoE block outside the routed experts that sit in
    linear layers (what a quantized base stores at ``base_weight_bits``; biases and MLA's latent
    norms counted with their layer, negligible). Norms, router, embedding and head are not."""
    return p.attention + p.dense_mlp, p.attention + m.n_shared_experts * p.expert
