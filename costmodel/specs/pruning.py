"""Structured pruning as a smaller model: remove whole layers, MLP channels, attention heads (in
KV groups) or experts, and the result is an ordinary ``ModelSpec`` that every job evaluates as it
would any model (Sheared-LLaMA, Xia et al. 2024; Minitron, Muralidharan et al. 2024, prune exactly
these axes). Unstructured and 2:4 sparsity keep the shapes and are serving columns instead
(``specs.serving.SPARSITIES``)."""

from __future__ import annotations

import math

from costmodel.specs.spec import ModelSpec, ModelSpecError, make_spec


def _keep(n: int, fraction: float, multiple: int = 1, what: str = "") -> int:
    if not (0 < fraction <= 1) or math.isnan(fraction):
        raise ModelSpecError(f"{what}: keep fraction must be in (0, 1], got {fraction!r}")
    kept = max(multiple, int(round(n * fraction / multiple)) * multiple)
    return min(n, kept)


def shrink(spec: ModelSpec, *, layers: float = 1.0, ffn: float = 1.0, heads: float = 1.0,
           experts: float = 1.0, name: str | None = None) -> ModelSpec:
    """A structurally pruned copy of ``spec`` keeping the given fractions: ``layers`` of the
    blocks (dense leading layers first kept in proportion), ``ffn`` of the MLP channels (dense and
    expert), ``heads`` of the query heads in whole KV groups (the head dimension is kept), and
    ``experts`` of the routed experts (at least top-k). MLA models keep their attention."""
    if spec.attention == "mla" and heads != 1.0:
        raise ModelSpecError("heads: pruning MLA attention heads is not modelled; keep heads = 1")
    data = spec.model_dump()
    n_layers = _keep(spec.n_layers, layers, what="layers")
    data["n_layers"] = n_layers
    if spec.is_moe:
        data["n_dense_layers"] = min(_keep(max(spec.n_dense_layers, 1), layers, what="layers")
                                     if spec.n_dense_layers else 0, n_layers - 1)
        data["n_experts"] = max(spec.experts_per_token, _keep(spec.n_experts, experts, what="experts"))
        data["d_ff_expert"] = _keep(spec.d_ff_expert, ffn, 64, what="ffn")
    data["d_ff"] = _keep(spec.d_ff, ffn, 64, what="ffn")
    if heads != 1.0:
        group = spec.n_heads // spec.kv_heads
        kv = _keep(spec.kv_heads, heads, what="heads")
        data.update(n_heads=kv * group, n_kv_heads=kv, head_dim=spec.head_dim or spec.d_model // spec.n_heads)
    data["name"] = name or f"{spec.name}-pruned"
    data["source"] = (f"structured pruning of {spec.name}: layers x{layers:g}, ffn x{ffn:g}, "
                      f"heads x{heads:g}, experts x{experts:g}")
    return make_spec(data, where=f"shrink({spec.name})")
