"""What is run on the model: the training setup (precision, optimizer, batch shape, recompute) and
its column form, which joins the parallel layout into one table the formulas read.

Serving and compression will add their own setups and columns here; the formulas that do not care
about them keep working unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from costmodel.specs.columns import Array, as_array
from costmodel.formulas.flops import RECOMPUTE_CODES
from costmodel.specs.layout import ParallelLayout, rank_strides

TrainingPrecision = Literal["fp32", "tf32", "fp16", "bf16", "fp8"]
Optimizer = Literal["adam", "adamw", "sgd", "momentum", "adagrad", "lion", "adafactor"]
Recompute = Literal["none", "selective", "full"]

#: Training precision -> (bytes per stored weight, bytes per stored activation, matmul number
#: format for the linear layers, matmul format for attention). 16/8-bit training keeps 16-bit
#: weights and activations (mixed precision, Micikevicius et al. 2018); FP8 training casts the
#: inputs of the linear layers to FP8 on the fly and keeps attention in BF16 (Transformer Engine,
#: torchao float8), so its stored weights and activations stay 16-bit.
PRECISION_TABLE: dict[str, tuple[float, float, str, str]] = {
    "fp32": (4.0, 4.0, "fp32", "fp32"),
    "tf32": (4.0, 4.0, "tf32", "tf32"),
    "fp16": (2.0, 2.0, "fp16", "fp16"),
    "bf16": (2.0, 2.0, "bf16", "bf16"),
    "fp8": (2.0, 2.0, "fp8", "bf16"),
}
PRECISION_CODES = {name: i for i, name in enumerate(PRECISION_TABLE)}

#: Optimizer -> number of full-size state tensors per parameter (excluding the fp32 master copy).
#: Adam/AdamW: first and second moments (Kingma & Ba 2015); SGD with momentum, AdaGrad and Lion one
#: (Chen et al. 2023 for Lion); plain SGD none. Adafactor keeps factored second moments only
#: (Shazeer & Stern 2018, Alg. 4, beta1 = 0 as in its default), sized by ``matrix_shape_sum``.
OPTIMIZER_STATES: dict[str, float] = {
    "adam": 2, "adamw": 2, "sgd": 0, "momentum": 1, "adagrad": 1, "lion": 1, "adafactor": 0,
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
    gradient_precision: Literal["param", "fp32"] = Field(
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
    seq_len: int = Field(2048, ge=1, description="Tokens per training sequence.")
    global_batch: int | None = Field(
        None, ge=1, description="Sequences per optimizer step; default micro_batch x dp (no accumulation)."
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

    @model_validator(mode="after")
    def _check(self) -> TrainingSetup:
        if self.master_weights and self.precision in ("fp32", "tf32"):
            raise ValueError("master_weights is meaningless for fp32/tf32 training (weights are fp32)")
        return self

    @property
    def uses_master_weights(self) -> bool:
        if self.master_weights is None:
            return self.precision not in ("fp32", "tf32")
        return self.master_weights


@dataclass(frozen=True)
class TrainingColumns:
    """Layout and setup of one or many training configurations, as numbers.

    Byte sizes are per element; ``n_micro`` is micro-batches per optimizer step per pipeline.
    """

    tp: Array
    pp: Array
    vpp: Array
    dp: Array
    cp: Array
    ep: Array
    sp: Array
    zero_stage: Array
    micro_batch: Array
    seq_len: Array
    n_micro: Array
    recompute: Array
    precision: Array  # code into PRECISION_TABLE
    weight_bytes: Array
    grad_bytes: Array
    master_bytes: Array
    optimizer_state_bytes: Array  # full-size state bytes per parameter (without master copy)
    adafactor: Array  # 1 where the optimizer state is factored (see params.matrix_shape_sum)
    act_bytes: Array
    flash: Array
    dropout: Array
    vocab_head: Array
    causal_discount: Array
    stride_tp: Array = 1.0  # distance between consecutive ranks of each group (rank placement)
    stride_cp: Array = None  # type: ignore[assignment]
    stride_dp: Array = None  # type: ignore[assignment]
    stride_pp: Array = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        # Megatron-LM placement (tp-cp-dp-pp) unless strides are given.
        if self.stride_cp is None:
            object.__setattr__(self, "stride_cp", as_array(self.tp))
        if self.stride_dp is None:
            object.__setattr__(self, "stride_dp", as_array(self.tp * self.cp))
        if self.stride_pp is None:
            object.__setattr__(self, "stride_pp", as_array(self.tp * self.cp * self.dp))

    @property
    def n_devices(self) -> Array:
        return self.tp * self.pp * self.cp * self.dp

    @property
    def global_batch(self) -> Array:
        return self.micro_batch * self.dp * self.n_micro

    @classmethod
    def stack(cls, rows: list[TrainingColumns]) -> TrainingColumns:
        """One 1-d table from many single configurations (row order kept)."""
        return cls(**{f.name: np.stack([np.asarray(getattr(r, f.name), dtype=np.float64)
                                        for r in rows]) for f in fields(cls)})



def precision_numbers(precision: str, master: bool | None, gradient_precision: str,
                      optimizer: str, state_bits: int) -> dict[str, float]:
    """Byte sizes implied by a precision/optimizer choice (shared by the scalar and grid paths)."""
    weight, act, _, _ = PRECISION_TABLE[precision]
    use_master = (precision not in ("fp32", "tf32")) if master is None else master
    return {
        "precision": PRECISION_CODES[precision],
        "weight_bytes": weight,
        "act_bytes": act,
        "grad_bytes": 4.0 if gradient_precision == "fp32" else weight,
        "master_bytes": 4.0 if use_master else 0.0,
        "optimizer_state_bytes": OPTIMIZER_STATES[optimizer] * state_bits / 8,
        "adafactor": float(optimizer == "adafactor"),
    }


def training_columns(layout: ParallelLayout, setup: TrainingSetup) -> TrainingColumns:
    """Column form (0-d arrays) of one layout and setup."""
    global_batch = setup.global_batch or setup.micro_batch * layout.dp
    per_step = setup.micro_batch * layout.dp
    if global_batch % per_step:
        raise ValueError(
            f"global_batch ({global_batch}) must be a multiple of micro_batch x dp ({per_step})"
        )
    nums = precision_numbers(setup.precision, setup.master_weights, setup.gradient_precision,
                             setup.optimizer, setup.optimizer_state_bits)
    strides = rank_strides(layout.rank_order, layout.tp, layout.cp, layout.dp)
    values = {
        "tp": layout.tp, "pp": layout.pp, "vpp": layout.vpp, "dp": layout.dp, "cp": layout.cp,
        "ep": layout.ep, "sp": float(layout.sequence_parallel), "zero_stage": layout.zero_stage,
        "micro_batch": setup.micro_batch, "seq_len": setup.seq_len,
        "n_micro": global_batch // per_step, "recompute": RECOMPUTE_CODES[setup.recompute],
        "flash": float(setup.flash_attention), "dropout": float(setup.dropout),
        "vocab_head": float(setup.vocab_head), "causal_discount": float(setup.causal_discount),
        **nums, **{f"stride_{d}": v for d, v in strides.items()},
    }
    return TrainingColumns(**{k: as_array(v) for k, v in values.items()})
