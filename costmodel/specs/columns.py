"""Columnar views used by every formula: one configuration is a grid of one row.

Formulas never take pydantic objects. They take these frozen dataclasses whose fields are numpy
arrays (0-d for a single configuration, 1-d for a grid) and broadcast against each other. Flags and
enumerations become numbers (0/1, codes) so that mixed grids (several models, layouts, formats) are
evaluated in one vectorised pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from costmodel.specs.spec import ModelSpec

Array = np.ndarray


def as_array(value: Any) -> Array:
    """Float64 view of a scalar or sequence (no copy for float64 arrays)."""
    return np.asarray(value, dtype=np.float64)


def coded_arrays(c: Mapping[str, Any], names: Sequence[str], defaults: Mapping[str, Any], who: str
                 ) -> dict[str, Array]:
    """The inputs ``names`` of a column builder as float64 arrays broadcast to one shape: ``c``
    over ``defaults``; a missing name is a KeyError naming ``who``."""
    c = {**defaults, **c}
    missing = [k for k in names if k not in c]
    if missing:
        raise KeyError(f"{who}: missing {', '.join(missing)}")
    a = {k: np.asarray(c[k], dtype=np.float64) for k in names}
    shape = np.broadcast_shapes(*(v.shape for v in a.values()))
    return {k: np.broadcast_to(v, shape).astype(np.float64) for k, v in a.items()}


def flatten_coded(coded: Mapping[str, Any], system_code: Array) -> tuple[dict[str, Array], Array]:
    """Coded configurations and their system codes broadcast together and flattened to rows (a
    single configuration becomes a grid of one row)."""
    n = np.broadcast_shapes(*(np.shape(v) for v in coded.values()), np.shape(system_code))
    size = int(np.prod(n)) if n else 1
    flat = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), n).reshape(size) for k, v in coded.items()}
    return flat, np.broadcast_to(np.asarray(system_code, dtype=np.int64), n).reshape(size)


class Breakdown(Mapping[str, Array]):
    """An ordered mapping component -> array, with the total as the sum of the components.

    ``total`` is always the sum of the parts, so a breakdown can never disagree with its total.
    """

    __slots__ = ("_parts",)

    def __init__(self, parts: Mapping[str, Any]):
        self._parts = {k: as_array(v) for k, v in parts.items()}

    def __getitem__(self, key: str) -> Array:
        return self._parts[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    @property
    def total(self) -> Array:
        parts = list(self._parts.values())
        if not parts:
            return as_array(0.0)
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out

    def scaled(self, factor: Any) -> Breakdown:
        return Breakdown({k: v * factor for k, v in self._parts.items()})

    def to_python(self) -> dict[str, float]:
        """Components as Python floats (only for 0-d breakdowns)."""
        return {k: float(v) for k, v in self._parts.items()}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._parts.items())
        return f"Breakdown({inner})"


@dataclass(frozen=True)
class ModelColumns:
    """Numeric columns of one or many ``ModelSpec``s (element counts and 0/1 flags)."""

    n_layers: Array
    d_model: Array
    n_heads: Array
    kv_heads: Array
    qk_head_dim: Array
    v_head_dim: Array
    d_ff: Array
    vocab_size: Array
    position_rows: Array  # rows of a learned position table (0 for rotary/none)
    type_vocab_size: Array
    tied_embeddings: Array
    mlp_matrices: Array  # 2 (GELU/ReLU) or 3 (gated)
    norm_params: Array  # parameters per normalised element: 2 for LayerNorm, 1 for RMSNorm
    qkv_bias: Array
    attn_out_bias: Array
    mlp_bias: Array
    final_norm: Array
    embedding_norm: Array
    pooler: Array
    is_mla: Array
    q_lora_rank: Array  # 0 = full-rank query projection
    kv_lora_rank: Array
    qk_rope_head_dim: Array
    n_experts: Array
    experts_per_token: Array
    n_shared_experts: Array
    d_ff_expert: Array
    n_dense_layers: Array  # layers with a dense MLP (all layers for a dense model)
    n_moe_layers: Array
    router_bias: Array
    causal: Array

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ModelColumns:
        return cls.from_specs([spec], squeeze=True)

    @classmethod
    def from_specs(cls, specs: Sequence[ModelSpec], squeeze: bool = False) -> ModelColumns:
        rows = [_spec_row(s) for s in specs]
        cols = {f.name: np.array([r[f.name] for r in rows], dtype=np.float64) for f in fields(cls)}
        if squeeze:
            cols = {k: v.reshape(()) for k, v in cols.items()}
        return cls(**cols)

    def take(self, index: Array) -> ModelColumns:
        """Rows ``index`` of a stacked (1-d) model table, e.g. a per-configuration model code."""
        return ModelColumns(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _spec_row(s: ModelSpec) -> dict[str, float]:
    return {
        "n_layers": s.n_layers,
        "d_model": s.d_model,
        "n_heads": s.n_heads,
        "kv_heads": s.kv_heads,
        "qk_head_dim": s.qk_head_dim,
        "v_head_dim": s.v_dim_per_head,
        "d_ff": s.d_ff,
        "vocab_size": s.vocab_size,
        "position_rows": s.max_position_embeddings if s.position_embedding == "learned" else 0,
        "type_vocab_size": s.type_vocab_size,
        "tied_embeddings": float(s.tied_embeddings),
        "mlp_matrices": 3.0 if s.gated_mlp else 2.0,
        "norm_params": 2.0 if s.norm == "layernorm" else 1.0,
        "qkv_bias": float(s.qkv_bias),
        "attn_out_bias": float(s.attn_out_bias),
        "mlp_bias": float(s.mlp_bias),
        "final_norm": float(s.final_norm),
        "embedding_norm": float(s.embedding_norm),
        "pooler": float(s.pooler),
        "is_mla": float(s.attention == "mla"),
        "q_lora_rank": s.q_lora_rank or 0,
        "kv_lora_rank": s.kv_lora_rank or 0,
        "qk_rope_head_dim": s.qk_rope_head_dim or 0,
        "n_experts": s.n_experts,
        "experts_per_token": s.experts_per_token,
        "n_shared_experts": s.n_shared_experts,
        "d_ff_expert": s.d_ff_expert or 0,
        "n_dense_layers": s.n_dense_layers if s.is_moe else s.n_layers,
        "n_moe_layers": s.n_moe_layers,
        "router_bias": float(s.router_bias),
        "causal": float(s.causal),
    }


def model_columns(model: ModelSpec | ModelColumns | str) -> ModelColumns:
    """Accept a spec, ready columns, or a preset name / config path."""
    if isinstance(model, ModelColumns):
        return model
    if not isinstance(model, ModelSpec):
        from costmodel.specs.spec import resolve_model

        model = resolve_model(model)
    return ModelColumns.from_spec(model)
