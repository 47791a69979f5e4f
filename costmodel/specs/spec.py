"""Transformer architecture specifications (``ModelSpec``), shipped presets and Hugging Face import.

A ``ModelSpec`` describes the *architecture* only: sizes, attention and MLP flavour, mixture of
experts. What is done with it (training, serving, the parallel layout) lives elsewhere. Every size is
a count of elements (not bytes); memory and FLOPs are derived by the formula modules.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from hardware_catalog.paths import data_dir

Architecture = Literal["decoder", "encoder"]
PositionEmbedding = Literal["learned", "rotary", "none"]
MlpActivation = Literal["gelu", "relu", "squared_relu", "swiglu", "geglu"]
Norm = Literal["layernorm", "rmsnorm"]
AttentionKind = Literal["standard", "mla"]

#: Activations whose MLP has a gate: three weight matrices (gate, up, down) instead of two.
GATED_ACTIVATIONS = frozenset({"swiglu", "geglu"})


class ModelSpecError(ValueError):
    """A model description that cannot be turned into a valid ``ModelSpec``."""


# Upper bounds on every size of a ``ModelSpec``. They lie far above any real model (the largest
# published ones have ~200 layers, d_model ~ 25k, 256 experts, vocabularies ~ 260k) and exist so
# that every derived figure stays a finite float64: with all sizes at their bounds the parameter
# count is ~1e23, far below the float64 limit (~1.8e308).
MAX_LAYERS = 10_000
MAX_WIDTH = 1_048_576  # d_model and the MLA ranks (2**20)
MAX_HEADS = 65_536  # n_heads, n_kv_heads
MAX_HEAD_DIM = 65_536  # head_dim and the MLA per-head dimensions
MAX_FF = 16_777_216  # d_ff, d_ff_expert (2**24)
MAX_VOCAB = 10_000_000  # vocab_size, type_vocab_size
MAX_POSITIONS = 1_073_741_824  # learned position rows (2**30)
MAX_EXPERTS = 65_536  # n_experts, experts_per_token, n_shared_experts

#: Integer (size/count) fields of ``ModelSpec``.
COUNT_FIELDS = (
    "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "vocab_size",
    "max_position_embeddings", "type_vocab_size", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim",
    "qk_nope_head_dim", "v_head_dim", "n_experts", "experts_per_token", "n_shared_experts",
    "d_ff_expert", "n_dense_layers",
)


def _show(value: Any, limit: int = 60) -> str:
    """A short, always-computable repr of an input value for error messages."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**18:
        sign = "-" if value < 0 else ""
        return f"{sign}an integer of about {int(abs(value).bit_length() * 0.30103) + 1} digits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr must never hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_word(value: Any) -> str:
    """The JSON-ish name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class ModelSpec(BaseModel):
    """Architecture of a dense or mixture-of-experts transformer.

    Sizes are element counts. Defaults describe a Llama-style decoder (rotary positions, RMSNorm,
    SwiGLU MLP, no biases, untied embeddings); presets and Hugging Face configs override them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Short identifier, e.g. 'llama-3.1-8b'.")
    architecture: Architecture = Field(
        "decoder", description="'decoder' (causal LM) or 'encoder' (BERT-style, bidirectional)."
    )
    n_layers: int = Field(gt=0, le=MAX_LAYERS, description="Transformer blocks (1 to 10,000).")
    d_model: int = Field(gt=0, le=MAX_WIDTH, description="Hidden size h (elements; 1 to 1,048,576).")
    n_heads: int = Field(gt=0, le=MAX_HEADS, description="Attention (query) heads a (1 to 65,536).")
    n_kv_heads: int | None = Field(
        None, gt=0, le=MAX_HEADS,
        description="Key/value heads (= n_heads for MHA, 1 for MQA; 1 to 65,536, must divide "
                    "n_heads); default n_heads.",
    )
    head_dim: int | None = Field(
        None, gt=0, le=MAX_HEAD_DIM,
        description="Per-head dimension (1 to 65,536); default d_model / n_heads.",
    )
    d_ff: int = Field(
        gt=0, le=MAX_FF, description="Hidden size of the dense MLP (elements; 1 to 16,777,216)."
    )
    vocab_size: int = Field(
        gt=0, le=MAX_VOCAB, description="Vocabulary rows of the embedding (as trained; 1 to 10,000,000)."
    )
    max_position_embeddings: int | None = Field(
        None, gt=0, le=MAX_POSITIONS,
        description="Rows of the learned position table (required for learned positions; "
                    "1 to 1,073,741,824).",
    )
    position_embedding: PositionEmbedding = Field(
        "rotary", description="'learned' (a trained table), 'rotary' (RoPE, no parameters) or 'none'."
    )
    tied_embeddings: bool = Field(False, description="Output head shares the input embedding matrix.")
    mlp_activation: MlpActivation = Field(
        "swiglu", description="gelu/relu/squared_relu: 2 matrices; swiglu/geglu: 3 (gated)."
    )
    norm: Norm = Field("rmsnorm", description="'layernorm' (weight+bias) or 'rmsnorm' (weight).")
    qkv_bias: bool = Field(False, description="Bias on the query/key/value projections.")
    attn_out_bias: bool = Field(False, description="Bias on the attention output projection.")
    mlp_bias: bool = Field(False, description="Bias on the MLP (and expert) projections.")
    final_norm: bool = Field(True, description="A norm after the last block (pre-LN models).")
    # Encoder (BERT) extras.
    type_vocab_size: int = Field(
        0, ge=0, le=MAX_VOCAB,
        description="Token-type (segment) embedding rows (BERT: 2; 0 to 10,000,000).",
    )
    embedding_norm: bool = Field(False, description="A norm right after the embeddings (BERT).")
    pooler: bool = Field(False, description="BERT pooler: one d_model x d_model dense layer with bias.")
    # Multi-head latent attention (DeepSeek-V2/V3).
    attention: AttentionKind = Field("standard", description="'standard' (MHA/GQA/MQA) or 'mla'.")
    q_lora_rank: int | None = Field(
        None, gt=0, le=MAX_WIDTH,
        description="MLA: rank of the query down-projection (None = full-rank query; 1 to 1,048,576).",
    )
    kv_lora_rank: int | None = Field(
        None, gt=0, le=MAX_WIDTH, description="MLA: rank of the compressed KV latent (1 to 1,048,576)."
    )
    qk_rope_head_dim: int | None = Field(
        None, gt=0, le=MAX_HEAD_DIM, description="MLA: rotary part of q/k per head (1 to 65,536)."
    )
    qk_nope_head_dim: int | None = Field(
        None, gt=0, le=MAX_HEAD_DIM, description="MLA: non-rotary part of q/k per head (1 to 65,536)."
    )
    v_head_dim: int | None = Field(
        None, gt=0, le=MAX_HEAD_DIM, description="MLA: value dimension per head (1 to 65,536)."
    )
    # Mixture of experts.
    n_experts: int = Field(
        0, ge=0, le=MAX_EXPERTS,
        description="Routed experts per MoE layer (0 = dense model; 0 to 65,536).",
    )
    experts_per_token: int = Field(
        0, ge=0, le=MAX_EXPERTS,
        description="Routed experts each token uses (top-k; 0 to 65,536, at most n_experts).",
    )
    n_shared_experts: int = Field(
        0, ge=0, le=MAX_EXPERTS, description="Always-active shared experts per MoE layer (0 to 65,536)."
    )
    d_ff_expert: int | None = Field(
        None, gt=0, le=MAX_FF, description="Hidden size of one expert's MLP (1 to 16,777,216)."
    )
    n_dense_layers: int = Field(
        0, ge=0, le=MAX_LAYERS,
        description="Leading blocks with a dense MLP in an MoE model (DeepSeek: 3; 0 to 10,000, below "
                    "n_layers).",
    )
    router_bias: bool = Field(
        False, description="Router carries a per-expert bias (DeepSeek-V3 e_score_correction_bias)."
    )
    source: str = Field("", description="Where the architecture figures come from.")

    @field_validator(*COUNT_FIELDS, mode="wrap")
    @classmethod
    def _check_count(cls, value: Any, handler: ValidatorFunctionWrapHandler,
                     info: ValidationInfo) -> Any:
        """Sizes are finite integers inside the documented range. An integral float (4096.0) is
        accepted as that integer; booleans and text are not numbers here (``True`` is not 1 layer,
        ``"4096"`` is not 4096), nor are NaN, infinities or fractions."""
        lo, hi = count_bounds(info.field_name)
        optional = cls.model_fields[info.field_name].default is None
        wanted = f"an integer from {lo:,} to {hi:,}" + (" (or null)" if optional else "")
        if isinstance(value, (bool, str, bytes)):
            raise ValueError(f"must be {wanted}, got the {_type_word(value)} {_show(value)}")
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"must be {wanted}, got {_show(value)}") from None

    @model_validator(mode="after")
    def _check_consistency(self) -> ModelSpec:
        errors: list[str] = []
        if self.head_dim is None and self.attention == "standard" and self.d_model % self.n_heads:
            errors.append(
                f"d_model ({self.d_model}) is not divisible by n_heads ({self.n_heads}); "
                "give head_dim explicitly if the model really uses another head size"
            )
        if self.n_kv_heads is not None:
            if self.n_kv_heads > self.n_heads:
                errors.append(f"n_kv_heads ({self.n_kv_heads}) exceeds n_heads ({self.n_heads})")
            elif self.n_heads % self.n_kv_heads:
                errors.append(
                    f"n_kv_heads ({self.n_kv_heads}) does not divide n_heads ({self.n_heads})"
                )
        if self.position_embedding == "learned" and self.max_position_embeddings is None:
            errors.append("max_position_embeddings is required when position_embedding='learned'")
        if self.attention == "mla":
            for field in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
                if getattr(self, field) is None:
                    errors.append(f"{field} is required when attention='mla'")
        else:
            for field in ("q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim",
                          "v_head_dim"):
                if getattr(self, field) is not None:
                    errors.append(f"{field} is only allowed when attention='mla'")
        if self.n_experts:
            if self.experts_per_token < 1:
                errors.append("experts_per_token must be >= 1 when n_experts > 0")
            if self.experts_per_token > self.n_experts:
                errors.append(
                    f"experts_per_token ({self.experts_per_token}) exceeds n_experts "
                    f"({self.n_experts})"
                )
            if self.d_ff_expert is None:
                errors.append("d_ff_expert is required when n_experts > 0")
            if self.n_dense_layers >= self.n_layers:
                errors.append(
                    f"n_dense_layers ({self.n_dense_layers}) must be below n_layers "
                    f"({self.n_layers}) in an MoE model"
                )
        else:
            for field in ("experts_per_token", "n_shared_experts", "n_dense_layers"):
                if getattr(self, field):
                    errors.append(f"{field} is only allowed when n_experts > 0")
            if self.d_ff_expert is not None:
                errors.append("d_ff_expert is only allowed when n_experts > 0")
            if self.router_bias:
                errors.append("router_bias is only allowed when n_experts > 0")
        if self.architecture == "encoder" and self.n_experts:
            errors.append("mixture-of-experts encoders are not supported")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # Derived sizes (element counts) -------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        """Key/value heads actually used (n_kv_heads, defaulting to n_heads)."""
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def qk_head_dim(self) -> int:
        """Query/key dimension per head (MLA: nope + rope parts)."""
        if self.attention == "mla":
            return self.qk_nope_head_dim + self.qk_rope_head_dim  # type: ignore[operator]
        return self.head_dim if self.head_dim is not None else self.d_model // self.n_heads

    @property
    def v_dim_per_head(self) -> int:
        """Value dimension per head."""
        if self.attention == "mla":
            return self.v_head_dim  # type: ignore[return-value]
        return self.qk_head_dim

    @property
    def gated_mlp(self) -> bool:
        return self.mlp_activation in GATED_ACTIVATIONS

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.n_dense_layers if self.is_moe else 0

    @property
    def causal(self) -> bool:
        """Decoders attend causally; encoders bidirectionally."""
        return self.architecture == "decoder"

    @classmethod
    def from_hf_config(cls, config: dict[str, Any] | str | Path, name: str | None = None) -> ModelSpec:
        """Build a spec from a local Hugging Face ``config.json`` (see ``spec_from_hf_config``)."""
        return spec_from_hf_config(config, name)

    def with_changes(self, **changes: Any) -> ModelSpec:
        """A validated copy with some fields replaced."""
        return ModelSpec(**{**self.model_dump(), **changes})


def count_bounds(field: str) -> tuple[int, int]:
    """(lowest, highest) allowed value of an integer ``ModelSpec`` field (from its Field bounds)."""
    lo, hi = 0, None
    for meta in ModelSpec.model_fields[field].metadata:
        if getattr(meta, "gt", None) is not None:
            lo = meta.gt + 1
        if getattr(meta, "ge", None) is not None:
            lo = meta.ge
        if getattr(meta, "le", None) is not None:
            hi = meta.le
    assert hi is not None, field
    return lo, hi


def format_validation_error(exc: ValidationError, where: str | None = None) -> str:
    """One readable line from a pydantic error: 'where: field.path: message; ...'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(input)"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    text = "; ".join(parts)
    return f"{where}: {text}" if where else text


def make_spec(data: Mapping[str, Any], where: str = "model spec") -> ModelSpec:
    """Build a ``ModelSpec`` from a mapping, turning pydantic errors into one readable message."""
    if not isinstance(data, Mapping):
        raise ModelSpecError(
            f"{where}: expected a mapping of model fields, got the {_type_word(data)} {_show(data)}"
        )
    try:
        return ModelSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise ModelSpecError(format_validation_error(exc, where)) from None


def _load_yaml_mapping(path: Path) -> dict[str, Any]:
    """The mapping in a model YAML file; unreadable, non-UTF-8 or non-YAML files are ModelSpecErrors."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelSpecError(f"cannot read {path}: {exc.strerror or exc}") from None
    text = _decode_utf8(raw, str(path))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelSpecError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ModelSpecError(f"{path}: expected a mapping of model fields")
    return data


# Presets ------------------------------------------------------------------------------------

def _models_dir() -> Path:
    return data_dir() / "models"


@lru_cache(maxsize=1)
def _preset_table() -> dict[str, ModelSpec]:
    table: dict[str, ModelSpec] = {}
    for path in sorted(_models_dir().glob("*.yaml")):
        spec = make_spec(_load_yaml_mapping(path), where=str(path))
        if spec.name in table:
            raise ModelSpecError(f"{path}: duplicate preset name {spec.name!r}")
        if path.stem != spec.name:
            raise ModelSpecError(f"{path}: file name must equal the preset name {spec.name!r}")
        table[spec.name] = spec
    return table


def presets() -> dict[str, ModelSpec]:
    """All shipped model presets, keyed by name (loaded from ``data/models/*.yaml``)."""
    return dict(_preset_table())


def preset(name: str) -> ModelSpec:
    """One shipped preset by name; an unknown name lists the close matches and all names."""
    table = _preset_table()
    if not isinstance(name, str):
        raise ModelSpecError(f"a model preset name must be text, got {_show(name)}")
    try:
        return table[name]
    except KeyError:
        close = difflib.get_close_matches(name, table, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelSpecError(
            f"unknown model preset {name!r}.{hint} Available: {', '.join(sorted(table))}"
        ) from None


# Hugging Face config.json import --------------------------------------------------------------
#
# Every value is read through a typed reader of ``HFConfig`` (never by truthiness), which accepts
# exactly the JSON type the field has in real Hugging Face configs:
#
# - integer fields: a JSON number without a fraction (4096; 4096.0 is accepted as 4096, since JSON
#   has one number type) inside the range of the ModelSpec field it feeds. Text ("4096"), booleans,
#   NaN/Infinity, fractions, lists and objects are errors.
# - boolean fields: a JSON boolean only (true/false). The strings "true"/"false" and 0/1 are errors:
#   Hugging Face itself would treat the string "false" as true, so such a file is ambiguous.
# - text fields (hidden_act, position_embedding_type, topk_method): a JSON string from a fixed list.
# - null is accepted only where Hugging Face documents None as "use the default": head_dim,
#   num_key_value_heads (= num_attention_heads), n_inner (= 4 * n_embd), q_lora_rank (full-rank
#   query), n_shared_experts (none) and _name_or_path (the model_type is the name).
# - num_key_value_heads: absent or null means num_attention_heads (multi-head attention); otherwise
#   it must be >= 1 and divide num_attention_heads (0 or a negative number is an error).
#
# Errors are ``ModelSpecError`` naming the config.json field, the value and what is allowed.

_MISSING: Any = object()


class HFConfig:
    """Typed reads of one parsed config.json; remembers which config field fed which ModelSpec field."""

    def __init__(self, data: Mapping[str, Any], where: str = "config", model_type: str = "") -> None:
        self.data = data
        self.where = where
        self.model_type = model_type or str(data.get("model_type", ""))
        self.origin: dict[str, list[str]] = {}

    def _fail(self, key: str, value: Any, wanted: str) -> NoReturn:
        got = (f"the {_type_word(value)} {_show(value)}"
               if isinstance(value, (str, bool, list, tuple, dict)) or value is None
               else _show(value))  # numbers as they are: 0, -3, 2.5, inf
        raise ModelSpecError(f"{self.where}: config.json field {key!r} must be {wanted}, got {got}")

    def _raw(self, key: str, default: Any) -> tuple[bool, Any]:
        """(present, value); a missing field without a default is an error naming it."""
        if key in self.data:
            return True, self.data[key]
        if default is _MISSING:
            raise ModelSpecError(
                f"{self.where}: model_type {self.model_type!r} needs the field {key!r}, which is missing"
            )
        return False, default

    def integer(self, key: str, target: str | None = None, *, default: Any = _MISSING,
                nullable: bool = False, lo: int | None = None, hi: int | None = None) -> Any:
        """An integer field. The range is that of the ModelSpec field ``target`` unless ``lo``/``hi``
        narrow it; ``default`` is returned when the field is absent (or null, when ``nullable``)."""
        if target is not None:
            self.origin.setdefault(target, []).append(key)
            t_lo, t_hi = count_bounds(target)
            lo = t_lo if lo is None else max(lo, t_lo)
            hi = t_hi if hi is None else min(hi, t_hi)
        assert lo is not None and hi is not None
        present, value = self._raw(key, default)
        if not present or (nullable and value is None):
            return default
        wanted = f"an integer from {lo:,} to {hi:,}" + (" or null" if nullable else "")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            self._fail(key, value, wanted)
        if not isinstance(value, numbers.Integral):
            number = float(value)
            if not math.isfinite(number) or not number.is_integer():
                self._fail(key, value, wanted)
            value = int(number)
        value = int(value)
        if not lo <= value <= hi:
            self._fail(key, value, wanted)
        return value

    def flag(self, key: str, target: str | None = None, *, default: bool) -> bool:
        """A boolean field: JSON true/false only (absent: ``default``)."""
        if target is not None:
            self.origin.setdefault(target, []).append(key)
        _, value = self._raw(key, default)
        if not isinstance(value, bool):
            self._fail(key, value, "a JSON boolean (true or false, without quotes)")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], *, default: Any = _MISSING,
               note: str = "") -> str:
        """A text field whose value must be one of ``allowed`` (absent: ``default``)."""
        _, value = self._raw(key, default)
        if not isinstance(value, str) or value not in allowed:
            self._fail(key, value, "one of " + ", ".join(repr(a) for a in allowed) + note)
        return value

    def text(self, key: str) -> str | None:
        """An optional text field (absent or null: None)."""
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            self._fail(key, value, "a string or null")
        return value


def _reader(cfg: HFConfig | Mapping[str, Any]) -> HFConfig:
    return cfg if isinstance(cfg, HFConfig) else HFConfig(cfg)


def _hf_attention_heads(cfg: HFConfig) -> tuple[int, int]:
    """(num_attention_heads, key/value heads). num_key_value_heads absent or null means
    num_attention_heads; otherwise it must be >= 1 and divide num_attention_heads."""
    n_heads = cfg.integer("num_attention_heads", "n_heads")
    kv = cfg.integer("num_key_value_heads", "n_kv_heads", default=None, nullable=True)
    if kv is None:
        return n_heads, n_heads
    if n_heads % kv:
        cfg._fail("num_key_value_heads", kv,
                  f"an integer >= 1 that divides num_attention_heads ({n_heads})")
    return n_heads, kv


def _hf_llama_like(cfg: HFConfig | Mapping[str, Any], name: str) -> dict[str, Any]:
    cfg = _reader(cfg)
    cfg.choice("hidden_act", ("silu", "swish"), default="silu",
               note=" (a Llama-style model has a SwiGLU MLP)")
    n_layers = cfg.integer("num_hidden_layers", "n_layers")
    d_model = cfg.integer("hidden_size", "d_model")
    n_heads, kv = _hf_attention_heads(cfg)
    attention_bias = cfg.flag("attention_bias", "qkv_bias", default=False)
    cfg.origin.setdefault("attn_out_bias", []).append("attention_bias")
    out: dict[str, Any] = {
        "name": name,
        "n_layers": n_layers,
        "d_model": d_model,
        "n_heads": n_heads,
        "n_kv_heads": kv,
        "d_ff": cfg.integer("intermediate_size", "d_ff"),
        "vocab_size": cfg.integer("vocab_size", "vocab_size"),
        "position_embedding": "rotary",
        "tied_embeddings": cfg.flag("tie_word_embeddings", "tied_embeddings", default=False),
        "mlp_activation": "swiglu",
        "norm": "rmsnorm",
        "qkv_bias": attention_bias,
        "attn_out_bias": attention_bias,
        "mlp_bias": cfg.flag("mlp_bias", "mlp_bias", default=False),
    }
    head_dim = cfg.integer("head_dim", "head_dim", default=None, nullable=True)
    if head_dim is not None and head_dim * n_heads != d_model:
        out["head_dim"] = head_dim
    return out


def _hf_llama(cfg: HFConfig | Mapping[str, Any], name: str) -> dict[str, Any]:
    return _hf_llama_like(cfg, name)


def _hf_mistral(cfg: HFConfig | Mapping[str, Any], name: str) -> dict[str, Any]:
    return _hf_llama_like(cfg, name)


def _hf_qwen2(cfg: HFConfig | Mapping[str, Any], name: str) -> dict[str, Any]:
    out = _hf_llama_like(cfg, name)
    # Qwen2 puts a bias on q/k/v only (modeling_qwen2.Qwen2Attention).
    out.update(qkv_bias=True, attn_out_bias=False)
    return out


def _hf_mixtral(cfg: HFConfig | Mapping[str, Any], name: str) -> dict[str, Any]:
    cfg = _reader(cfg)
    out = _hf_llama_like(cfg, name)
    cfg.origin.setdefault("d_ff_expert", []).append("intermediate_size")
    out.update(
        n_experts=cfg.integer("num_local_experts", "n_experts", lo=1),
        experts_per_token=cfg.integer("num_experts_per_tok", "experts_per_token", lo=1),
        d_ff_expert=out["d_ff"],
    )
    return out


def _hf_gpt2(cfg: HFConfig | Mapping[str, Any], name: str) -> dict[str, Any]:
    cfg = _reader(cfg)
    n_embd = cfg.integer("n_embd", "d_model")
    d_ff = cfg.integer("n_inner", "d_ff", default=None, nullable=True)
    return {
        "name": name,
        "n_layers": cfg.integer("n_layer", "n_layers"),
        "d_model": n_embd,
        "n_heads": cfg.integer("n_head", "n_heads"),
        "d_ff": 4 * n_embd if d_ff is None else d_ff,  # n_inner absent or null: 4 * n_embd
        "vocab_size": cfg.integer("vocab_size", "vocab_size"),
        "max_position_embeddings": cfg.integer("n_positions", "max_position_embeddings"),
        "position_embedding": "learned",
        "tied_embeddings": cfg.flag("tie_word_embeddings", "tied_embeddings", default=True),
        "mlp_activation": "gelu",
        "norm": "layernorm",
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
    }


def _hf_bert(cfg: HFConfig | Mapping[str, Any], name: str) -> dict[str, Any]:
    cfg = _reader(cfg)
    act = cfg.choice("hidden_act", ("gelu", "gelu_new", "relu"), default="gelu",
                     note=" (other BERT activations are not supported)")
    cfg.choice("position_embedding_type", ("absolute",), default="absolute",
               note=" (only absolute BERT position embeddings are supported)")
    return {
        "name": name,
        "architecture": "encoder",
        "n_layers": cfg.integer("num_hidden_layers", "n_layers"),
        "d_model": cfg.integer("hidden_size", "d_model"),
        "n_heads": cfg.integer("num_attention_heads", "n_heads"),
        "d_ff": cfg.integer("intermediate_size", "d_ff"),
        "vocab_size": cfg.integer("vocab_size", "vocab_size"),
        "max_position_embeddings": cfg.integer("max_position_embeddings", "max_position_embeddings"),
        "position_embedding": "learned",
        "tied_embeddings": True,
        "mlp_activation": "relu" if act == "relu" else "gelu",
        "norm": "layernorm",
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
        "final_norm": False,  # post-LN: each block ends with its own LayerNorm
        "type_vocab_size": cfg.integer("type_vocab_size", "type_vocab_size", default=2),
        "embedding_norm": True,
        "pooler": True,
    }


def _hf_deepseek_v3(cfg: HFConfig | Mapping[str, Any], name: str) -> dict[str, Any]:
    cfg = _reader(cfg)
    freq = cfg.integer("moe_layer_freq", default=1, lo=1, hi=MAX_LAYERS)
    if freq != 1:
        cfg._fail("moe_layer_freq", freq, "1 (every layer after first_k_dense_replace is MoE; "
                                          "other values are not supported)")
    return {
        "name": name,
        "n_layers": cfg.integer("num_hidden_layers", "n_layers"),
        "d_model": cfg.integer("hidden_size", "d_model"),
        "n_heads": cfg.integer("num_attention_heads", "n_heads"),
        "d_ff": cfg.integer("intermediate_size", "d_ff"),
        "vocab_size": cfg.integer("vocab_size", "vocab_size"),
        "position_embedding": "rotary",
        "tied_embeddings": cfg.flag("tie_word_embeddings", "tied_embeddings", default=False),
        "mlp_activation": "swiglu",
        "norm": "rmsnorm",
        "attention": "mla",
        "q_lora_rank": cfg.integer("q_lora_rank", "q_lora_rank", default=None, nullable=True),
        "kv_lora_rank": cfg.integer("kv_lora_rank", "kv_lora_rank"),
        "qk_rope_head_dim": cfg.integer("qk_rope_head_dim", "qk_rope_head_dim"),
        "qk_nope_head_dim": cfg.integer("qk_nope_head_dim", "qk_nope_head_dim"),
        "v_head_dim": cfg.integer("v_head_dim", "v_head_dim"),
        "qkv_bias": cfg.flag("attention_bias", "qkv_bias", default=False),
        "n_experts": cfg.integer("n_routed_experts", "n_experts", lo=1),
        "experts_per_token": cfg.integer("num_experts_per_tok", "experts_per_token", lo=1),
        "n_shared_experts": cfg.integer("n_shared_experts", "n_shared_experts", default=0,
                                        nullable=True),
        "d_ff_expert": cfg.integer("moe_intermediate_size", "d_ff_expert"),
        "n_dense_layers": cfg.integer("first_k_dense_replace", "n_dense_layers", default=0),
        # noaux_tc routing keeps a learned per-expert bias (modeling_deepseek.MoEGate).
        "router_bias": cfg.choice("topk_method", ("noaux_tc", "greedy", "group_limited_greedy"),
                                  default="noaux_tc") == "noaux_tc",
    }


#: model_type in a Hugging Face config.json -> converter.
HF_MODEL_TYPES = {
    "llama": _hf_llama,
    "mistral": _hf_mistral,
    "mixtral": _hf_mixtral,
    "qwen2": _hf_qwen2,
    "gpt2": _hf_gpt2,
    "bert": _hf_bert,
    "deepseek_v3": _hf_deepseek_v3,
}


def _decode_utf8(raw: bytes, what: str) -> str:
    """UTF-8 text of a file (a leading byte-order mark is allowed and dropped)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ModelSpecError(
            f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelSpecError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ModelSpecError(f"{what} is not valid JSON: it is nested too deeply") from None
    except ValueError:  # e.g. an integer literal longer than Python's int/str conversion limit
        raise ModelSpecError(f"{what} is not valid JSON: a number in it has too many digits") from None


def _name_the_config_fields(message: str, origin: dict[str, list[str]]) -> str:
    """Append, for each ModelSpec field a message mentions, the config.json field(s) it came from."""
    used = [f"{field} <- {' / '.join(dict.fromkeys(keys))}" for field, keys in origin.items()
            if re.search(rf"\b{re.escape(field)}\b", message)]
    return f"{message} [config.json fields: {', '.join(used)}]" if used else message


def spec_from_hf_config(config: Mapping[str, Any] | str | bytes | Path,
                        name: str | None = None) -> ModelSpec:
    """Build a ``ModelSpec`` from a Hugging Face ``config.json``: a path, the file's text or bytes
    (e.g. an upload), or the parsed mapping.

    Supported ``model_type`` values are the keys of ``HF_MODEL_TYPES``; anything else is an error
    that lists them. Only local files are read; nothing is downloaded. Files and bytes must be UTF-8
    (a leading byte-order mark is accepted). Field values are read strictly by type (see the notes
    above ``HFConfig``): integers as JSON numbers without a fraction, booleans as JSON true/false
    only, and ``num_key_value_heads`` absent or null means ``num_attention_heads``. Every problem is
    a ``ModelSpecError`` naming the config.json field.
    """
    where = "config"
    if isinstance(config, (bytes, bytearray)):
        config = _decode_utf8(bytes(config), "config.json")
    if isinstance(config, str):
        config = config.removeprefix("\ufeff")
    if isinstance(config, str) and config.lstrip().startswith(("{", "[")):
        config = _parse_json(config, "config.json")
    if isinstance(config, (str, Path)):
        path = Path(config)
        where = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ModelSpecError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:  # e.g. a NUL character in the path
            raise ModelSpecError(f"cannot read {_show(str(config))}: {exc}") from None
        config = _parse_json(_decode_utf8(raw, str(path)), str(path))
        if name is None:
            name = path.parent.name if path.name == "config.json" else path.stem
    if not isinstance(config, Mapping):
        raise ModelSpecError(
            f"{where}: a config.json must hold a JSON object, got the {_type_word(config)}"
        )
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in HF_MODEL_TYPES:
        raise ModelSpecError(
            f"{where}: unsupported model_type {_show(model_type)}; supported: "
            f"{', '.join(sorted(HF_MODEL_TYPES))}"
        )
    cfg = HFConfig(config, where, model_type)
    name = name or cfg.text("_name_or_path") or model_type
    fields = HF_MODEL_TYPES[model_type](cfg, name)
    fields["source"] = f"Hugging Face config.json ({where})"
    try:
        return make_spec(fields, where=where)
    except ModelSpecError as exc:
        raise ModelSpecError(_name_the_config_fields(str(exc), cfg.origin)) from None


def resolve_model(model: ModelSpec | str | Path) -> ModelSpec:
    """A spec as given, a preset name, or a path to a config.json / model YAML."""
    if isinstance(model, ModelSpec):
        return model
    text = str(model)
    if text in _preset_table():
        return _preset_table()[text]
    path = Path(text)
    if path.suffix in (".json",) and path.exists():
        return spec_from_hf_config(path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return make_spec(_load_yaml_mapping(path), where=str(path))
    if path.suffix in (".json", ".yaml", ".yml"):
        raise ModelSpecError(f"model file {text!r} does not exist")
    return preset(text)
