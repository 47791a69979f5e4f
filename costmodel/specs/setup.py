"""What is run on the model: the training setup (number formats, optimizer, batch shape, recompute)
and its column form, which joins the parallel layout into one table the formulas read.

``build_training_columns`` is the one column builder: the scalar API (``training_columns``), the
planner's grid, the DataFrame API and validation all hand it integer-coded choices as numpy arrays
and get the same ``TrainingColumns``. Number formats are independent columns in bits (weights,
activations, gradients, master copy, optimizer state) plus the matmul formats of the linear layers
and of attention, which index the hardware table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from costmodel.specs.codes import (
    FACTORED_OPTIMIZERS, FORMAT_BITS, FORMAT_BITS_BY_CODE, FORMAT_CODES, FULL_PRECISION_RECIPES,
    OPTIMIZER_CODES, OPTIMIZER_STATES, OPTIMIZERS, PRECISION_CODES, PRECISION_FORMATS, PRECISIONS,
    RANK_ORDER_CODES, RANK_ORDERS, RECOMPUTE_CODES, lookup,
)
from costmodel.specs.columns import Array, as_array, coded_arrays
from costmodel.specs.layout import ParallelLayout, rank_strides

#: One set of training defaults for every face (API, CLI, planner, UI): 4,096-token sequences and
#: about 4M tokens per optimizer step, the batch Llama 2 and Llama 3 were pre-trained with
#: (Touvron et al. 2023 Sec. 2.2; Llama Team 2024 Sec. 3.4.1).
DEFAULT_SEQ_LEN = 4096
DEFAULT_BATCH_TOKENS = 4 * 1024 * 1024
DEFAULT_FINETUNE_SEQUENCES = 128
#: Tokens per optimizer step a practitioner uses by model size, when a batch is not given and the
#: model is known: (largest parameter count of the band, tokens per step). Below 1B and from 1B to
#: 6B: GPT-3's batch sizes by size (Brown et al. 2020, Table 2.1: 0.5M tokens for 125M-760M, 1M for
#: 1.3B and 2.7B); from 6B to 100B: 4M tokens, as Llama 2 7B-70B used (Touvron et al. 2023, Sec.
#: 2.2; GPT-3 6.7B-13B used 2M); from 100B up: 16M tokens, the batch Llama 3 405B ran most of its
#: 15.6T tokens at (Llama Team 2024, Sec. 3.4.1: 4M, then 8M, then 16M from 2.87T tokens on), which
#: a cluster of thousands of devices needs to give every data-parallel replica work.
#: As of those papers (2020-05, 2023-07, 2024-07); every face that knows the model uses this table.
BATCH_TOKENS_BY_SIZE: tuple[tuple[float, int, str], ...] = (
    (1e9, 512 * 1024, "GPT-3 Table 2.1, models under 1B"),
    (6e9, 1024 * 1024, "GPT-3 Table 2.1, 1.3B-2.7B"),
    (100e9, DEFAULT_BATCH_TOKENS, "Llama 2 Sec. 2.2, 7B-70B"),
    (math.inf, 16 * 1024 * 1024, "Llama 3 405B, Llama Team 2024 Sec. 3.4.1"),
)
#: Fewest micro-batches per optimizer step per pipeline stage a blank batch gets: the 1F1B bubble
#: is (p - 1) / m of the step (Narayanan et al. 2021, SC21, Sec. 2.2.1, which asks for m >> p); at
#: m >= 4 p it stays under 25%. A visible parameter, not a published constant: a practitioner who
#: leaves the batch blank does not run a 35-stage pipeline on one micro-batch.
MIN_MICRO_BATCHES_PER_STAGE = 4


def batch_tokens_for_size(n_params: float | None) -> tuple[int, str]:
    """(tokens per optimizer step, source) of ``BATCH_TOKENS_BY_SIZE`` for a model of
    ``n_params`` parameters (None: the 4M-token default)."""
    if n_params is None:
        return DEFAULT_BATCH_TOKENS, BATCH_TOKENS_BY_SIZE[2][2]
    for limit, tokens, source in BATCH_TOKENS_BY_SIZE:
        if n_params < limit:
            return tokens, source
    raise AssertionError("the last band is unbounded")


def default_global_batch(seq_len: int, kind: str = "pretrain", multiple: int = 1, *,
                         n_params: float | None = None, pp: int = 1) -> int:
    """Sequences per step when none is given: the tokens of ``batch_tokens_for_size`` (about 4M
    without a model size) rounded down to a power of two of sequences (pre-training), or 128
    sequences (fine-tuning); then up to a multiple of ``multiple`` (micro_batch x dp) so the step
    divides evenly; then, with ``pp`` > 1, up to ``MIN_MICRO_BATCHES_PER_STAGE`` x pp micro-batches
    per pipeline. See ``default_batch_note`` for the words."""
    return _default_batch(seq_len, kind, multiple, n_params, pp)[0]


def default_batch_note(seq_len: int, kind: str = "pretrain", multiple: int = 1, *,
                       n_params: float | None = None, pp: int = 1) -> str:
    """What ``default_global_batch`` chose and why, e.g. 'global_batch=1024 (4,194,304 tokens:
    Llama 2 Sec. 2.2, 7B-70B)'."""
    value, why = _default_batch(seq_len, kind, multiple, n_params, pp)
    return f"global_batch={value} ({why})"


def _default_batch(seq_len: int, kind: str, multiple: int, n_params: float | None,
                   pp: int) -> tuple[int, str]:
    if kind == "finetune":
        base, why = DEFAULT_FINETUNE_SEQUENCES, f"{DEFAULT_FINETUNE_SEQUENCES} sequences, fine-tuning default"
    else:
        tokens, source = batch_tokens_for_size(n_params)
        target = max(1, tokens // max(1, seq_len))
        base = 1 << (target.bit_length() - 1)
        why = f"~{tokens / 2**20:g}M tokens by model size: {source}"
    value = max(multiple, -(-base // multiple) * multiple)
    if value != base:
        why += f"; rounded up to a multiple of micro_batch x dp = {multiple}"
    floor = MIN_MICRO_BATCHES_PER_STAGE * pp * multiple if pp > 1 else 0
    if value < floor:
        value = floor
        why += (f"; raised to {MIN_MICRO_BATCHES_PER_STAGE} x pp = {MIN_MICRO_BATCHES_PER_STAGE * pp} "
                "micro-batches per pipeline (1F1B bubble under 25%)")
    return value, why


TrainingPrecision = Literal["fp32", "tf32", "fp16", "bf16", "fp8"]
Optimizer = Literal["adam", "adamw", "sgd", "momentum", "adagrad", "lion", "adafactor"]
Recompute = Literal["none", "selective", "full"]
GradientPrecision = Literal["param", "fp32"]
GRADIENT_PRECISIONS = ("param", "fp32")
Peft = Literal["none", "lora", "qlora"]
LoraTargets = Literal["attention", "all", "qv"]
BaseWeightBits = Literal[16, 8, 4]
#: Parameter-efficient fine-tuning modes (codes by position): full training, LoRA (Hu et al. 2021)
#: on a frozen base, QLoRA (Dettmers et al. 2023) on a frozen quantized base.
PEFT_MODES = ("none", "lora", "qlora")
PEFT_CODES = {name: i for i, name in enumerate(PEFT_MODES)}
#: Linear layers LoRA adapters target (codes by position): q, k, v, o; every linear layer of the
#: blocks (attention, MLP, routed and shared experts; not the router, embedding or LM head); q and
#: v only (Hu et al. 2021, Sec. 7.1; the Hugging Face PEFT default for Llama).
LORA_TARGETS = ("attention", "all", "qv")
LORA_TARGET_CODES = {name: i for i, name in enumerate(LORA_TARGETS)}
LORA_ATTENTION, LORA_ALL, LORA_QV = range(3)
#: Stored bits per frozen base weight, scales included. 4: NF4 with double quantization, 64
#: weights per 8-bit absmax and 256 absmaxes per fp32 constant: 4 + 8/64 + 32/(64 x 256) = 4.127
#: (Dettmers et al. 2023, QLoRA, Sec. 3 'Double Quantization': 0.5 -> 0.127 bits per parameter).
#: 8: LLM.int8 (Dettmers et al. 2022) keeps one fp32 scale per row, 32 / d_in < 0.01 bits per
#: weight at d_in >= 4096, taken as negligible (outlier columns are kept in 16 bits transiently).
BASE_STORED_BITS = {16: 16.0, 8: 8.0, 4: 4.0 + 8.0 / 64 + 32.0 / (64 * 256)}

#: Training precision -> (bytes per stored weight, bytes per stored activation, matmul format of
#: the linear layers, matmul format of attention): the byte view of ``codes.PRECISION_FORMATS``.
PRECISION_TABLE: dict[str, tuple[float, float, str, str]] = {
    name: (FORMAT_BITS[w] / 8, FORMAT_BITS[a] / 8, mm, attn)
    for name, (w, a, mm, attn) in PRECISION_FORMATS.items()
}


class TrainingSetup(BaseModel):
    """Numerics and batch shape of a training job (independent of the hardware and layout)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    precision: TrainingPrecision = Field(
        "bf16", description="Number format of the matmuls: fp32, tf32, fp16, bf16 or fp8."
    )
    optimizer: Optimizer = Field("adamw", description="Optimizer whose state is kept per parameter.")
    master_weights: bool | None = Field(
        None, description="Keep an fp32 master copy of the weights; default: yes below 32-bit."
    )
    gradient_precision: GradientPrecision = Field(
        "param", description="Gradients stored in the parameter format (ZeRO paper) or in fp32 "
        "(Megatron-LM's default main_grad buffer)."
    )
    optimizer_state_bits: Literal[8, 16, 32] = Field(
        32, description="Bits per optimizer-state element (8 for 8-bit Adam, Dettmers et al. 2022)."
    )
    recompute: Recompute = Field(
        "none", description="Activation recomputation: none, selective (attention core) or full."
    )
    micro_batch: int = Field(1, ge=1, description="Sequences per micro-batch per pipeline.")
    seq_len: int = Field(DEFAULT_SEQ_LEN, ge=1, le=10_000_000,
                         description="Tokens per training sequence (default 4096, as plans).")
    global_batch: int | None = Field(
        None, ge=1, description="Sequences per optimizer step; default: about 4M tokens as plans use "
        "(rounded to a multiple of micro_batch x dp), see default_global_batch."
    )
    flash_attention: bool = Field(
        True, description="Fused attention that never stores the s x s score matrix (Dao et al. 2022)."
    )
    dropout: bool = Field(False, description="Dropout layers active (their masks are stored).")
    vocab_head: bool = Field(
        True, description="The loss is computed over the vocabulary (LM objective); False for a "
        "small classification head."
    )
    causal_discount: bool = Field(
        True, description="Count causal attention at half the s x s cost (see flops module)."
    )
    peft: Peft = Field(
        "none", description="Parameter-efficient fine-tuning: none (every weight trained), lora "
        "(frozen base + low-rank adapters, Hu et al. 2021) or qlora (frozen 4-bit NF4 base, "
        "Dettmers et al. 2023)."
    )
    lora_rank: int = Field(16, ge=1, le=4096, description="Rank r of each LoRA adapter.")
    lora_targets: LoraTargets = Field(
        "all", description="Linear layers with adapters: attention (q, k, v, o), all (every linear "
        "layer of the blocks, MLP and experts included) or qv (q and v only)."
    )
    base_weight_bits: BaseWeightBits | None = Field(
        None, description="Bits of the frozen base weights (lora, qlora): 16, 8 (LLM.int8) or 4 "
        "(NF4 + double quantization, 4.127 bits stored); default 16 for lora, 4 for qlora."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainingSetup:
        if self.master_weights and self.precision in FULL_PRECISION_RECIPES:
            raise ValueError("master_weights is meaningless for fp32/tf32 training (weights are fp32)")
        peft_check(self)
        return self

    @property
    def uses_master_weights(self) -> bool:
        if self.master_weights is None:
            return self.precision not in FULL_PRECISION_RECIPES
        return self.master_weights


#: Setup fields that are the same for every configuration of a plan (the grid searches layout,
#: recompute, micro-batch and precision; these come from the job).
SETUP_FIELDS = ("optimizer", "master_weights", "gradient_precision", "optimizer_state_bits",
                "flash_attention", "dropout", "vocab_head", "causal_discount", "peft", "lora_rank",
                "lora_targets", "base_weight_bits")


def peft_check(source: Any) -> None:
    """Raise ValueError when the PEFT fields of a setup or planning job contradict each other."""
    if source.peft == "none" and source.base_weight_bits is not None:
        raise ValueError("base_weight_bits applies to a frozen base: set peft to 'lora' or 'qlora'")
    if source.peft == "qlora" and source.base_weight_bits == 16:
        raise ValueError("peft 'qlora' quantizes the frozen base: base_weight_bits must be 8 or 4 "
                         "(use peft 'lora' for a 16-bit base)")


@dataclass(frozen=True)
class TrainingColumns:
    """Layout and setup of one or many training configurations, as numbers.

    Number formats are in bits per element; ``matmul_format``/``attention_format`` are codes into
    ``codes.FORMATS`` (they index the hardware table). ``n_micro`` is micro-batches per optimizer
    step per pipeline.
    """

    tp: Array
    pp: Array
    vpp: Array
    dp: Array
    cp: Array
    ep: Array
    etp: Array  # expert tensor-parallel degree (tp unless set: Megatron-core parallel folding)
    first_layers: Array  # blocks on the first pipeline stage as given; 0 = the automatic split
    last_layers: Array  # blocks on the last pipeline stage as given; 0 = the automatic split
    sp: Array
    zero_stage: Array
    micro_batch: Array
    seq_len: Array
    n_micro: Array
    recompute: Array
    precision: Array  # recipe code into codes.PRECISIONS (for reports)
    matmul_format: Array  # code into codes.FORMATS: the linear layers' matmuls
    attention_format: Array  # code into codes.FORMATS: the attention matmuls
    weight_bits: Array
    act_bits: Array
    grad_bits: Array
    master_bits: Array  # 32 with an fp32 master copy, else 0
    optimizer_state_bits: Array  # bits of one optimizer-state element
    optimizer_states: Array  # full-size state tensors per parameter (Adam: 2)
    adafactor: Array  # 1 where the optimizer state is factored (see params.matrix_shape_sum)
    flash: Array
    dropout: Array
    vocab_head: Array
    causal_discount: Array
    peft: Array  # code into PEFT_MODES: 0 full training, 1 LoRA, 2 QLoRA (base frozen when > 0)
    lora_rank: Array
    lora_targets: Array  # code into LORA_TARGETS
    base_weight_bits: Array  # stored bits per frozen base weight, scales included (weight_bits when peft = 0)
    stride_tp: Array  # distance between consecutive ranks of each group (rank placement)
    stride_cp: Array
    stride_dp: Array
    stride_pp: Array

    @property
    def n_devices(self) -> Array:
        return self.tp * self.pp * self.cp * self.dp

    @property
    def global_batch(self) -> Array:
        return self.micro_batch * self.dp * self.n_micro

    @property
    def expert_shard(self) -> Array:
        """Devices one MoE layer's experts are split across: etp x ep."""
        return self.etp * self.ep

    @property
    def expert_dp(self) -> Array:
        """Data-parallel replicas of each expert shard: tp x cp x dp / (etp x ep) (dp x cp / ep
        when etp = tp)."""
        return self.tp * self.cp * self.dp / (self.etp * self.ep)

    @property
    def weight_bytes(self) -> Array:
        return self.weight_bits / 8

    @property
    def frozen(self) -> Array:
        """1 where the base weights are frozen (LoRA, QLoRA), else 0."""
        return (np.asarray(self.peft) > 0).astype(np.float64)

    @property
    def base_weight_bytes(self) -> Array:
        """Stored bytes per frozen base weight (scales included)."""
        return self.base_weight_bits / 8

    @property
    def act_bytes(self) -> Array:
        return self.act_bits / 8

    @property
    def grad_bytes(self) -> Array:
        return self.grad_bits / 8

    @property
    def master_bytes(self) -> Array:
        return self.master_bits / 8

    @property
    def optimizer_state_bytes(self) -> Array:
        """Full-size optimizer-state bytes per parameter (without the master copy)."""
        return self.optimizer_states * self.optimizer_state_bits / 8

    @property
    def matmul_bytes(self) -> Array:
        """Bytes of one operand element of the linear layers' matmuls (1 under fp8 training)."""
        return FORMAT_BITS_BY_CODE[np.asarray(self.matmul_format, dtype=np.int64)] / 8

    @classmethod
    def stack(cls, rows: list[TrainingColumns]) -> TrainingColumns:
        """One 1-d table from many single configurations (row order kept)."""
        return cls(**{f.name: np.stack([np.asarray(getattr(r, f.name), dtype=np.float64)
                                        for r in rows]) for f in fields(cls)})

    def take(self, index: Array) -> TrainingColumns:
        return TrainingColumns(**{f.name: np.asarray(getattr(self, f.name))[index] for f in fields(self)})


# Lookup tables by code, built once.
_WEIGHT_BITS = lookup({p: FORMAT_BITS[f[0]] for p, f in PRECISION_FORMATS.items()})
_ACT_BITS = lookup({p: FORMAT_BITS[f[1]] for p, f in PRECISION_FORMATS.items()})
_MATMUL_FORMAT = lookup({p: FORMAT_CODES[f[2]] for p, f in PRECISION_FORMATS.items()})
_ATTENTION_FORMAT = lookup({p: FORMAT_CODES[f[3]] for p, f in PRECISION_FORMATS.items()})
_FULL_PRECISION = lookup({p: p in FULL_PRECISION_RECIPES for p in PRECISIONS})
_STATES = lookup(OPTIMIZER_STATES)
_FACTORED = lookup({o: o in FACTORED_OPTIMIZERS for o in OPTIMIZERS})

#: Integer-coded inputs of ``build_training_columns`` (arrays or scalars, broadcast together).
CODED_INPUTS = (
    "tp", "pp", "vpp", "dp", "cp", "ep", "sequence_parallel", "zero_stage", "micro_batch", "seq_len",
    "n_micro", "recompute", "precision", "optimizer", "master_weights", "gradient_precision",
    "optimizer_state_bits", "flash_attention", "dropout", "vocab_head", "causal_discount",
    "rank_order", "peft", "lora_rank", "lora_targets", "base_weight_bits", "etp",
    "first_stage_layers", "last_stage_layers",
)
#: Coded inputs a caller may leave out (full training): callers that predate PEFT stay valid.
CODED_DEFAULTS = {"peft": 0.0, "lora_rank": 16.0, "lora_targets": float(LORA_ALL), "base_weight_bits": -1.0,
                  "etp": 0.0, "first_stage_layers": 0.0, "last_stage_layers": 0.0}


def build_training_columns(c: Mapping[str, Any]) -> TrainingColumns:
    """The one column builder. ``c`` maps each name of ``CODED_INPUTS`` to an array or scalar:
    layout degrees, ``recompute``/``precision``/``optimizer``/``rank_order``/``gradient_precision``
    as codes (``codes.*_CODES``, gradient precision 0 = param, 1 = fp32), ``master_weights`` as
    -1 (default: yes below 32-bit), 0 or 1, flags as 0/1; ``peft``/``lora_targets`` as codes
    (``PEFT_CODES``, ``LORA_TARGET_CODES``), ``base_weight_bits`` as 16, 8, 4 or -1 (default: 4
    for QLoRA, the training weight format for LoRA). The PEFT inputs may be left out
    (``CODED_DEFAULTS``: full training)."""
    a = coded_arrays(c, CODED_INPUTS, CODED_DEFAULTS, "build_training_columns")
    prec = a["precision"].astype(np.int64)
    weight_bits = _WEIGHT_BITS[prec]
    master = np.where(a["master_weights"] < 0, 1.0 - _FULL_PRECISION[prec], a["master_weights"])
    opt = a["optimizer"].astype(np.int64)
    strides = _strides(a["rank_order"], a["tp"], a["cp"], a["dp"])
    return TrainingColumns(
        tp=a["tp"], pp=a["pp"], vpp=a["vpp"], dp=a["dp"], cp=a["cp"], ep=a["ep"],
        etp=np.where(a["etp"] > 0, a["etp"], a["tp"]), first_layers=a["first_stage_layers"],
        last_layers=a["last_stage_layers"], sp=np.where(a["tp"] > 1, a["sequence_parallel"], 0.0), zero_stage=a["zero_stage"],
        micro_batch=a["micro_batch"], seq_len=a["seq_len"], n_micro=a["n_micro"],
        recompute=a["recompute"], precision=a["precision"],
        matmul_format=_MATMUL_FORMAT[prec], attention_format=_ATTENTION_FORMAT[prec],
        weight_bits=weight_bits, act_bits=_ACT_BITS[prec],
        grad_bits=np.where(a["gradient_precision"] > 0, 32.0, weight_bits),
        master_bits=32.0 * master, optimizer_state_bits=a["optimizer_state_bits"],
        optimizer_states=_STATES[opt], adafactor=_FACTORED[opt],
        flash=a["flash_attention"], dropout=a["dropout"], vocab_head=a["vocab_head"],
        causal_discount=a["causal_discount"], peft=a["peft"], lora_rank=a["lora_rank"],
        lora_targets=a["lora_targets"],
        base_weight_bits=_base_weight_bits(a["peft"], a["base_weight_bits"], weight_bits), **strides,
    )


def _base_weight_bits(peft: np.ndarray, code: np.ndarray, weight_bits: np.ndarray) -> np.ndarray:
    """Stored bits per frozen base weight: the requested 16/8/4 (default 4 for QLoRA, the training
    weight format for LoRA) with its scales (``BASE_STORED_BITS``); weight_bits without PEFT."""
    bits = np.where(code > 0, code, np.where(peft >= 2, 4.0, weight_bits))
    stored = np.where(bits == 4, BASE_STORED_BITS[4], bits)
    return np.where(peft > 0, stored, weight_bits)


def precision_formats(precision: Array) -> tuple[np.ndarray, np.ndarray]:
    """(linear-layer matmul format, attention format) codes of precision recipe codes."""
    codes = np.asarray(precision, dtype=np.int64)
    return _MATMUL_FORMAT[codes], _ATTENTION_FORMAT[codes]


def _strides(order: Array, tp: Array, cp: Array, dp: Array) -> dict[str, Array]:
    """Group strides per row for the rank placement coded in ``order`` (see ``layout``)."""
    codes = order.astype(np.int64)
    out = {f"stride_{d}": np.zeros(codes.shape) for d in ("tp", "cp", "dp", "pp")}
    for code in np.unique(codes):
        rows = codes == code
        for d, v in rank_strides(RANK_ORDERS[int(code)], tp, cp, dp).items():
            out[f"stride_{d}"] = np.where(rows, np.broadcast_to(v, codes.shape), out[f"stride_{d}"])
    return out


def setup_codes(setup: TrainingSetup) -> dict[str, float]:
    """The integer-coded form of a setup's fields (see ``build_training_columns``)."""
    return {
        "recompute": RECOMPUTE_CODES[setup.recompute], "precision": PRECISION_CODES[setup.precision],
        "micro_batch": setup.micro_batch, "seq_len": setup.seq_len,
        **job_setup_codes(setup),
    }


def job_setup_codes(source: Any) -> dict[str, float]:
    """Codes of the ``SETUP_FIELDS`` of a ``TrainingSetup`` or of a planning ``Job``."""
    peft_check(source)
    master = source.master_weights
    base = source.base_weight_bits
    return {
        "optimizer": OPTIMIZER_CODES[source.optimizer],
        "master_weights": -1.0 if master is None else float(master),
        "gradient_precision": GRADIENT_PRECISIONS.index(source.gradient_precision),
        "optimizer_state_bits": source.optimizer_state_bits,
        "flash_attention": float(source.flash_attention), "dropout": float(source.dropout),
        "vocab_head": float(source.vocab_head), "causal_discount": float(source.causal_discount),
        "peft": float(PEFT_CODES[source.peft]), "lora_rank": float(source.lora_rank),
        "lora_targets": float(LORA_TARGET_CODES[source.lora_targets]),
        "base_weight_bits": -1.0 if base is None else float(base),
    }


def layout_codes(layout: ParallelLayout) -> dict[str, float]:
    return {"tp": layout.tp, "pp": layout.pp, "vpp": layout.vpp, "dp": layout.dp, "cp": layout.cp,
            "ep": layout.ep, "sequence_parallel": float(layout.sequence_parallel),
            "zero_stage": layout.zero_stage, "rank_order": RANK_ORDER_CODES[layout.rank_order],
            "etp": float(layout.etp or 0), "first_stage_layers": float(layout.first_stage_layers or 0),
            "last_stage_layers": float(layout.last_stage_layers or 0)}


def micro_batches(layout: ParallelLayout, setup: TrainingSetup, n_params: float | None = None) -> int:
    """Micro-batches per optimizer step; the global batch must be a multiple of micro_batch x dp.
    A blank global batch takes ``default_global_batch`` for a model of ``n_params`` parameters
    (None: about 4M tokens) and ``layout.pp`` stages."""
    per_step = setup.micro_batch * layout.dp
    global_batch = setup.global_batch or default_global_batch(
        setup.seq_len, multiple=per_step, n_params=n_params, pp=layout.pp)
    if global_batch % per_step:
        raise ValueError(
            f"global_batch ({global_batch}) must be a multiple of micro_batch x dp ({per_step})"
        )
    return global_batch // per_step


def training_columns(layout: ParallelLayout, setup: TrainingSetup,
                     n_params: float | None = None) -> TrainingColumns:
    """Column form (0-d arrays) of one layout and setup: a grid of one row (``n_params``: the
    model size a blank global batch is chosen for, see ``micro_batches``)."""
    return build_training_columns({**layout_codes(layout), **setup_codes(setup),
                                   "n_micro": micro_batches(layout, setup, n_params)})
