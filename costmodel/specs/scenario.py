"""A planning scenario: the model, the job, the constraints and the search space.

A model and a token count alone give a useful answer; everything else has a default. Scenarios
save to and load from YAML or JSON so a plan can be shared and re-run. The job carries a ``kind``
('pretrain', 'finetune'; serving will add 'serve') so that later job kinds extend the same grid and
planner instead of adding a second one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hardware_catalog import KINDS, PRICING_MODELS

from costmodel.specs.layout import DEFAULT_RANK_ORDER, rank_strides
from costmodel.specs.spec import ModelSpec, ModelSpecError, format_validation_error, resolve_model
from costmodel.specs.codes import FORMATS
from costmodel.specs.serving import Quantization, ServingLoad, Sparsity
from costmodel.specs.setup import (
    BaseWeightBits, DEFAULT_SEQ_LEN, GradientPrecision, LoraTargets, Optimizer, Peft, Recompute, TrainingPrecision, default_global_batch,
)

Objective = Literal["cost", "time", "cost-per-token", "energy"]
OBJECTIVES: tuple[str, ...] = ("cost", "time", "cost-per-token", "energy")



class ScenarioError(ValueError):
    """A scenario that cannot be loaded or planned; the message names the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Job(_Frozen):
    """What to run: pre-training or full fine-tuning on ``train_tokens`` tokens, or serving a
    ``load`` (kind 'serve')."""

    kind: Literal["pretrain", "finetune", "serve"] = Field(
        "pretrain", description="Job kind: pretrain, finetune or serve.")
    train_tokens: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="Tokens processed over the whole run (training kinds).")
    load: ServingLoad | None = Field(None, description="Requests, lengths and SLOs (kind 'serve').")
    seq_len: int = Field(DEFAULT_SEQ_LEN, ge=1, le=10_000_000, description="Tokens per training sequence.")
    global_batch: int | None = Field(
        None, ge=1, description="Sequences per optimizer step; default: about 4M tokens "
        "(rounded to a power of two) for pre-training, 128 sequences for fine-tuning.")
    optimizer: Optimizer = Field("adamw", description="Optimizer (its state is per parameter).")
    optimizer_state_bits: Literal[8, 16, 32] = Field(
        32, description="Bits per optimizer-state element (8 for 8-bit Adam, Dettmers et al. 2022).")
    master_weights: bool | None = Field(
        None, description="Keep an fp32 master copy of the weights; default: yes below 32-bit.")
    gradient_precision: GradientPrecision = Field(
        "param", description="Gradients in the parameter format or in fp32 (Megatron main_grad).")
    flash_attention: bool = Field(True, description="Fused attention (no s x s score matrix).")
    dropout: bool = Field(False, description="Dropout layers active (their masks are stored).")
    vocab_head: bool = Field(True, description="Loss over the vocabulary (LM objective).")
    causal_discount: bool = Field(
        True, description="Count causal attention at half the s x s cost (see formulas.flops).")
    framework: str = Field("nemo", description="Framework profile of data/frameworks.yaml.")
    peft: Peft = Field(
        "none", description="Parameter-efficient fine-tuning: none, lora (frozen base + low-rank "
        "adapters) or qlora (frozen 4-bit NF4 base + adapters); see TrainingSetup.")
    lora_rank: int = Field(16, ge=1, le=4096, description="Rank r of each LoRA adapter.")
    lora_targets: LoraTargets = Field(
        "all", description="Adapted linear layers: attention (q, k, v, o), all (MLP and experts too) "
        "or qv (q and v only).")
    base_weight_bits: BaseWeightBits | None = Field(
        None, description="Bits of the frozen base weights: 16, 8 or 4; default 16 for lora, 4 for qlora.")

    @model_validator(mode="after")
    def _kind_fields(self) -> Job:
        if self.kind == "serve" and self.load is None:
            raise ValueError("load is required for kind 'serve' (requests_per_s, input_len, output_len)")
        if self.kind != "serve" and self.train_tokens is None:
            raise ValueError(f"train_tokens is required for kind {self.kind!r}")
        if self.kind != "serve" and self.load is not None:
            raise ValueError(f"load belongs to kind 'serve', not {self.kind!r}")
        return self

    def batch_sequences(self, n_params: float | None = None) -> int:
        """The global batch in sequences: ``global_batch``, else the default for a model of
        ``n_params`` parameters (``jobs.train.batch_sequences`` passes the model's; the same rule as
        ``costmodel train`` and the validation rows)."""
        if self.global_batch is not None:
            return self.global_batch
        return default_global_batch(self.seq_len, self.kind, n_params=n_params)


#: The deadline a training plan is ranked under when none is given ("auto"): a practitioner plans
#: pre-training in weeks to a few months (Llama 3 405B's pre-training took 54 days of the 16k-GPU
#: cluster, Llama Team 2024, Sec. 3.3.4) and fine-tuning in days. Shown in every face; change it, or
#: set deadline_days to null (CLI: --deadline-days none) for no deadline.
DEFAULT_DEADLINE_DAYS = {"pretrain": 90.0, "finetune": 14.0}
#: Memory kept free on every device by default: a planning margin for allocator spikes and buffers
#: the model does not itemise (a plan at 190.7 of 192 GiB is not one a practitioner would run).
DEFAULT_MEMORY_HEADROOM = 0.1


class Constraints(_Frozen):
    """Limits a plan must respect; an empty list means 'any'."""

    deadline_days: float | Literal["auto"] | None = Field(
        "auto", description="Wall-clock limit of a training run (days); 'auto' = "
        + ", ".join(f"{v:g} days for {k}" for k, v in DEFAULT_DEADLINE_DAYS.items()) + "; null = none.")
    budget_usd: float | None = Field(None, gt=0, description="Total cost limit (USD).")
    max_devices: int | None = Field(None, ge=1, description="Largest device count considered.")
    max_instances_per_offer: int | None = Field(
        None, ge=1, description="Your quota: most instances you can get from any one offer (offers may "
        "carry their own limit, max_instances in the catalog).")
    providers: list[str] = Field(default_factory=list, description="Allowed providers (catalog names).")
    regions: list[str] = Field(default_factory=list, description="Allowed regions.")
    pricing_models: list[str] = Field(
        default_factory=lambda: ["on-demand"],
        description="Allowed pricing models: " + ", ".join(PRICING_MODELS) + ".")
    kinds: list[str] = Field(default_factory=lambda: list(KINDS),
                             description="Accelerator kinds: " + ", ".join(KINDS) + ".")
    price_qualities: list[Literal["first-party", "third-party", "user"]] = Field(
        default_factory=lambda: ["first-party", "third-party", "user"],
        description="Where the prices may come from: the provider's own page (first-party), a "
        "transcription or aggregator (third-party), or your own file/override (user).")
    max_quality_loss: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="Serving: exclude compression whose published degradation (relative perplexity "
        "increase or accuracy drop, summed over its techniques) exceeds this fraction, or is unknown.")
    min_memory_headroom: float = Field(
        DEFAULT_MEMORY_HEADROOM, ge=0, lt=1, allow_inf_nan=False,
        description="Fraction of device memory that must stay free (default 0.1).")

    @field_validator("deadline_days")
    @classmethod
    def _deadline(cls, v: float | str | None) -> float | str | None:
        if isinstance(v, (int, float)) and not (math.isfinite(v) and v > 0):
            raise ValueError(f"deadline_days must be a finite number > 0, 'auto' or null (got {v!r})")
        return v

    def deadline_for(self, kind: str) -> float | None:
        """The deadline in days a job of ``kind`` is planned under (None: no deadline)."""
        if self.deadline_days == "auto":
            return DEFAULT_DEADLINE_DAYS.get(kind)
        return self.deadline_days

    @field_validator("pricing_models")
    @classmethod
    def _pricing(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if p not in PRICING_MODELS]
        if bad:
            raise ValueError(f"unknown pricing model(s) {bad}; allowed: {', '.join(PRICING_MODELS)}")
        return v

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in KINDS]
        if bad:
            raise ValueError(f"unknown accelerator kind(s) {bad}; allowed: {', '.join(KINDS)}")
        if not v:
            raise ValueError("at least one accelerator kind is needed")
        return v


def _powers_of_two(limit: int) -> list[int]:
    out, n = [], 1
    while n <= limit:
        out.append(n)
        n *= 2
    return out


class SearchSpace(_Frozen):
    """The values each dimension of the grid may take. Every valid combination is evaluated."""

    accelerators: list[str] = Field(default_factory=list,
                                    description="Accelerator ids; empty = every one in the catalog.")
    device_counts: list[int] = Field(
        default_factory=lambda: _powers_of_two(32768),
        description="Device counts (default powers of two up to 32,768: frontier runs use 16k-32k).")
    tp: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    pp: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16])
    vpp: list[int] = Field(default_factory=lambda: [1, 2])
    cp: list[int] = Field(default_factory=lambda: [1, 2])
    ep: list[int] = Field(default_factory=lambda: [1, 2, 4, 8],
                          description="Expert-parallel degrees (used for MoE models only).")
    zero_stage: list[int] = Field(default_factory=lambda: [1, 3])
    recompute: list[Recompute] = Field(default_factory=lambda: ["none", "selective", "full"])
    micro_batch: list[int] = Field(default_factory=lambda: [1, 2, 4])
    precision: list[TrainingPrecision] = Field(default_factory=lambda: ["bf16", "fp8"])
    sequence_parallel: bool = Field(True, description="Use Megatron SP whenever tp > 1.")
    batch: list[int] = Field(default_factory=lambda: _powers_of_two(512),
                             description="Serving: most sequences per replica (continuous batching).")
    kv_bits: list[Literal[16, 8, 4]] = Field(default_factory=lambda: [16, 8, 4],
                                             description="Serving: KV-cache bits per element.")
    quantization: list[Quantization] = Field(
        default_factory=lambda: ["bf16", "fp8", "int8", "w8a16", "w4a16", "nvfp4", "mxfp4"],
        description="Serving: quantization schemes searched (see costmodel.specs.serving.QUANT_SCHEMES).")
    sparsity: list[Sparsity] = Field(
        default_factory=lambda: ["none"],
        description="Serving: weight sparsity searched: none, 2:4, unstructured-50.")
    weight_group_size: list[int] = Field(
        default_factory=lambda: [128], description="Serving: weights per scale group of grouped schemes.")
    disaggregated: list[bool] = Field(
        default_factory=lambda: [False, True],
        description="Serving: co-located (False) and/or separate prefill and decode pools (True).")
    rank_order: str = Field(DEFAULT_RANK_ORDER, description="Rank placement, innermost first.")

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        for name in ("device_counts", "tp", "pp", "vpp", "cp", "ep", "micro_batch", "batch",
                     "weight_group_size"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} is empty: the search space would be empty")
            if any(v < 1 for v in values):
                raise ValueError(f"{name} values must be >= 1 (got {values})")
        if not self.zero_stage or any(z not in (0, 1, 2, 3) for z in self.zero_stage):
            raise ValueError(f"zero_stage values must be among 0, 1, 2, 3 (got {self.zero_stage})")
        for name in ("recompute", "precision", "kv_bits", "quantization", "sparsity"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty: the search space would be empty")
        rank_strides(self.rank_order, 1, 1, 1)
        return self


class PriceOverride(_Frozen):
    """A negotiated or hypothetical price for one catalog offer."""

    provider: str
    offer: str
    region: str
    pricing_model: str
    usd_per_device_hour: float = Field(gt=0, description="USD per device-hour.")


#: Efficiency quantities the engine reads; matmul and attention are per number format.
ENGINE_EFFICIENCY_QUANTITIES = ("matmul", "attention", "memory_bandwidth", "scaleup_allreduce",
                                "scaleup_alltoall", "scaleout_allreduce", "scaleout_alltoall")
FORMAT_QUANTITIES = ("matmul", "attention")


class EfficiencyOverride(_Frozen):
    """An achieved-efficiency value to use instead of the catalog's (fraction of peak, 0..1]."""

    accelerator: str
    quantity: str = Field(description="One of " + ", ".join(ENGINE_EFFICIENCY_QUANTITIES) + ".")
    precision: str = Field("", description="Number format for matmul/attention; '' otherwise.")
    value: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> EfficiencyOverride:
        if self.quantity not in ENGINE_EFFICIENCY_QUANTITIES:
            raise ValueError(f"quantity {self.quantity!r} is not used by the engine; use one of "
                             f"{', '.join(ENGINE_EFFICIENCY_QUANTITIES)}")
        formats = list(FORMATS)
        if self.quantity in FORMAT_QUANTITIES and self.precision not in formats:
            raise ValueError(f"precision is required for {self.quantity}: one of {', '.join(formats)}")
        if self.quantity not in FORMAT_QUANTITIES and self.precision:
            raise ValueError(f"{self.quantity} has no precision; leave it empty")
        return self


class Scenario(_Frozen):
    """Everything a plan needs. ``model`` is a preset name, a path to a config.json, or a spec."""

    model: str | ModelSpec = Field(description="Preset name, path to a config.json, or a ModelSpec.")
    job: Job
    constraints: Constraints = Field(default_factory=Constraints)
    search: SearchSpace = Field(default_factory=SearchSpace)
    objective: Objective = Field("cost", description="Ranking objective: " + ", ".join(OBJECTIVES))
    overrides: dict[str, float] = Field(
        default_factory=dict, description="Assumption knobs to override (see data/*.yaml).")
    price_overrides: list[PriceOverride] = Field(
        default_factory=list, description="Prices to use instead of the catalog's.")
    efficiency_overrides: list[EfficiencyOverride] = Field(
        default_factory=list, description="Efficiencies to use instead of the catalog's.")

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | ModelSpec) -> str | ModelSpec:
        if isinstance(v, str):
            try:
                resolve_model(v)
            except ModelSpecError as exc:
                raise ValueError(str(exc)) from None
        return v

    def model_spec(self) -> ModelSpec:
        return resolve_model(self.model)

    # Persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data = self.to_dict()
        if path.suffix == ".json":
            path.write_text(json.dumps(data, indent=2) + "\n")
        else:
            path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "scenario") -> Scenario:
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}: expected a mapping with keys model, job, ...")
        try:
            return cls(**data)
        except ValidationError as exc:
            raise ScenarioError(format_validation_error(exc, where)) from None

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ScenarioError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
        return cls.from_dict(data, where=str(path))


