"""Serving one replica: memory, prefill, a decode step, a continuous-batching iteration with chunked
prefill, and a static batch. Every function broadcasts over numpy columns.

A replica is the tp x pp devices holding one copy of the model. Experts are split across the tp
ranks: ``ep`` = 1 shards every expert across tp (tensor-parallel experts, all-reduce), ``ep`` = tp
gives each rank whole experts (expert parallelism, all-to-all dispatch and combine), as vLLM's
``--enable-expert-parallel`` does within a tensor-parallel group.

Sources:
- Decode is bound by reading the weights once per step and each sequence's KV cache (roofline;
  Pope et al. 2022, 'Efficiently Scaling Transformer Inference', Sec. 2-3). Per-block times come
  from ``blocks.block_forward`` (GEMMs by the roofline, fused attention, element-wise bytes).
- MoE decode reads only the experts a step touches: E (1 - (1 - k/E)^tokens) for uniform routing
  (``blocks.expected_experts_touched``).
- Paged KV cache with block granularity: Kwon et al. 2023 (vLLM, SOSP'23); each sequence's cache is
  rounded up to whole blocks (``kv_block_tokens``).
- Continuous batching (Yu et al. 2022, Orca, OSDI'22) with chunked prefill riding along decode
  iterations (Agrawal et al. 2024, Sarathi-Serve, OSDI'24): in steady state each iteration decodes
  one token for each of the B running sequences and processes B x I / O prompt tokens (every
  request's prompt is processed once over its O output tokens); the linear layers run at
  B + B I / O tokens, so the weights are read once for both.
- Tensor parallelism: two all-reduces of the tokens' activations per layer (Shoeybi et al. 2019);
  expert parallelism: dispatch and combine all-to-all per MoE layer; pipeline: one send per stage
  boundary. Collective times from ``comms`` (alpha-beta over the system's fabric).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from costmodel.formulas.blocks import (
    Roofline, attention_forward, block_forward, expected_experts_touched, kv_cache_read_bytes,
    lm_head_forward,
)
from costmodel.formulas.comms import Fabric, all_reduce_time, all_to_all_time, group, p2p_time
from costmodel.formulas.memory import inference_memory_per_device
from costmodel.specs.columns import Array, Breakdown, ModelColumns, as_array
from costmodel.specs.serving import ServingColumns

DECODE_COMPONENTS = ("weights_and_gemms", "attention", "elementwise", "lm_head", "tp_comm",
                     "ep_comm", "pp_comm", "step_overhead")


@dataclass(frozen=True)
class ServingKnobs:
    """Serving assumptions (data/assumptions.yaml): fixed time per iteration, paged-KV block size,
    fraction of device memory the engine may use, prefill chunk budget, GEMM overhead and the
    GEMM size at half the large-GEMM efficiency (the training knob, ``blocks`` docstring: decode
    GEMMs of a few rows are small). A field left at its default here is the formula's neutral
    value; ``jobs.serve.serving_knobs`` fills every field from the knob table."""

    step_overhead_s: Array = 0.0
    kv_block_tokens: Array = 16.0
    memory_utilization: Array = 0.9
    prefill_chunk_tokens: Array = 512.0
    gemm_kernel_overhead_s: Array = 5e-6
    elementwise_traffic_factor: Array = 1.0
    cuda_context_bytes: Array = 0.0
    weight_only_overhead: Array = 0.0  # extra compute time of dequantizing weight-only GEMMs
    gemm_half_efficiency_gflops: Array = 0.0  # GEMM size (GFLOP) at half the large-GEMM efficiency
    expert_gemm_efficiency_scale: Array = 1.0  # routed experts' grouped GEMMs relative to dense ones


TWO_FOUR, UNSTRUCTURED = 1.0, 2.0  # codes of specs.serving.SPARSITIES


def sparse_speedup(s: ServingColumns, hw) -> Array:
    """The catalog's sparse tensor-core speedup where the row uses 2:4 and the part has one, else 1."""
    speed = np.asarray(getattr(hw, "sparsity_speedup", 1.0), dtype=float)
    return np.where((s.sparsity == TWO_FOUR) & (speed > 1.0), speed, 1.0)


def stored_weight_bits(s: ServingColumns, hw) -> Array:
    """Bits one linear-layer weight takes in memory: dense bits, or sparse storage: 2:4 keeps half
    the values plus a 2-bit index per kept value (only where the part runs 2:4, else dense);
    unstructured 50% keeps half the values plus a 1-bit-per-weight bitmap."""
    dense = s.weight_bits
    two_four = sparse_speedup(s, hw) > 1.0
    return np.where(two_four, 0.5 * (dense + 2.0),
                    np.where(s.sparsity == UNSTRUCTURED, 0.5 * dense + 1.0, dense))


def paged_context(context: Array, block_tokens: Array) -> Array:
    """Tokens of KV cache a sequence of ``context`` tokens holds: whole blocks (Kwon et al. 2023)."""
    b = as_array(block_tokens)
    return np.ceil(as_array(context) / b) * b


def serving_memory(m: ModelColumns, s: ServingColumns, k: ServingKnobs, batch: Array | None = None,
                   hw=None) -> Breakdown:
    """Bytes per device of a replica running ``batch`` sequences (default ``s.batch``) at the
    longest context (input + output): weights, paged KV cache, one iteration's activations
    (decode tokens plus a prefill chunk), CUDA context."""
    b = s.batch if batch is None else as_array(batch)
    context = paged_context(s.input_len + s.output_len, k.kv_block_tokens)
    iteration_tokens = b + np.minimum(as_array(k.prefill_chunk_tokens), s.input_len)
    return inference_memory_per_device(
        m, batch=b, context_len=context,
        weight_bits=s.weight_bits if hw is None else stored_weight_bits(s, hw), kv_bits=s.kv_bits,
        act_bytes=s.act_bytes, prefill_chunk=iteration_tokens / np.maximum(b, 1.0), tp=s.tp,
        pp=s.pp, ep=1.0, cuda_context_bytes=k.cuda_context_bytes)


def max_batch(m: ModelColumns, s: ServingColumns, k: ServingKnobs, hw) -> Array:
    """Largest number of sequences whose KV cache (and workspace) fits in the engine's share of
    device memory (``memory_utilization`` x capacity), 0 when the weights alone do not fit."""
    capacity_bytes = hw.memory_bytes
    one = serving_memory(m, s, k, batch=1.0, hw=hw)
    two = serving_memory(m, s, k, batch=2.0, hw=hw)
    per_seq = two.total - one.total  # KV cache and workspace grow linearly with the batch
    fixed = one.total - per_seq
    budget = as_array(k.memory_utilization) * as_array(capacity_bytes) - fixed
    return np.maximum(np.floor(budget / np.where(per_seq > 0, per_seq, 1.0)), 0.0)


def serving_roofline(hw, k: ServingKnobs, s: ServingColumns) -> Roofline:
    """Achieved rates, with the linear layers' stored weight bytes and their compute-time factor:
    weight-only schemes dequantize (+ ``weight_only_overhead``), 2:4 runs at the sparse speedup;
    every GEMM pays the size term of ``gemm_half_efficiency_gflops`` and the routed experts run at
    ``expert_gemm_efficiency_scale``, as in training."""
    scale = (1.0 + as_array(k.weight_only_overhead) * s.weight_only) / sparse_speedup(s, hw)
    return Roofline.from_hardware(hw, k.gemm_kernel_overhead_s, k.elementwise_traffic_factor,
                                  weight_bytes=stored_weight_bits(s, hw) / 8, weight_compute_scale=scale,
                                  gemm_half_efficiency_gflops=k.gemm_half_efficiency_gflops,
                                  expert_gemm_efficiency_scale=k.expert_gemm_efficiency_scale)


def take_roofline(roof: Roofline, index: np.ndarray) -> Roofline:
    """Rows ``index`` of a per-row roofline (scalar fields stay as they are): a later stage of the
    planner evaluates fewer rows with the rates already built."""
    return replace(roof, **{f.name: np.asarray(v)[index] for f in fields(roof)
                            if (v := getattr(roof, f.name)) is not None and np.ndim(v) > 0})


def take_knobs(k: ServingKnobs, index: np.ndarray) -> ServingKnobs:
    """Rows ``index`` of per-row serving knobs (scalar knobs stay as they are)."""
    return replace(k, **{f.name: np.asarray(v)[index] for f in fields(k)
                         if np.ndim(v := getattr(k, f.name)) > 0})


def _layers(m: ModelColumns, dense_block: Array, moe_block: Array) -> Array:
    return m.n_dense_layers * dense_block + m.n_moe_layers * moe_block


def _comm(m: ModelColumns, s: ServingColumns, fabric: Fabric, tokens: Array) -> dict[str, Array]:
    """TP all-reduces, EP all-to-alls (per layer) and PP sends (per boundary) for ``tokens``."""
    h, e = m.d_model, s.act_bytes
    tp_group = group(s.tp, 1.0, fabric)
    act = as_array(tokens) * h * e
    tp = 2 * m.n_layers * all_reduce_time(act, tp_group, fabric)
    ep_group = group(s.ep, 1.0, fabric)
    routed = as_array(tokens) * m.experts_per_token * h * e / np.maximum(s.ep, 1.0)
    ep = np.where(s.ep > 1, 2 * m.n_moe_layers * all_to_all_time(routed, ep_group, fabric), 0.0)
    crosses = s.tp >= fabric.scaleup_domain
    pp = (s.pp - 1) * np.where(s.pp > 1, p2p_time(act / s.tp, crosses, fabric), 0.0)
    return {"tp_comm": tp, "ep_comm": ep, "pp_comm": pp}


def _block_args(s: ServingColumns) -> dict:
    return dict(tp=s.tp, expert_tp=s.tp / s.ep, ep=s.ep, act_bytes=s.act_bytes,
                matmul_bytes=s.matmul_bytes)


def prefill_time(m: ModelColumns, s: ServingColumns, hw, k: ServingKnobs, *, sequences: Array,
                 prompt: Array, roof: Roofline | None = None) -> dict[str, Array]:
    """Seconds to prefill ``sequences`` prompts of ``prompt`` tokens on one replica (all layers
    in sequence through the pipeline), by component, with the first output token's LM head.
    ``roof``: the rows' roofline when the caller has built it (default: built here)."""
    roof = serving_roofline(hw, k, s) if roof is None else roof
    tokens = as_array(sequences) * as_array(prompt)
    bf = block_forward(m, tokens=tokens, context=prompt, hw=roof,
                       experts_touched=expected_experts_touched(m, tokens), **_block_args(s))
    head = lm_head_forward(m, tokens=sequences, hw=roof, tp=s.tp, matmul_bytes=s.matmul_bytes)[0]
    out = {
        "gemms": _layers(m, bf.attention_gemms + bf.dense_mlp, bf.attention_gemms + bf.moe_mlp),
        "attention": m.n_layers * bf.attention_core,
        "elementwise": _layers(m, bf.dense_elementwise, bf.moe_elementwise),
        "lm_head": head,
        **_comm(m, s, hw.fabric, tokens),
        "step_overhead": as_array(k.step_overhead_s) + 0.0 * head,
    }
    out["total"] = sum(out.values())
    return out


def iteration_time(m: ModelColumns, s: ServingColumns, hw, k: ServingKnobs, *, sequences: Array,
                   context: Array, prefill_tokens: Array = 0.0, roof: Roofline | None = None
                   ) -> dict[str, Array]:
    """One continuous-batching iteration: a decode token for each of ``sequences`` running
    sequences at KV length ``context``, plus ``prefill_tokens`` prompt tokens (chunked prefill)
    attending over their own prompt (``s.input_len``). By component (see ``DECODE_COMPONENTS``)
    with ``total`` and the share of the linear layers' time that is memory-bound. ``roof``: the
    rows' roofline when the caller has built it (default: built here)."""
    roof = serving_roofline(hw, k, s) if roof is None else roof
    B, P = as_array(sequences), as_array(prefill_tokens)
    tokens = B + P
    linear = block_forward(m, tokens=tokens, context=context, hw=roof, causal_discount=0.0,
                           experts_touched=expected_experts_touched(m, tokens), **_block_args(s))
    kv = kv_cache_read_bytes(m, sequences=B, context=context, tp=s.tp, kv_bytes=s.kv_bytes)
    dec_attn = attention_forward(m, tokens=B, context=context, hw=roof, tp=s.tp, causal_discount=0.0,
                                 kv_read_bytes=kv, act_bytes=s.act_bytes)
    if P.ndim == 0 and P == 0:  # decode only: no prompt tokens attend (0 whatever the rows)
        pre_attn = np.zeros(np.shape(dec_attn))
    else:
        pre_attn = attention_forward(m, tokens=P, context=s.input_len, hw=roof, tp=s.tp,
                                     act_bytes=s.act_bytes)
    head, _ = lm_head_forward(m, tokens=B, hw=roof, tp=s.tp, matmul_bytes=s.matmul_bytes)
    gemms = _layers(m, linear.attention_gemms + linear.dense_mlp, linear.attention_gemms + linear.moe_mlp)
    out = {
        "weights_and_gemms": gemms,
        "attention": m.n_layers * (dec_attn + np.where(P > 0, pre_attn, 0.0)),
        "elementwise": _layers(m, linear.dense_elementwise, linear.moe_elementwise),
        "lm_head": head,
        **_comm(m, s, hw.fabric, tokens),
        "step_overhead": as_array(k.step_overhead_s) + 0.0 * head,
    }
    out["total"] = sum(out.values())
    bound = _layers(m, linear.attention_gemms_memory_bound * linear.attention_gemms
                    + linear.dense_mlp_memory_bound * linear.dense_mlp,
                    linear.attention_gemms_memory_bound * linear.attention_gemms
                    + linear.moe_mlp_memory_bound * linear.moe_mlp)
    out["gemms_memory_bound_share"] = np.where(gemms > 0, bound / np.where(gemms > 0, gemms, 1.0), 0.0)
    return out


def steady_state(m: ModelColumns, s: ServingColumns, hw, k: ServingKnobs,
                 roof: Roofline | None = None) -> dict[str, Array]:
    """A replica's steady state with all ``s.batch`` slots busy (continuous batching with chunked
    prefill): time per output token, output tokens/s, the time a request holds a slot (service
    time), time to first token without queueing, and the iteration's components. The three
    iterations it takes are ``steady_iteration``, ``decode_only_iteration`` and ``chunked_ttft``
    (the planner calls them one by one, dropping rows between them)."""
    roof = serving_roofline(hw, k, s) if roof is None else roof
    return steady_outputs(s, steady_iteration(m, s, hw, k, roof),
                          decode_only_iteration(m, s, hw, k, roof)["total"],
                          chunked_ttft(m, s, hw, k, roof))


def steady_iteration(m: ModelColumns, s: ServingColumns, hw, k: ServingKnobs,
                     roof: Roofline | None = None) -> dict[str, Array]:
    """The steady-state iteration: B decodes at the mean context I + O/2 plus the B x I / O
    prompt tokens that ride along (its ``total`` is the time per output token)."""
    B, I, O = s.batch, s.input_len, s.output_len
    return iteration_time(m, s, hw, k, sequences=B, context=I + O / 2.0, prefill_tokens=B * I / O,
                          roof=roof)


def decode_only_iteration(m: ModelColumns, s: ServingColumns, hw, k: ServingKnobs,
                          roof: Roofline | None = None) -> dict[str, Array]:
    """The same B decodes without prompt tokens (disaggregated decode; the prompts' share)."""
    return iteration_time(m, s, hw, k, sequences=s.batch, context=s.input_len + s.output_len / 2.0,
                          roof=roof)


def chunked_ttft(m: ModelColumns, s: ServingColumns, hw, k: ServingKnobs,
                 roof: Roofline | None = None) -> Array:
    """Time to first token without queueing: a new request's prompt is processed in chunks of up
    to prefill_chunk_tokens alongside the B - 1 running decodes (Sarathi-Serve); its first token
    comes with the last chunk."""
    B, I, O = s.batch, s.input_len, s.output_len
    chunk = np.minimum(as_array(k.prefill_chunk_tokens), I)
    chunks = np.ceil(I / chunk)
    with_chunk = iteration_time(m, s, hw, k, sequences=np.maximum(B - 1, 0.0), context=I + O / 2.0,
                                prefill_tokens=chunk, roof=roof)["total"]
    return chunks * with_chunk


def steady_outputs(s: ServingColumns, it: dict[str, Array], decode_only: Array, ttft: Array
                   ) -> dict[str, Array]:
    """``steady_state``'s outputs from its three iterations."""
    B, O = s.batch, s.output_len
    tpot = it["total"]
    service = ttft + np.maximum(O - 1, 0.0) * tpot
    out = {f"decode_{c}_s": it[c] for c in DECODE_COMPONENTS}
    out.update({
        "tpot_s": tpot, "ttft_service_s": ttft, "service_time_s": service,
        "output_tokens_per_s_per_replica": B / tpot,
        "requests_per_s_per_replica": B / service,
        "gemms_memory_bound_share": it["gemms_memory_bound_share"],
        # What the input tokens cost a replica: the time the prompt tokens add to an iteration
        # over a decode-only iteration (their marginal time); the rest is the output tokens'.
        "prefill_time_share": 1.0 - decode_only / tpot,
        "decode_only_tpot_s": decode_only,
    })
    return out


def disaggregated_state(m: ModelColumns, s: ServingColumns, hw, k: ServingKnobs,
                        decode_only_tpot_s: Array, roof: Roofline | None = None) -> dict[str, Array]:
    """Prefill and decode in separate pools of replicas with this layout (DistServe, Zhong et al.
    2024; Splitwise, Patel et al. 2024; NVIDIA Dynamo): a prefill replica runs one prompt at a
    time at full compute; its KV cache then crosses the scale-out fabric to a decode replica
    (each of the tp devices sends its shard, ``comms.p2p_time``), which decodes without prefill
    interference at ``decode_only_tpot_s``. Returns the prefill service time, the KV transfer and
    the time to first token without queueing."""
    from costmodel.formulas.memory import kv_cache_bytes_per_token

    prefill = prefill_time(m, s, hw, k, sequences=1.0, prompt=s.input_len, roof=roof)["total"]
    kv_bytes = s.input_len * kv_cache_bytes_per_token(m, s.kv_bits)
    transfer = s.pp * p2p_time(kv_bytes / (s.tp * s.pp), True, hw.fabric)
    return {"prefill_service_s": prefill, "kv_transfer_s": transfer,
            "ttft_service_s": prefill + transfer + decode_only_tpot_s,
            "decode_service_s": np.maximum(s.output_len - 1, 0.0) * decode_only_tpot_s}


def static_batch(m: ModelColumns, s: ServingColumns, hw, k: ServingKnobs) -> dict[str, Array]:
    """A static batch of ``s.batch`` requests (no continuous batching): prefill all prompts, then
    O decode steps at growing context (the sum of a step time linear in context is O times the
    step at the mean context I + (O - 1)/2). Returns time to first token, total seconds and output
    tokens per second, as static-batch benchmarks report them."""
    B, I, O = s.batch, s.input_len, s.output_len
    prefill = prefill_time(m, s, hw, k, sequences=B, prompt=I)["total"]
    decode = iteration_time(m, s, hw, k, sequences=B, context=I + (O - 1) / 2.0)["total"]
    total = prefill + np.maximum(O - 1, 0.0) * decode
    return {"ttft_s": prefill, "total_s": total, "tpot_s": decode,
            "output_tokens_per_s": B * O / total}
