"""Enumerations shared by the specs and the formulas, with names instead of magic numbers.

Formulas work on numpy columns, so every choice a user names (a recompute mode, a number format, a
training precision recipe, an optimizer) travels as an integer code. The codes are defined here, at
the bottom of the package, so that specs, formulas, jobs and faces all read the same table.
"""

from __future__ import annotations

from enum import IntEnum
from itertools import permutations

import numpy as np


class Recompute(IntEnum):
    """Activation recomputation (Korthikanti et al. 2022, Sec. 4.2)."""

    NONE = 0
    SELECTIVE = 1  # the attention core (and, per framework, a share of the rest)
    FULL = 2  # the whole block from its input


RECOMPUTE_CODES: dict[str, int] = {m.name.lower(): int(m) for m in Recompute}
RECOMPUTE_NAMES: dict[int, str] = {v: k for k, v in RECOMPUTE_CODES.items()}

#: Number formats the catalog gives dense peaks for, with the bits one stored element takes.
#: tf32 is a compute format whose operands are stored as fp32 (NVIDIA A100 whitepaper, "TF32").
#: Bits are the unit of record (int4 = 4 bits = 0.5 byte; never integer-divided).
FORMAT_BITS: dict[str, float] = {
    "fp32": 32.0, "tf32": 32.0, "fp16": 16.0, "bf16": 16.0, "fp8": 8.0, "int8": 8.0,
    "fp4": 4.0, "int4": 4.0,
}
FORMATS: tuple[str, ...] = tuple(FORMAT_BITS)
FORMAT_CODES: dict[str, int] = {name: i for i, name in enumerate(FORMATS)}
FORMAT_BITS_BY_CODE = np.array([FORMAT_BITS[f] for f in FORMATS], dtype=np.float64)

#: Training precision recipes -> (stored weight format, stored activation format, linear-layer
#: matmul format, attention matmul format). 16-bit mixed precision keeps 16-bit weights and
#: activations (Micikevicius et al. 2018); fp8 training casts the inputs of the linear layers to
#: fp8 on the fly and keeps attention in bf16 (Transformer Engine, torchao float8), so its stored
#: weights and activations stay 16-bit.
PRECISION_FORMATS: dict[str, tuple[str, str, str, str]] = {
    "fp32": ("fp32", "fp32", "fp32", "fp32"),
    "tf32": ("fp32", "fp32", "tf32", "tf32"),
    "fp16": ("fp16", "fp16", "fp16", "fp16"),
    "bf16": ("bf16", "bf16", "bf16", "bf16"),
    "fp8": ("bf16", "bf16", "fp8", "bf16"),
}
PRECISIONS: tuple[str, ...] = tuple(PRECISION_FORMATS)
PRECISION_CODES: dict[str, int] = {name: i for i, name in enumerate(PRECISIONS)}
PRECISION_NAMES: dict[int, str] = {v: k for k, v in PRECISION_CODES.items()}
#: Recipes whose weights are fp32 themselves (no separate master copy by default).
FULL_PRECISION_RECIPES = ("fp32", "tf32")

#: Optimizer -> number of full-size state tensors per parameter (excluding the fp32 master copy).
#: Adam/AdamW: first and second moments (Kingma & Ba 2015); SGD with momentum, AdaGrad and Lion
#: one (Chen et al. 2023 for Lion); plain SGD none. Adafactor keeps factored second moments only
#: (Shazeer & Stern 2018, Alg. 4, beta1 = 0 as in its default), sized by ``matrix_shape_sum``.
OPTIMIZER_STATES: dict[str, float] = {
    "adam": 2, "adamw": 2, "sgd": 0, "momentum": 1, "adagrad": 1, "lion": 1, "adafactor": 0,
}
OPTIMIZERS: tuple[str, ...] = tuple(OPTIMIZER_STATES)
OPTIMIZER_CODES: dict[str, int] = {name: i for i, name in enumerate(OPTIMIZERS)}
FACTORED_OPTIMIZERS = ("adafactor",)

#: Rank placements: every order of the four parallel dimensions, innermost first.
RANK_DIMENSIONS = ("tp", "cp", "dp", "pp")
DEFAULT_RANK_ORDER = "tp-cp-dp-pp"
RANK_ORDERS: tuple[str, ...] = tuple("-".join(p) for p in permutations(RANK_DIMENSIONS))
RANK_ORDER_CODES: dict[str, int] = {name: i for i, name in enumerate(RANK_ORDERS)}


def lookup(table: dict[str, float] | np.ndarray, names: tuple[str, ...] | None = None) -> np.ndarray:
    """A float64 lookup array indexed by code (``lut[codes]`` vectorises a per-name table)."""
    if isinstance(table, np.ndarray):
        return table
    return np.array([float(table[n]) for n in (names or tuple(table))], dtype=np.float64)
