"""Single-configuration entry points. Each builds 0-d columns and calls the same formulas the
planner evaluates over whole grids, so a single estimate is a grid of one row."""

from __future__ import annotations

from pathlib import Path

from .assumptions import Assumptions
from .columns import Breakdown, ModelColumns
from .flops import training_flops_per_token
from .layout import ParallelLayout, layout_problems
from .memory import inference_memory_per_device, training_memory_per_device
from .spec import ModelSpec, ModelSpecError, resolve_model
from .workload import TrainingSetup, training_columns

ModelLike = ModelSpec | str | Path


def training_memory(
    model: ModelLike,
    layout: ParallelLayout | None = None,
    setup: TrainingSetup | None = None,
    *,
    framework: str = "megatron",
    overrides: dict[str, float] | None = None,
) -> Breakdown:
    """Peak training memory per device (bytes) by component, for the most loaded pipeline stage.

    ``framework`` picks the profile in ``data/frameworks.yaml``; ``overrides`` replaces any knob of
    ``data/assumptions.yaml`` or of the profile (e.g. ``{"cuda_context_bytes": 0}``).
    """
    spec = resolve_model(model)
    layout = layout or ParallelLayout()
    setup = setup or TrainingSetup()
    problems = layout_problems(spec, layout)
    if problems:
        raise ModelSpecError(f"layout cannot shard {spec.name}: " + "; ".join(problems))
    a = Assumptions(framework, overrides)
    return training_memory_per_device(
        ModelColumns.from_spec(spec),
        training_columns(layout, setup),
        cuda_context_bytes=a["cuda_context_bytes"],
        fragmentation_fraction=a["fragmentation_fraction"],
        logits_bytes_per_element=a["logits_bytes_per_element"],
        selective_keep_fraction=a["selective_keep_fraction"],
    )


def training_flops(
    model: ModelLike,
    setup: TrainingSetup | None = None,
    layout: ParallelLayout | None = None,
) -> dict[str, Breakdown]:
    """FLOPs per token and per optimizer step, model and hardware, by component.

    Returns ``{"model_per_token", "hardware_per_token", "model_per_step", "hardware_per_step"}``.
    """
    spec = resolve_model(model)
    setup = setup or TrainingSetup()
    layout = layout or ParallelLayout()
    t = training_columns(layout, setup)
    model_flops, hardware_flops = training_flops_per_token(
        ModelColumns.from_spec(spec), setup.seq_len, t.recompute,
        causal_discount=setup.causal_discount, vocab_head=setup.vocab_head,
    )
    tokens = t.global_batch * t.seq_len
    return {
        "model_per_token": model_flops,
        "hardware_per_token": hardware_flops,
        "model_per_step": model_flops.scaled(tokens),
        "hardware_per_step": hardware_flops.scaled(tokens),
    }


def inference_memory(
    model: ModelLike,
    *,
    batch: int = 1,
    context_len: int = 4096,
    weight_bits: float = 16,
    kv_bits: float = 16,
    tp: int = 1,
    pp: int = 1,
    ep: int = 1,
    prefill_chunk: int | None = None,
    overrides: dict[str, float] | None = None,
) -> Breakdown:
    """Serving memory per device (bytes): weights, KV cache, activation workspace, framework."""
    spec = resolve_model(model)
    for name, value in (("batch", batch), ("context_len", context_len), ("tp", tp), ("pp", pp),
                        ("ep", ep)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1 (got {value})")
    if not 0 < weight_bits <= 32 or not 0 < kv_bits <= 32:
        raise ValueError("weight_bits and kv_bits must be in (0, 32]")
    a = Assumptions("megatron", overrides)
    return inference_memory_per_device(
        ModelColumns.from_spec(spec), batch=batch, context_len=context_len,
        weight_bits=weight_bits, kv_bits=kv_bits, tp=tp, pp=pp, ep=ep,
        prefill_chunk=prefill_chunk, cuda_context_bytes=a["cuda_context_bytes"],
    )
