"""The published measurements through llm-analysis 0.2.2 beside costmodel.

Every row of the measurement files (``data/validation/*.csv``, the ones ``costmodel validate``
reads) is translated into llm-analysis's own configuration objects (``ModelConfig``, ``GPUConfig``,
``DtypeConfig``, ``ParallelismConfig``) and run through ``LLMAnalysis.training()`` (training rows),
``LLMAnalysis.inference()`` (serving rows) or its weight-memory methods (the weights-only row).
Its prediction of the row's metric and its relative error are put beside costmodel's prediction
and error from ``costmodel.validation.measurements.validate()``.

Ground rules:

* The model configuration is built from the row's columns, never from llm-analysis's shipped model
  names or Hugging Face (nothing is downloaded; ``HF_HUB_OFFLINE=1`` is set before the import).
* The GPU configuration uses costmodel's hardware catalog figures for the row's accelerator
  (memory, HBM bandwidth, the peak of the row's precision, scale-up bandwidth/latency of the
  default system, scale-out bandwidth), so both tools see the same hardware.
* llm-analysis's default efficiencies are used (``flops_efficiency`` and ``hbm_memory_efficiency``
  both default to 1.0 in llm-analysis 0.2.2; no row states an efficiency setting). ``--flops-efficiency``
  overrides it for a sensitivity run.
* A row whose configuration llm-analysis has no input for (context parallelism, interleaved
  pipeline schedule, FP8, FP32, no architecture, ...) is reported as *not expressible* with every
  reason; it is never skipped silently and never approximated into a misleading number.
  Approximations that are made are listed per row in ``llm_analysis_approximations``.

Run from the repository root::

    .venv/bin/python benchmarks/compare_llm_analysis.py

It prints a per-row table and a per-category summary and writes
``benchmarks/results/llm_analysis_comparison.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # llm-analysis imports transformers; never go online
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
CSV_PATH = RESULTS_DIR / "llm_analysis_comparison.csv"
MD_PATH = RESULTS_DIR / "llm_analysis_comparison.md"

# llm-analysis 0.2.2 logs through a logger literally named "__name__" (llm_analysis/logger.py) at
# INFO/WARNING for every call; silence it before its modules are imported.
logging.getLogger("__name__").setLevel(logging.ERROR)


def _import_llm_analysis():
    """Import llm-analysis quietly (its config module prints a transformers notice on import)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import llm_analysis.analysis as la_analysis
        import llm_analysis.config as la_config
    return la_analysis, la_config


GIB = 2.0**30
TRAIN_CATEGORIES = ("train_throughput", "train_memory", "train_total_cost")
INFER_CATEGORIES = ("infer_throughput", "infer_latency", "infer_memory")

# Reasons a row cannot be put to llm-analysis 0.2.2 (checked against its source: analysis.py,
# config.py, constant.py of the installed package).
REASON_CP = ("context parallelism cp={cp}: llm-analysis 0.2.2's ParallelismConfig has only "
             "tp/pp/dp/ep/sp (sp must equal tp: Megatron sequence parallelism); no context/ring "
             "attention parallelism")
REASON_VPP = ("interleaved pipeline schedule vpp={vpp}: llm-analysis has no virtual-pipeline input "
              "(its training latency has no pipeline-schedule or bubble term)")
REASON_FP8_TRAIN = ("precision fp8: llm-analysis 0.2.2 has no FP8 number format; its only 8-bit path is INT8 "
                    "quantisation (8-bit DtypeConfig weights/activations at GPUConfig.peak_i8_TFLOPS), which would "
                    "also store 1-byte weights and run attention at the 8-bit peak, whereas FP8 training keeps "
                    "16-bit weights, an FP32 master copy and BF16 attention")
REASON_FP8_INFER = ("precision fp8: llm-analysis 0.2.2 has no FP8 number format; its only 8-bit path is INT8 "
                    "quantisation (8-bit DtypeConfig weights/activations at GPUConfig.peak_i8_TFLOPS); mapping "
                    "TensorRT-LLM FP8 (weights, GEMMs, KV cache) onto it would be an approximation, not made here")
REASON_FP32 = ("precision {p}: llm-analysis compute supports 4/8/16-bit only "
               "(get_TFLOPS_per_gpu asserts bits in {{4, 8, 16}}) and its optimizer model always adds a "
               "separate FP32 master copy")
REASON_NO_ARCH = ("architecture not published (only params_b): llm-analysis's ModelConfig needs "
                  "num_layers/hidden_dim/n_head/vocab_size; it has no parameter-count-only entry point")
REASON_MOE = ("MoE layout {what}: llm-analysis's ModelConfig has one ffn_embed_dim for all layers and "
              "no shared experts or leading dense layers")
REASON_BATCH = ("batch_size blank (engine-chosen batch): the throughput-maximising batch search is not "
                "implemented for llm-analysis here")


#: How llm-analysis 0.2.2 turns the inputs into the predicted figures (analysis.py, constant.py).
LLM_ANALYSIS_NOTES = (
    "Default efficiencies: `FLOPS_EFFICIENCY = 1` and `HBM_MEMORY_EFFICIENCY = 1` (constant.py; its comment "
    "says Megatron-LM reaches ~0.5), so with the defaults every latency is a peak-hardware bound.",
    "Training step time (`latency_per_iter`) = FLOPs per micro-batch / (tp * pp * peak * flops_efficiency) "
    "* gradient-accumulation steps: no TP/DP/PP communication, no pipeline bubble, no memory-bound term "
    "(the per-layer `latency_fwd` with its TP all-reduce is computed but not used for the step time).",
    "Forward FLOPs per layer: attention 4bsh^2 + 4bsh^2/(n_head/n_kv) + 4bs^2h (no causal halving) and MLP "
    "fixed at 16bsh^2 whatever `ffn_embed_dim`, gating or MoE top-k; logits 2bshV; backward = 2x forward; "
    "full recompute adds one forward, selective adds 4bs^2hL.",
    "Parameters/memory: the embedding is always counted once (tied); gradients are held at "
    "`master_weights_dtype_bytes` (FP32), so Adam model states are 2+4+4+8 = 18 B/param before ZeRO sharding; "
    "activations of all L layers are counted on a device whatever pp (first pipeline stage), layer-norm "
    "inputs in FP32 by default and, unless full recompute, an attention-dropout mask (`attn_dropout=True` is not "
    "exposed by `training()`).",
    "`ParallelismConfig.sp_size` defaults to tp_size (sequence parallelism on); rows without SP pass sp_size=1.",
    "`LLMAnalysis` has `training()`/`inference()` methods; the `train()`/`infer()` entry points are "
    "module-level functions that look configurations up by name (shipped JSON or Hugging Face) and are not used.",
    "`ModelConfig` asserts ffn_embed_dim % hidden_dim == 0 unless expansion_ratio is also given (given here); "
    "`training()` needs `max_seq_len` set (TypeError on None).",
    "Inference: prefill = per-layer max(compute, weight+activation traffic) + TP all-reduces; each decode step "
    "reads and writes the whole KV cache at its final length (2 x KV bytes / HBM bandwidth).",
    "GPUConfig memory is read as GiB (x 1024^3), bandwidths as GB/s (x 1e9); inter-node bandwidth is never used.",
)


class NotExpressible(Exception):
    """The row's configuration has no llm-analysis 0.2.2 equivalent."""


@dataclass
class LLMAnalysisInputs:
    """What llm-analysis is given for one row: its config objects and the call's arguments."""

    row_id: str
    call: str  # "training", "inference" or "weights" (weight-memory methods only)
    model: Any = None  # llm_analysis.config.ModelConfig
    gpu: Any = None  # llm_analysis.config.GPUConfig
    dtype: Any = None  # llm_analysis.config.DtypeConfig
    parallelism: Any = None  # llm_analysis.config.ParallelismConfig
    kwargs: dict[str, Any] = field(default_factory=dict)  # arguments of training()/inference()
    blockers: list[str] = field(default_factory=list)  # reasons the row is not expressible
    tags: list[str] = field(default_factory=list)  # the same reasons, short
    approximations: list[str] = field(default_factory=list)
    n_devices: int | None = None

    def block(self, tag: str, reason: str) -> None:
        self.tags.append(tag)
        self.blockers.append(reason)

    @property
    def expressible(self) -> bool:
        return not self.blockers

    def describe(self) -> str:
        """One-line summary of the configuration given to llm-analysis."""
        if self.model is None:
            return ""
        m, p, d, g = self.model, self.parallelism, self.dtype, self.gpu
        parts = [f"L={m.num_layers} h={m.hidden_dim} heads={m.n_head}/{m.num_key_value_heads} "
                 f"ffn={m.ffn_embed_dim:g} V={m.vocab_size}"]
        if m.moe_num_experts > 1:
            parts.append(f"experts={m.moe_num_experts} top{m.moe_top_k}")
        if p is not None:
            parts.append(f"tp={p.tp_size} pp={p.pp_size} dp={p.dp_size} sp={p.sp_size} ep={p.ep_size}")
        if d is not None:
            parts.append(f"w{d.weight_bits}a{d.activation_bits}e{d.embedding_bits}")
        if g is not None:
            parts.append(f"peak={g.peak_fp16_TFLOPS:g}TF hbm={g.hbm_bandwidth_in_GB_per_sec:g}GB/s "
                         f"mem={g.mem_per_GPU_in_GB:g}GiB")
        kw = {k: (v.name if hasattr(v, "name") else v) for k, v in self.kwargs.items()}
        parts.append(" ".join(f"{k}={v}" for k, v in kw.items()))
        return "; ".join(parts)


# Row -> llm-analysis configuration -------------------------------------------------------------------

def _gpu_config(la_config, catalog, accelerator: str, precision: str):
    """llm-analysis GPUConfig from costmodel's catalog figures for the same accelerator."""
    acc = catalog.accelerator(accelerator)
    system = catalog.default_system(accelerator)
    peaks = acc.peak_flops_per_s
    if precision not in ("fp16", "bf16"):  # rows llm-analysis cannot run: still show a 16-bit peak
        precision = "bf16" if "bf16" in peaks else "fp16"
    if precision not in peaks:
        raise NotExpressible(f"catalog has no {precision} peak for {accelerator}")
    int8 = peaks.get("int8")
    int4 = peaks.get("int4")
    return la_config.GPUConfig(
        name=accelerator,
        # llm-analysis multiplies mem_per_GPU_in_GB by 1024**3 (analysis.py training/inference)
        mem_per_GPU_in_GB=acc.memory_bytes / GIB,
        # ... and the bandwidths by 10**9
        hbm_bandwidth_in_GB_per_sec=acc.memory_bandwidth_bytes_per_s / 1e9,
        intra_node_bandwidth_in_GB_per_sec=system.scaleup_bandwidth_bytes_per_s / 1e9,
        intra_node_min_message_latency=system.scaleup_latency_s,
        # the "fp16" peak is the peak llm-analysis uses for every 16-bit matmul: give it the peak
        # of the row's own 16-bit format
        peak_fp16_TFLOPS=peaks[precision] / 1e12,
        peak_i8_TFLOPS=int8 / 1e12 if int8 else None,
        peak_i4_TFLOPS=int4 / 1e12 if int4 else None,
        inter_node_bandwidth_in_GB_per_sec=(system.scaleout_bandwidth_bytes_per_s or 0) / 1e9 or 200,
    )


def _model_config(la_config, row, max_seq_len: int | None, out: LLMAnalysisInputs):
    mlp = row.text("mlp")
    h = row.number("d_model", int, note=False)
    d_ff = row.number("d_ff", int, note=False)
    n_heads = row.number("n_heads", int, note=False)
    kv = row.number("n_kv_heads", int, note=False) or n_heads
    n_experts = row.number("n_experts", int, note=False) or 0
    if mlp == "swiglu":
        # llm-analysis has a 2-matrix MLP (params 2*h*ffn). A gated MLP has 3*h*d_ff params, so
        # ffn_embed_dim = 1.5*d_ff gives the exact parameter count - the same iso-parameter convention
        # as llm-analysis's shipped Llama configs (ffn_embed_dim = 4h = 16384 for Llama-2-7B, d_ff 11008).
        ffn = 1.5 * d_ff
        out.approximations.append(
            f"gated MLP as llm-analysis's 2-matrix MLP with ffn_embed_dim=1.5*d_ff={ffn:g} (exact param count)")
    else:
        ffn = float(d_ff)
    experts = {}
    if n_experts > 1:
        what = []
        if (row.number("n_shared_experts", int, note=False) or 0) > 0:
            what.append("shared experts")
        if (row.number("n_dense_layers", int, note=False) or 0) > 0:
            what.append("leading dense layers")
        d_ff_expert = row.number("d_ff_expert", int, note=False)
        if d_ff_expert and d_ff_expert != d_ff:
            what.append(f"d_ff_expert {d_ff_expert} != d_ff {d_ff}")
        if what:
            out.block("MoE layout", REASON_MOE.format(what=", ".join(what)))
        experts = dict(moe_num_experts=n_experts,
                       moe_top_k=row.number("experts_per_token", int, note=False) or 1)
        out.approximations.append("MoE: llm-analysis's MLP FLOPs are 16*b*s*h^2 per layer whatever the "
                                  "experts/top-k (only params and memory see the experts)")
    tied = (row.text("tied_embeddings").lower() in ("true", "1", "yes"))
    if not tied:
        out.approximations.append("untied embeddings: llm-analysis always counts one shared V*h matrix in "
                                  "params/memory (get_num_params_embedding(shared_embedding=True))")
    name = row.text("model") or row.text("id")
    return la_config.ModelConfig(
        name=name, num_layers=row.number("n_layers", int, note=False), n_head=n_heads, hidden_dim=h,
        vocab_size=row.number("vocab_size", int, note=False), max_seq_len=max_seq_len,
        num_key_value_heads=kv, ffn_embed_dim=ffn,
        expansion_ratio=ffn / h,  # given explicitly: llm-analysis asserts ffn % h == 0 otherwise
        **experts)


def _has_architecture(row) -> bool:
    return all(row.text(c) for c in ("n_layers", "d_model", "n_heads", "d_ff", "mlp", "vocab_size"))


def _check_precision(row, out: LLMAnalysisInputs, default: str = "bf16") -> str:
    precision = row.text("precision")
    if not precision:
        precision = default
        out.approximations.append(f"precision blank -> {default} (costmodel's default; same peak as fp16 "
                                  f"on every accelerator used here)")
    if precision == "fp8":
        out.block("fp8", REASON_FP8_TRAIN if out.call == "training" else REASON_FP8_INFER)
    elif precision in ("fp32", "tf32"):
        out.block(precision, REASON_FP32.format(p=precision))
    return precision


def build_inputs(row, catalog=None) -> LLMAnalysisInputs:
    """Translate one measurement row into llm-analysis 0.2.2 inputs (configs built as far as the
    row allows; ``blockers`` lists why llm-analysis cannot express it, empty if it can)."""
    la_analysis, la_config = _import_llm_analysis()
    if catalog is None:
        from hardware_catalog import default_catalog
        catalog = default_catalog()
    cat = row.text("category")
    out = LLMAnalysisInputs(row_id=row.text("id"), call="training")
    if cat in TRAIN_CATEGORIES:
        _build_training(row, out, catalog, la_analysis, la_config)
    elif cat == "infer_memory":
        _build_weights(row, out, catalog, la_config)
    else:
        _build_inference(row, out, catalog, la_config)
    return out


def _extra(row) -> dict[str, str]:
    items = {}
    for item in filter(None, (p.strip() for p in row.text("extra").split(";"))):
        key, _, value = item.partition("=")
        items[key.strip()] = value.strip()
    return items


def _other_op_bytes(row, out):
    """llm-analysis's ``other_op_bytes`` (optimizer-state bytes per parameter) for the row."""
    optimizer = row.text("optimizer") or "adam"
    if not row.text("optimizer"):
        out.approximations.append("optimizer blank -> Adam (llm-analysis default: fp32 master + 2 fp32 moments)")
    if optimizer == "adafactor":
        out.approximations.append("Adafactor as other_op_bytes=0 (factored second moments, no first moment; "
                                  "llm-analysis still adds the 4-byte master copy)")
        return 0
    if optimizer in ("sgd",):
        return 0
    if optimizer in ("momentum", "adagrad", "lion"):
        return 4
    return None  # llm-analysis default: Adam (8 bytes of moments)


def _extra_setup(row, out) -> tuple[bool, bool]:
    """(flash attention, dropout) from the row's ``extra`` cell, noting what llm-analysis lacks."""
    extra = _extra(row)
    if "tp_comm_overlap" in extra:
        out.approximations.append("tp_comm_overlap has no llm-analysis input (its training latency has no "
                                  "communication term)")
    if extra.get("vocab_head", "true").lower() == "false":
        out.approximations.append("no LM head in the run: llm-analysis still counts the logits' FLOPs and "
                                  "activation memory (no input to drop them)")
    return (extra.get("flash_attention", "true").lower() != "false",
            extra.get("dropout", "false").lower() == "true")


def _metric_notes(row, out, metric: str, precision) -> None:
    """Approximations llm-analysis makes for this row's metric."""
    if metric == "peak_memory_gib":
        measure = row.text("memory_measure") or "nvidia_smi"
        if measure == "nvidia_smi":
            out.approximations.append("nvidia_smi measure vs llm-analysis's weight+grad+optimizer+activation "
                                      "total: it has no CUDA-context or allocator-cache term")
        elif measure == "allocator_reserved":
            out.approximations.append("allocator_reserved measure vs llm-analysis's weight+grad+optimizer+"
                                      "activation total: it has no allocator cache/fragmentation or "
                                      "communication-buffer term")
        if row.text("framework") == "huggingface" and precision == "fp16":
            out.approximations.append("HF AMP keeps FP32 weights with no separate master copy (16 B/param "
                                      "with Adam); llm-analysis models 16-bit weights + FP32 grads + FP32 "
                                      "master + moments (18 B/param)")
    if metric in ("step_time_s", "tokens_per_s_per_device", "model_tflops_per_device"):
        if row.text("mlp") == "swiglu" or abs(out.model.ffn_embed_dim - 4 * out.model.hidden_dim) > 0.5:
            ratio = 2 * out.model.ffn_embed_dim / (8 * out.model.hidden_dim)
            out.approximations.append(
                f"llm-analysis's MLP FLOPs are fixed at 16*b*s*h^2 per layer (ignores ffn_embed_dim): "
                f"{1 / ratio:.2f}x this model's MLP FLOPs")


def _build_training(row, out, catalog, la_analysis, la_config) -> None:
    metric = row.text("metric")
    cat = row.text("category")
    if not _has_architecture(row):
        out.block("no architecture", REASON_NO_ARCH)
        return
    precision = _check_precision(row, out)
    seq_len = row.number("seq_len", int, note=False)
    out.model = _model_config(la_config, row, seq_len, out)
    if row.text("accelerator"):
        with contextlib.suppress(NotExpressible):
            out.gpu = _gpu_config(la_config, catalog, row.text("accelerator"), precision)
    out.dtype = la_config.DtypeConfig(name="w16a16e16", weight_bits=16, activation_bits=16,
                                      embedding_bits=16)
    n = row.number("n_devices", int, note=False)
    out.n_devices = n
    tp = row.number("tp", int, note=False) or 1
    pp = row.number("pp", int, note=False) or 1
    cp = row.number("cp", int, note=False) or 1
    ep = row.number("ep", int, note=False) or 1
    vpp = row.number("vpp", int, note=False)
    if cp > 1:
        out.block(f"cp={cp}", REASON_CP.format(cp=cp))
    if vpp and vpp > 1:
        out.block(f"vpp={vpp}", REASON_VPP.format(vpp=vpp))
    elif not vpp and pp > 1:
        out.approximations.append("vpp blank -> plain 1F1B (llm-analysis has no schedule input either way)")
    sp = row.text("sequence_parallel").lower() in ("true", "1", "yes")

    zero = row.number("zero_stage", int, note=False)
    if zero is None:
        zero = 0
        out.approximations.append("zero_stage blank -> 0")
    recompute = row.text("recompute") or "none"
    if not row.text("recompute"):
        out.approximations.append("recompute blank -> none")
    other_op_bytes = _other_op_bytes(row, out)
    flash, dropout = _extra_setup(row, out)

    if cat == "train_total_cost":
        # Unpublished layout: llm-analysis's gpu_hours = tokens x its FLOPs/token / (peak x efficiency),
        # independent of tp/pp/dp/micro batch (checked at run time with a second layout).
        tokens = row.number("train_tokens", note=False)
        out.parallelism = la_config.ParallelismConfig(tp_size=1, pp_size=1, dp_size=1, sp_size=1)
        out.kwargs = dict(batch_size_per_gpu=1, global_batch_size=1, seq_len=seq_len,
                          total_num_tokens=tokens,
                          activation_recomputation=la_analysis.ActivationRecomputation[recompute.upper()],
                          ds_zero=la_analysis.DSZeRO(zero), other_op_bytes=other_op_bytes,
                          flash_attn=flash, softmax_dropout=dropout,
                          mlp_gated_linear_units=row.text("mlp") == "swiglu")
        out.approximations.append("device count/layout unpublished: placeholder 1-GPU layout (llm-analysis's "
                                  "gpu_hours does not depend on the layout; verified with a second layout)")
        return

    if n is None:
        out.block("no n_devices", "n_devices not published")
        return
    dp = row.number("dp", int, note=False) or n // (tp * pp * cp)
    out.parallelism = la_config.ParallelismConfig(
        tp_size=tp, pp_size=pp, dp_size=dp, ep_size=ep, sp_size=tp if sp else 1)
    micro = row.number("micro_batch", int, note=False) or 1
    gb = row.number("global_batch", int, note=False) or micro * dp
    out.kwargs = dict(
        batch_size_per_gpu=micro, global_batch_size=gb, seq_len=seq_len,
        activation_recomputation=la_analysis.ActivationRecomputation[recompute.upper()],
        ds_zero=la_analysis.DSZeRO(zero), other_op_bytes=other_op_bytes,
        flash_attn=flash, softmax_dropout=dropout,
        mlp_gated_linear_units=row.text("mlp") == "swiglu",
    )
    _metric_notes(row, out, metric, precision)


def _build_weights(row, out, catalog, la_config) -> None:
    out.call = "weights"
    if not _has_architecture(row):
        out.block("no architecture", REASON_NO_ARCH)
        return
    measure = row.text("memory_measure") or "nvidia_smi"
    if measure != "weights":
        out.block(f"measure {measure}", f"infer_memory measure {measure!r}: only a weights-only figure is mapped")
    bits = row.number("weight_bits", note=False)
    precision = row.text("precision") or "bf16"
    if bits is None:
        bits = {"fp32": 32, "tf32": 32, "fp16": 16, "bf16": 16, "fp8": 8}[precision]
    out.model = _model_config(la_config, row, None, out)
    out.dtype = la_config.DtypeConfig(name=f"w{bits:g}", weight_bits=int(bits), activation_bits=16,
                                      embedding_bits=int(bits))
    out.n_devices = row.number("n_devices", int, note=False) or 1
    tp = row.number("tp", int, note=False) or 1
    out.parallelism = la_config.ParallelismConfig(tp_size=tp, pp_size=1, dp_size=1)
    with contextlib.suppress(NotExpressible):
        out.gpu = _gpu_config(la_config, catalog, row.text("accelerator"), precision)
    out.approximations.append(
        "weights from LLMAnalysis.get_memory_embedding + L*get_weight_memory_per_layer + "
        "get_weight_memory_last_layernorm (the terms inference() sums into weight_memory_per_gpu); "
        "inference() itself asserts on 32-bit compute")


def _build_inference(row, out, catalog, la_config) -> None:
    out.call = "inference"
    if not _has_architecture(row):
        out.block("no architecture", REASON_NO_ARCH)
        return
    precision = _check_precision(row, out)
    in_len = row.number("input_len", int, note=False)
    out_len = row.number("output_len", int, note=False)
    out.model = _model_config(la_config, row, None, out)
    if row.text("accelerator"):
        with contextlib.suppress(NotExpressible):
            out.gpu = _gpu_config(la_config, catalog, row.text("accelerator"), precision)
    out.dtype = la_config.DtypeConfig(name="w16a16e16", weight_bits=16, activation_bits=16,
                                      embedding_bits=16)
    n = row.number("n_devices", int, note=False) or 1
    out.n_devices = n
    tp = row.number("tp", int, note=False) or 1
    pp = row.number("pp", int, note=False) or 1
    if tp * pp != n:
        out.block("replicas", f"n_devices {n} != tp*pp {tp * pp}: replica layout not mapped")
    out.parallelism = la_config.ParallelismConfig(tp_size=tp, pp_size=pp, dp_size=1)
    batch = row.number("batch_size", int, note=False)
    if batch is None:
        out.block("no batch_size", REASON_BATCH)
        batch = 1
    kv_bits = row.number("kv_bits", note=False)
    out.kwargs = dict(batch_size_per_gpu=batch, seq_len=in_len, num_tokens_to_generate=out_len,
                      use_kv_cache=True, kv_cache_dtype_bytes=(kv_bits / 8 if kv_bits else None))
    out.approximations.append("llm-analysis inference: static batch, prefill + per-token decode with the KV "
                              "cache read at its final length every step")


# Running llm-analysis ------------------------------------------------------------------------------

def _quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)


def _analysis(inputs: LLMAnalysisInputs, flops_efficiency: float | None = None):
    la_analysis, _ = _import_llm_analysis()
    return la_analysis.LLMAnalysis(inputs.model, inputs.gpu, inputs.dtype, inputs.parallelism,
                                   flops_efficiency=flops_efficiency)


def run_llm_analysis(inputs: LLMAnalysisInputs, flops_efficiency: float | None = None) -> dict:
    """Call llm-analysis on an expressible row; returns its summary dict (or the weight bytes)."""
    if not inputs.expressible:
        raise NotExpressible(" | ".join(inputs.blockers))
    if inputs.gpu is None:
        raise NotExpressible("accelerator not in the catalog")
    analysis = _analysis(inputs, flops_efficiency)
    if inputs.call == "training":
        return _quiet(analysis.training, **inputs.kwargs)
    if inputs.call == "inference":
        return _quiet(analysis.inference, **inputs.kwargs)
    weights = (analysis.get_memory_embedding()
               + inputs.model.num_layers * analysis.get_weight_memory_per_layer()
               + analysis.get_weight_memory_last_layernorm())
    return {"weight_memory_per_gpu": weights}


def _sc21_flops(row) -> float:
    """SC21 (Narayanan et al. 2021) eq. 3, the row's own convention: 96 B s l h^2 (1 + s/6h + V/16lh)."""
    from costmodel.validation.measurements import _sc21_flops as sc21
    return sc21(row)


def predict_metric(row, inputs: LLMAnalysisInputs, summary: dict) -> float:
    """llm-analysis's prediction of the row's metric from its summary dict."""
    metric = row.text("metric")
    n = inputs.n_devices
    if metric == "step_time_s":
        return float(summary["latency_per_iter"])
    if metric in ("tokens_per_s_per_device", "tokens_per_s_total"):
        tokens = summary["global_batch_size"] * summary["seq_len"]
        per_s = tokens / summary["latency_per_iter"]
        return float(per_s / n if metric.endswith("per_device") else per_s)
    if metric == "model_tflops_per_device":
        conv = row.text("flop_convention") or "model"
        if conv == "sc21_hfu":
            flops = _sc21_flops(row)
        else:  # llm-analysis's own model FLOPs (fwd + bwd, no recompute) for the global batch
            analysis = _analysis(inputs)
            flops = 3 * _quiet(analysis.get_num_flops_fwd_total, summary["batch_size_per_gpu"],
                               summary["seq_len"]) * summary["gradient_accumulation_steps"] * summary["dp_size"]
        return float(flops / summary["latency_per_iter"] / n / 1e12)
    if metric == "peak_memory_gib":
        measure = row.text("memory_measure") or "nvidia_smi"
        if measure == "weights":
            return float(summary["weight_memory_per_gpu"] / GIB)
        if measure == "model_states":
            return float(summary["(weight+op_state+grad)_memory_per_gpu"] / GIB)
        return float(summary["(weight+op_state+grad+act)_memory_per_gpu"] / GIB)
    if metric == "device_hours":
        return float(summary["gpu_hours"])
    if metric == "output_tokens_per_s_total":
        b = summary["batch_size_per_gpu"]
        return float(b * summary["num_tokens_to_generate"] / summary["total_latency"])
    if metric == "ttft_s":
        return float(summary["prefill_latency"])
    if metric == "tpot_s":
        return float(summary["decode_latency"])
    if metric == "fits":
        return float(summary["memory_left_per_gpu"] >= 0)
    raise NotExpressible(f"metric {metric!r} not mapped")


def _layout_invariance(inputs: LLMAnalysisInputs, gpu_hours: float, flops_efficiency) -> None:
    """The total-cost rows use a placeholder layout: check llm-analysis's gpu_hours ignores it."""
    _, la_config = _import_llm_analysis()
    other = LLMAnalysisInputs(**{**inputs.__dict__})
    other.parallelism = la_config.ParallelismConfig(tp_size=8, pp_size=2, dp_size=4, sp_size=8)
    other.kwargs = {**inputs.kwargs, "batch_size_per_gpu": 2, "global_batch_size": 64}
    alt = run_llm_analysis(other, flops_efficiency)["gpu_hours"]
    if not math.isclose(alt, gpu_hours, rel_tol=1e-3):
        raise NotExpressible(f"llm-analysis gpu_hours depends on the unpublished layout ({gpu_hours:.4g} vs "
                             f"{alt:.4g})")


def evaluate_row(row, catalog=None, flops_efficiency: float | None = None) -> dict:
    """llm-analysis's prediction for one row, or why it has none."""
    inputs = build_inputs(row, catalog)
    res = {"llm_analysis_predicted": math.nan, "llm_analysis_status": "ok",
           "llm_analysis_blockers": ", ".join(inputs.tags),
           "llm_analysis_approximations": "; ".join(inputs.approximations),
           "llm_analysis_config": inputs.describe(), "llm_analysis_fits": "",
           "llm_analysis_flops_efficiency": math.nan}
    if not inputs.expressible:
        res["llm_analysis_status"] = "not expressible: " + " | ".join(inputs.blockers)
        return res
    try:
        summary = run_llm_analysis(inputs, flops_efficiency)
        if row.text("category") == "train_total_cost":
            _layout_invariance(inputs, summary["gpu_hours"], flops_efficiency)
        res["llm_analysis_predicted"] = predict_metric(row, inputs, summary)
        if "memory_left_per_gpu" in summary and row.text("category") != "train_total_cost":
            res["llm_analysis_fits"] = "yes" if summary["memory_left_per_gpu"] >= 0 else "no"
        res["llm_analysis_flops_efficiency"] = summary.get("flops_efficiency", math.nan)
    except NotExpressible as exc:
        res["llm_analysis_status"] = f"not expressible: {exc}"
        res["llm_analysis_blockers"] = res["llm_analysis_blockers"] or str(exc)[:60]
    except AssertionError as exc:  # llm-analysis refuses (e.g. does not fit in GPU memory)
        res["llm_analysis_status"] = f"llm-analysis assertion: {str(exc)[:200]}"
        res["llm_analysis_blockers"] = "llm-analysis assertion"
    return res


# The comparison -------------------------------------------------------------------------------------

def compare(ids: list[str] | None = None, paths: list[str | Path] | None = None,
            flops_efficiency: float | None = None) -> pd.DataFrame:
    """One row per measurement: costmodel's and llm-analysis's predictions and relative errors.

    ``ids`` restricts the output to those measurement ids (costmodel is still validated in one pass).
    """
    from costmodel.validation.measurements import read_measurements, validate
    from hardware_catalog import default_catalog

    catalog = default_catalog()
    ours = validate(paths).set_index("id")
    rows = read_measurements(paths)
    if ids is not None:
        wanted = set(ids)
        missing = wanted - {r.text("id") for r in rows}
        if missing:
            raise KeyError(f"unknown measurement id(s): {', '.join(sorted(missing))}")
        rows = [r for r in rows if r.text("id") in wanted]
    records = []
    for row in rows:
        rid = row.text("id")
        cm = ours.loc[rid]
        rec = {
            "id": rid, "category": row.text("category"), "metric": row.text("metric"),
            "model": row.text("model"), "accelerator": row.text("accelerator"),
            "hardware_variant": bool(cm["hardware_variant"]),
            "measured": row.number("value"),
            "costmodel_predicted": float(cm["predicted"]),
            "costmodel_rel_error": float(cm["rel_error"]) if cm["status"] == "ok" else math.nan,
            "costmodel_status": cm["status"],
        }
        rec.update(evaluate_row(row, catalog, flops_efficiency))
        ok = rec["llm_analysis_status"] == "ok" and np.isfinite(rec["llm_analysis_predicted"])
        rec["llm_analysis_rel_error"] = ((rec["llm_analysis_predicted"] - rec["measured"]) / rec["measured"]
                                         if ok else math.nan)
        records.append(rec)
    cols = ["id", "category", "metric", "model", "accelerator", "hardware_variant", "measured",
            "costmodel_predicted", "costmodel_rel_error", "costmodel_status",
            "llm_analysis_predicted", "llm_analysis_rel_error", "llm_analysis_status", "llm_analysis_blockers",
            "llm_analysis_fits", "llm_analysis_flops_efficiency", "llm_analysis_approximations",
            "llm_analysis_config"]
    return pd.DataFrame(records, columns=cols)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per category: rows, rows each tool evaluated, and both tools' median/mean absolute percentage
    error on the rows both evaluated (plus each tool on all the rows it evaluated)."""
    out = []
    cm_ok = frame["costmodel_rel_error"].notna()
    la_ok = frame["llm_analysis_rel_error"].notna()
    for cat, grp in frame.groupby("category", sort=False):
        c, l = cm_ok[grp.index], la_ok[grp.index]
        both = grp[c & l]
        cm_ape = both["costmodel_rel_error"].abs() * 100
        la_ape = both["llm_analysis_rel_error"].abs() * 100
        la_all = grp.loc[l, "llm_analysis_rel_error"].abs() * 100
        cm_all = grp.loc[c, "costmodel_rel_error"].abs() * 100
        out.append({
            "category": cat, "rows": len(grp),
            "costmodel_evaluated": int(c.sum()), "llm_analysis_evaluated": int(l.sum()),
            "both_evaluated": len(both),
            "costmodel_median_ape_pct": cm_ape.median() if len(both) else math.nan,
            "costmodel_mean_ape_pct": cm_ape.mean() if len(both) else math.nan,
            "llm_analysis_median_ape_pct": la_ape.median() if len(both) else math.nan,
            "llm_analysis_mean_ape_pct": la_ape.mean() if len(both) else math.nan,
            "costmodel_median_ape_pct_all": cm_all.median() if len(cm_all) else math.nan,
            "llm_analysis_median_ape_pct_all": la_all.median() if len(la_all) else math.nan,
        })
    return pd.DataFrame(out)


# Output ---------------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x * 100:+.1f}%"


def _num(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.4g}"


def _fmt(x: float) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.1f}"


def per_row_table(frame: pd.DataFrame) -> str:
    lines = [f"{'id':8} {'metric':25} {'measured':>10} {'costmodel':>10} {'err':>8} {'llm-anal.':>10} "
             f"{'err':>8}  llm-analysis status"]
    for _, r in frame.iterrows():
        status = r["llm_analysis_status"]
        if status.startswith("not expressible"):
            status = "not expressible: " + r["llm_analysis_blockers"]
        lines.append(f"{r['id']:8} {r['metric']:25} {_num(r['measured']):>10} "
                     f"{_num(r['costmodel_predicted']):>10} {_pct(r['costmodel_rel_error']):>8} "
                     f"{_num(r['llm_analysis_predicted']):>10} {_pct(r['llm_analysis_rel_error']):>8}  {status}")
    return "\n".join(lines)


def summary_markdown(summary: pd.DataFrame) -> str:
    head = ("| category | rows | costmodel evaluated | llm-analysis evaluated | both | costmodel median APE % "
            "| costmodel mean APE % | llm-analysis median APE % | llm-analysis mean APE % "
            "| costmodel median APE % (all its rows) | llm-analysis median APE % (all its rows) |")
    lines = [head, "|" + "---|" * 11]
    for _, s in summary.iterrows():
        lines.append(
            f"| {s['category']} | {s['rows']} | {s['costmodel_evaluated']} | {s['llm_analysis_evaluated']} | "
            f"{s['both_evaluated']} | {_fmt(s['costmodel_median_ape_pct'])} | {_fmt(s['costmodel_mean_ape_pct'])} | "
            f"{_fmt(s['llm_analysis_median_ape_pct'])} | {_fmt(s['llm_analysis_mean_ape_pct'])} | "
            f"{_fmt(s['costmodel_median_ape_pct_all'])} | {_fmt(s['llm_analysis_median_ape_pct_all'])} |")
    return "\n".join(lines)


def _llm_analysis_version() -> str:
    try:
        from importlib.metadata import version
        return version("llm-analysis")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


def write_markdown(frame: pd.DataFrame, summary: pd.DataFrame, command: str, seconds: float,
                   flops_efficiency: float | None, path: Path = MD_PATH) -> None:
    eff = "llm-analysis default (1.0)" if flops_efficiency is None else f"{flops_efficiency:g} (override)"
    lines = [
        "# costmodel vs llm-analysis on the published measurements",
        "",
        f"Produced by `{command}` (run from the repository root with `.venv` active; {seconds:.1f} s; llm-analysis "
        f"{_llm_analysis_version()}, measurements from `data/validation/*.csv`).",
        "",
        "Each row's configuration is translated into llm-analysis's `ModelConfig`, `GPUConfig`, `DtypeConfig` "
        "and `ParallelismConfig` and run through `LLMAnalysis.training()` (training rows), `LLMAnalysis.inference()` "
        "(serving rows) or its weight-memory methods (weights-only row). The GPU figures are costmodel's catalog "
        "figures for the same accelerator (memory, HBM bandwidth, the peak of the row's 16-bit format, scale-up "
        "bandwidth/latency and scale-out bandwidth of the default system). "
        f"FLOPs efficiency: {eff}; HBM efficiency: llm-analysis default (1.0); no row states an efficiency setting. "
        "A row's `flash_attention=false` / `dropout=true` extras are passed as `flash_attn=False` / `softmax_dropout=True`.",
        "",
        "APE = |predicted - measured| / measured. Errors of each tool are compared on the rows both evaluated; "
        "the last two columns use every row each tool evaluated.",
        "",
        summary_markdown(summary),
        "",
        "## What llm-analysis 0.2.2 computes (read from its installed source)",
        "",
        *[f"- {note}" for note in LLM_ANALYSIS_NOTES],
        "",
        "## Rows llm-analysis cannot express",
        "",
    ]
    ne = frame[frame["llm_analysis_status"] != "ok"]
    lines.append(f"{len(ne)} of {len(frame)} rows; each row with every reason (short form), then the reasons "
                 "in full.")
    lines.append("")
    for _, r in ne.iterrows():
        lines.append(f"- **{r['id']}** ({r['category']}, {r['metric']}): {r['llm_analysis_blockers']}")
    lines += ["", "Reasons in full:", ""]
    reasons: dict[str, None] = {}
    for status in ne["llm_analysis_status"]:
        for reason in status.removeprefix("not expressible: ").split(" | "):
            reasons.setdefault(reason)
    lines += [f"- {reason}" for reason in reasons]
    lines += ["", "## Approximations made on evaluated rows", ""]
    ev = frame[frame["llm_analysis_status"] == "ok"]
    for _, r in ev.iterrows():
        if r["llm_analysis_approximations"]:
            lines.append(f"- **{r['id']}**: {r['llm_analysis_approximations']}")
    lines += ["", "## Per-row results", "",
              "| id | metric | measured | costmodel | costmodel err | llm-analysis | llm-analysis err | llm-analysis fits |",
              "|---|---|---|---|---|---|---|---|"]
    for _, r in ev.iterrows():
        lines.append(f"| {r['id']} | {r['metric']} | {_num(r['measured'])} | {_num(r['costmodel_predicted'])} | "
                     f"{_pct(r['costmodel_rel_error'])} | {_num(r['llm_analysis_predicted'])} | "
                     f"{_pct(r['llm_analysis_rel_error'])} | {r['llm_analysis_fits']} |")
    lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flops-efficiency", type=float, default=None,
                        help="override llm-analysis's flops_efficiency (default: its own default, 1.0)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write the result files")
    parser.add_argument("--ids", nargs="*", help="only these measurement ids")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    frame = compare(ids=args.ids, flops_efficiency=args.flops_efficiency)
    summary = summarize(frame)
    seconds = time.perf_counter() - t0
    print(per_row_table(frame))
    print()
    print(summary_markdown(summary))
    print()
    ne = frame[frame["llm_analysis_status"] != "ok"]
    print(f"{len(ne)} row(s) without an llm-analysis prediction (reasons in the .md / csv); "
          f"{len(frame) - len(ne)} evaluated; {seconds:.1f} s")
    if not args.no_write:
        command = "python benchmarks/compare_llm_analysis.py" + (" " + " ".join(argv if argv is not None
                                                                               else sys.argv[1:])).rstrip()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        frame.to_csv(CSV_PATH, index=False)
        write_markdown(frame, summary, command.strip(), seconds, args.flops_efficiency)
        print(f"wrote {CSV_PATH.relative_to(REPO)} and {MD_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
