"""Transformer architecture specifications (``ModelSpec``), shipped presets and Hugging Face import.

A ``ModelSpec`` describes the *architecture* only: sizes, attention and MLP flavour, mixture of
experts. What is done with it (training, serving, the parallel layout) lives elsewhere. Every size is
a count of elements (not bytes); memory and FLOPs are derived by the formula modules.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    n_layers: int = Field(gt=0, description="Transformer blocks.")
    d_model: int = Field(gt=0, description="Hidden size h (elements).")
    n_heads: int = Field(gt=0, description="Attention (query) heads a.")
    n_kv_heads: int | None = Field(
        None, gt=0, description="Key/value heads (= n_heads for MHA, 1 for MQA); default n_heads."
    )
    head_dim: int | None = Field(
        None, gt=0, description="Per-head dimension; default d_model / n_heads."
    )
    d_ff: int = Field(gt=0, description="Hidden size of the dense MLP (elements).")
    vocab_size: int = Field(gt=0, description="Vocabulary rows of the embedding (as trained).")
    max_position_embeddings: int | None = Field(
        None, gt=0, description="Rows of the learned position table (required for learned positions)."
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
    type_vocab_size: int = Field(0, ge=0, description="Token-type (segment) embedding rows (BERT: 2).")
    embedding_norm: bool = Field(False, description="A norm right after the embeddings (BERT).")
    pooler: bool = Field(False, description="BERT pooler: one d_model x d_model dense layer with bias.")
    # Multi-head latent attention (DeepSeek-V2/V3).
    attention: AttentionKind = Field("standard", description="'standard' (MHA/GQA/MQA) or 'mla'.")
    q_lora_rank: int | None = Field(
        None, gt=0, description="MLA: rank of the query down-projection (None = full-rank query)."
    )
    kv_lora_rank: int | None = Field(None, gt=0, description="MLA: rank of the compressed KV latent.")
    qk_rope_head_dim: int | None = Field(None, gt=0, description="MLA: rotary part of q/k per head.")
    qk_nope_head_dim: int | None = Field(None, gt=0, description="MLA: non-rotary part of q/k per head.")
    v_head_dim: int | None = Field(None, gt=0, description="MLA: value dimension per head.")
    # Mixture of experts.
    n_experts: int = Field(0, ge=0, description="Routed experts per MoE layer (0 = dense model).")
    experts_per_token: int = Field(0, ge=0, description="Routed experts each token uses (top-k).")
    n_shared_experts: int = Field(0, ge=0, description="Always-active shared experts per MoE layer.")
    d_ff_expert: int | None = Field(None, gt=0, description="Hidden size of one expert's MLP.")
    n_dense_layers: int = Field(
        0, ge=0, description="Leading blocks with a dense MLP in an MoE model (DeepSeek: 3)."
    )
    router_bias: bool = Field(
        False, description="Router carries a per-expert bias (DeepSeek-V3 e_score_correction_bias)."
    )
    source: str = Field("", description="Where the architecture figures come from.")

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


def format_validation_error(exc: ValidationError, where: str | None = None) -> str:
    """One readable line from a pydantic error: 'where: field.path: message; ...'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(input)"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    text = "; ".join(parts)
    return f"{where}: {text}" if where else text


def make_spec(data: dict[str, Any], where: str = "model spec") -> ModelSpec:
    """Build a ``ModelSpec`` from a mapping, turning pydantic errors into one readable message."""
    try:
        return ModelSpec(**data)
    except ValidationError as exc:
        raise ModelSpecError(format_validation_error(exc, where)) from None


# Presets ------------------------------------------------------------------------------------

def _models_dir() -> Path:
    return data_dir() / "models"


@lru_cache(maxsize=1)
def _preset_table() -> dict[str, ModelSpec]:
    table: dict[str, ModelSpec] = {}
    for path in sorted(_models_dir().glob("*.yaml")):
        with path.open() as fh:
            data = yaml.safe_load(fh)
        if not isinstance(data, dict):
            raise ModelSpecError(f"{path}: expected a mapping of model fields")
        spec = make_spec(data, where=str(path))
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
    try:
        return table[name]
    except KeyError:
        close = difflib.get_close_matches(name, table, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelSpecError(
            f"unknown model preset {name!r}.{hint} Available: {', '.join(sorted(table))}"
        ) from None


# Hugging Face config.json import --------------------------------------------------------------

def _hf_llama_like(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    act = cfg.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise ModelSpecError(f"{name}: hidden_act {act!r} is not supported for a Llama-style model")
    out: dict[str, Any] = {
        "name": name,
        "n_layers": cfg["num_hidden_layers"],
        "d_model": cfg["hidden_size"],
        "n_heads": cfg["num_attention_heads"],
        "n_kv_heads": cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
        "d_ff": cfg["intermediate_size"],
        "vocab_size": cfg["vocab_size"],
        "position_embedding": "rotary",
        "tied_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "mlp_activation": "swiglu",
        "norm": "rmsnorm",
        "qkv_bias": bool(cfg.get("attention_bias", False)),
        "attn_out_bias": bool(cfg.get("attention_bias", False)),
        "mlp_bias": bool(cfg.get("mlp_bias", False)),
    }
    head_dim = cfg.get("head_dim")
    if head_dim and head_dim * cfg["num_attention_heads"] != cfg["hidden_size"]:
        out["head_dim"] = head_dim
    return out


def _hf_llama(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    return _hf_llama_like(cfg, name)


def _hf_mistral(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    return _hf_llama_like(cfg, name)


def _hf_qwen2(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    out = _hf_llama_like(cfg, name)
    # Qwen2 puts a bias on q/k/v only (modeling_qwen2.Qwen2Attention).
    out.update(qkv_bias=True, attn_out_bias=False)
    return out


def _hf_mixtral(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    out = _hf_llama_like(cfg, name)
    out.update(
        n_experts=cfg["num_local_experts"],
        experts_per_token=cfg["num_experts_per_tok"],
        d_ff_expert=cfg["intermediate_size"],
    )
    return out


def _hf_gpt2(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    n_embd = cfg["n_embd"]
    return {
        "name": name,
        "n_layers": cfg["n_layer"],
        "d_model": n_embd,
        "n_heads": cfg["n_head"],
        "d_ff": cfg.get("n_inner") or 4 * n_embd,
        "vocab_size": cfg["vocab_size"],
        "max_position_embeddings": cfg["n_positions"],
        "position_embedding": "learned",
        "tied_embeddings": bool(cfg.get("tie_word_embeddings", True)),
        "mlp_activation": "gelu",
        "norm": "layernorm",
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
    }


def _hf_bert(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    act = cfg.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_new", "relu"):
        raise ModelSpecError(f"{name}: hidden_act {act!r} is not supported for BERT")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ModelSpecError(f"{name}: only absolute BERT position embeddings are supported")
    return {
        "name": name,
        "architecture": "encoder",
        "n_layers": cfg["num_hidden_layers"],
        "d_model": cfg["hidden_size"],
        "n_heads": cfg["num_attention_heads"],
        "d_ff": cfg["intermediate_size"],
        "vocab_size": cfg["vocab_size"],
        "max_position_embeddings": cfg["max_position_embeddings"],
        "position_embedding": "learned",
        "tied_embeddings": True,
        "mlp_activation": "relu" if act == "relu" else "gelu",
        "norm": "layernorm",
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
        "final_norm": False,  # post-LN: each block ends with its own LayerNorm
        "type_vocab_size": cfg.get("type_vocab_size", 2),
        "embedding_norm": True,
        "pooler": True,
    }


def _hf_deepseek_v3(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    if cfg.get("moe_layer_freq", 1) != 1:
        raise ModelSpecError(f"{name}: moe_layer_freq != 1 is not supported")
    return {
        "name": name,
        "n_layers": cfg["num_hidden_layers"],
        "d_model": cfg["hidden_size"],
        "n_heads": cfg["num_attention_heads"],
        "d_ff": cfg["intermediate_size"],
        "vocab_size": cfg["vocab_size"],
        "position_embedding": "rotary",
        "tied_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "mlp_activation": "swiglu",
        "norm": "rmsnorm",
        "attention": "mla",
        "q_lora_rank": cfg.get("q_lora_rank"),
        "kv_lora_rank": cfg["kv_lora_rank"],
        "qk_rope_head_dim": cfg["qk_rope_head_dim"],
        "qk_nope_head_dim": cfg["qk_nope_head_dim"],
        "v_head_dim": cfg["v_head_dim"],
        "qkv_bias": bool(cfg.get("attention_bias", False)),
        "n_experts": cfg["n_routed_experts"],
        "experts_per_token": cfg["num_experts_per_tok"],
        "n_shared_experts": cfg.get("n_shared_experts") or 0,
        "d_ff_expert": cfg["moe_intermediate_size"],
        "n_dense_layers": cfg.get("first_k_dense_replace", 0),
        # noaux_tc routing keeps a learned per-expert bias (modeling_deepseek.MoEGate).
        "router_bias": cfg.get("topk_method", "noaux_tc") == "noaux_tc",
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


def spec_from_hf_config(config: dict[str, Any] | str | bytes | Path, name: str | None = None) -> ModelSpec:
    """Build a ``ModelSpec`` from a Hugging Face ``config.json``: a path, the file's text or bytes
    (e.g. an upload), or the parsed mapping.

    Supported ``model_type`` values are the keys of ``HF_MODEL_TYPES``; anything else is an error
    that lists them. Only local files are read; nothing is downloaded.
    """
    where = "config"
    if isinstance(config, bytes):
        try:
            config = config.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelSpecError("config.json is not UTF-8 text") from None
    if isinstance(config, str) and config.lstrip().startswith(("{", "[")):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as exc:
            raise ModelSpecError(
                f"config.json is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
    if isinstance(config, (str, Path)):
        path = Path(config)
        where = str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ModelSpecError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelSpecError(
                f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        if name is None:
            name = path.parent.name if path.name == "config.json" else path.stem
    if not isinstance(config, dict):
        raise ModelSpecError(f"{where}: a config.json must hold a JSON object")
    model_type = config.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise ModelSpecError(
            f"{where}: unsupported model_type {model_type!r}; supported: "
            f"{', '.join(sorted(HF_MODEL_TYPES))}"
        )
    name = name or config.get("_name_or_path") or str(model_type)
    try:
        fields = HF_MODEL_TYPES[model_type](config, name)
    except KeyError as exc:
        raise ModelSpecError(
            f"{where}: model_type {model_type!r} needs the field {exc.args[0]!r}, which is missing"
        ) from None
    fields["source"] = f"Hugging Face config.json ({where})"
    return make_spec(fields, where=where)


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
        with path.open() as fh:
            return make_spec(yaml.safe_load(fh) or {}, where=str(path))
    if path.suffix in (".json", ".yaml", ".yml"):
        raise ModelSpecError(f"model file {text!r} does not exist")
    return preset(text)

