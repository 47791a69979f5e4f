"""Command line: ``costmodel params|memory|...``. Thin over the API; no formula lives here."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from costmodel.faces.api import training_memory
from costmodel.specs.assumptions import AssumptionError, frameworks
from costmodel.formulas.params import active_parameter_count, parameter_count
from costmodel.specs.spec import ModelSpecError, format_validation_error, resolve_model

GIB = 2**30


class CliError(Exception):
    """An input problem reported as one line on stderr with exit code 2."""


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                 align_right: Sequence[str] = ()) -> str:
    """Plain-text table with a header and aligned columns."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def fmt(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if c in align_right else v.ljust(w)
                         for v, w, c in zip(values, widths, columns)).rstrip()

    lines = [fmt(columns), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in cells]
    return "\n".join(lines)


# params --------------------------------------------------------------------------------------------

def _cmd_params(args: argparse.Namespace) -> int:
    spec = resolve_model(args.model)
    total = parameter_count(spec)
    active = active_parameter_count(spec)
    breakdown = {k: int(round(float(v))) for k, v in total.items()}
    if args.format == "json":
        print(json.dumps({
            "model": spec.name,
            "total": int(round(float(total.total))),
            "active": int(round(float(active.total))),
            "breakdown": breakdown,
        }))
        return 0
    t = float(total.total)
    rows = [{"component": k, "parameters": f"{v:,}", "share": f"{v / t:.1%}",
             "active": f"{int(round(float(active[k]))):,}"} for k, v in breakdown.items()]
    rows.append({"component": "total", "parameters": f"{int(round(t)):,}", "share": "100.0%",
                 "active": f"{int(round(float(active.total))):,}"})
    print(f"{spec.name}: {t / 1e9:.3f} B parameters, {float(active.total) / 1e9:.3f} B active per token")
    print(format_table(rows, align_right=("parameters", "share", "active")))
    return 0


# memory --------------------------------------------------------------------------------------------

#: Flags that fix the parallel layout; ``costmodel train`` chooses the layout when none is given.
LAYOUT_FLAGS = ("tp", "pp", "vpp", "dp", "cp", "ep", "sp", "zero", "etp", "first_stage_layers",
                "last_stage_layers")
LAYOUT_DEFAULTS = {"tp": 1, "pp": 1, "vpp": 1, "dp": 1, "cp": 1, "ep": 1, "sp": False, "zero": 0,
                   "recompute": "none", "micro_batch": 1, "etp": None, "first_stage_layers": None,
                   "last_stage_layers": None}


def _add_training_flags(p: argparse.ArgumentParser, choose: bool = False) -> None:
    """Layout and setup flags. With ``choose`` (``train``) the layout flags, recompute and
    micro-batch default to None: not given, the planner chooses them."""
    d = {k: (None if choose else v) for k, v in LAYOUT_DEFAULTS.items()}
    tail = " (default: chosen)" if choose else ""
    g = p.add_argument_group("parallel layout" + (" (none given: the layout the planner would choose)"
                                                  if choose else ""))
    g.add_argument("--tp", type=int, default=d["tp"], help="tensor-parallel degree" + tail)
    g.add_argument("--pp", type=int, default=d["pp"], help="pipeline stages" + tail)
    g.add_argument("--vpp", type=int, default=d["vpp"], help="virtual stages per device (interleaved 1F1B)" + tail)
    g.add_argument("--dp", type=int, default=d["dp"], help="data-parallel degree" + tail)
    g.add_argument("--cp", type=int, default=d["cp"], help="context-parallel degree" + tail)
    g.add_argument("--ep", type=int, default=d["ep"], help="expert-parallel degree" + tail)
    g.add_argument("--sp", action="store_true", default=d["sp"], help="Megatron sequence parallelism")
    g.add_argument("--zero", type=int, default=d["zero"], choices=(0, 1, 2, 3), help="ZeRO stage / FSDP=3" + tail)
    g.add_argument("--etp", type=int, default=None,
                   help="expert tensor-parallel degree (Megatron-core; default: tp)")
    g.add_argument("--first-stage-layers", type=int, default=None,
                   help="blocks on the first pipeline stage (Megatron --decoder-first-pipeline-num-layers)")
    g.add_argument("--last-stage-layers", type=int, default=None,
                   help="blocks on the last pipeline stage (Megatron --decoder-last-pipeline-num-layers)")
    g.add_argument("--rank-order", default="tp-cp-dp-pp",
                   help="rank placement, innermost first (Megatron default tp-cp-dp-pp)")
    g = p.add_argument_group("training setup")
    g.add_argument("--precision", default="bf16", help="fp32, tf32, fp16, bf16 or fp8")
    g.add_argument("--optimizer", default="adamw",
                   help="adam, adamw, sgd, momentum, adagrad, lion or adafactor")
    g.add_argument("--grad-precision", default="param", help="param or fp32")
    g.add_argument("--optimizer-state-bits", type=int, default=32,
                   help="bits per optimizer-state element: 32, 16 or 8 (8-bit Adam)")
    g.add_argument("--master-weights", choices=("auto", "yes", "no"), default="auto",
                   help="fp32 master copy of the weights (auto: yes below 32-bit)")
    g.add_argument("--recompute", default=d["recompute"], help="none, selective or full" + tail)
    g.add_argument("--micro-batch", type=int, default=d["micro_batch"], help="sequences per micro-batch" + tail)
    g.add_argument("--seq-len", type=int, default=4096, help="tokens per sequence (default 4096, as plans)")
    g.add_argument("--global-batch", type=int, default=None,
                   help="sequences per optimizer step (default: about 4M tokens, as plans)")
    g.add_argument("--no-flash", action="store_true", help="attention stores the s x s matrix")
    g.add_argument("--dropout", action="store_true", help="dropout masks are stored")
    g.add_argument("--framework", default="nemo",
                   help=f"framework profile: {', '.join(sorted(frameworks()))}")
    g.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                   help="override an assumption (repeatable), e.g. --set cuda_context_bytes=0")
    g = p.add_argument_group("parameter-efficient fine-tuning")
    g.add_argument("--peft", default="none", help="none, lora or qlora (frozen base + low-rank adapters)")
    g.add_argument("--lora-rank", type=int, default=16, help="rank r of each LoRA adapter")
    g.add_argument("--lora-targets", default="all",
                   help="adapted layers: attention (q,k,v,o), all (MLP and experts too) or qv")
    g.add_argument("--base-weight-bits", type=int, default=None,
                   help="bits of the frozen base: 16, 8 or 4 (default 16 for lora, 4 for qlora)")


def _overrides(items: Sequence[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--set expects KNOB=VALUE, got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise CliError(f"--set {key}: {value!r} is not a number") from None
    return out


def _print_split(spec, layout) -> None:
    """The pipeline split and expert TP when they are not the plain even / etp = tp ones."""
    from costmodel.specs.layout import stage_split

    s = stage_split(spec.n_layers, layout.pp, layout.vpp, layout.first_stage_layers or 0,
                    layout.last_stage_layers or 0)
    first, middle, last = (int(float(x)) for x in (s.first, s.middle, s.last))
    if layout.pp > 1 and not first == middle == last:
        print(f"pipeline stages (blocks): first {first}, middle up to {middle}, last {last} "
              f"of {spec.n_layers}; the slowest stage sets the pace")
    if layout.etp is not None and layout.etp != layout.tp:
        print(f"expert tensor parallelism etp={layout.etp} (experts split over etp x ep = "
              f"{layout.etp * layout.ep} devices)")


def _layout_and_setup(args: argparse.Namespace):
    from costmodel.specs.layout import ParallelLayout
    from costmodel.specs.setup import TrainingSetup

    v = lambda k: LAYOUT_DEFAULTS[k] if getattr(args, k) is None else getattr(args, k)  # noqa: E731
    layout = ParallelLayout(tp=v("tp"), pp=v("pp"), vpp=v("vpp"), dp=v("dp"), cp=v("cp"),
                            ep=v("ep"), sequence_parallel=v("sp"), zero_stage=v("zero"),
                            rank_order=args.rank_order, etp=v("etp"),
                            first_stage_layers=v("first_stage_layers"),
                            last_stage_layers=v("last_stage_layers"))
    given = {k: getattr(args, k) for k in ("recompute", "micro_batch") if getattr(args, k) is not None}
    setup = TrainingSetup(precision=args.precision, optimizer=args.optimizer,
                          gradient_precision=args.grad_precision,
                          optimizer_state_bits=args.optimizer_state_bits,
                          master_weights={"auto": None, "yes": True, "no": False}[args.master_weights],
                          seq_len=args.seq_len,
                          global_batch=args.global_batch, flash_attention=not args.no_flash,
                          dropout=args.dropout, peft=args.peft, lora_rank=args.lora_rank,
                          lora_targets=args.lora_targets, base_weight_bits=args.base_weight_bits, **given)
    return layout, setup


def _cmd_memory(args: argparse.Namespace) -> int:
    spec = resolve_model(args.model)
    layout, setup = _layout_and_setup(args)
    mem = training_memory(spec, layout, setup, framework=args.framework,
                          overrides=_overrides(args.set))
    parts = {k: float(v) for k, v in mem.items()}
    total = float(mem.total)
    from costmodel.specs.setup import micro_batches

    from costmodel.faces.api import _n_params

    global_batch = micro_batches(layout, setup, _n_params(spec)) * setup.micro_batch * layout.dp
    capacity = _capacity_bytes(args.accelerator)
    fits = None if capacity is None else total <= capacity
    if args.format == "json":
        print(json.dumps({
            "model": spec.name,
            "layout": layout.model_dump(),
            "setup": setup.model_dump(),
            "global_batch": global_batch,
            "framework": args.framework,
            "total_bytes": total,
            "memory_per_device_bytes": total,
            "breakdown_bytes": parts,
            "accelerator": args.accelerator,
            "memory_capacity_bytes": capacity,
            "fits_in_memory": fits,
        }))
        return 0
    rows = [{"component": k, "GiB": f"{v / GIB:.2f}", "share": f"{v / total:.1%}" if total else "-"}
            for k, v in parts.items()]
    rows.append({"component": "total", "GiB": f"{total / GIB:.2f}", "share": "100.0%"})
    print(f"{spec.name}: peak training memory per device, {layout.n_devices} devices "
          f"(tp={layout.tp} pp={layout.pp} dp={layout.dp} cp={layout.cp} ep={layout.ep}, "
          f"ZeRO-{layout.zero_stage}), {setup.precision}, {setup.optimizer}, recompute={setup.recompute}, "
          f"micro-batch {setup.micro_batch} x {setup.seq_len} tokens, global batch {global_batch} "
          f"(pipeline stages hold their in-flight micro-batches), framework {args.framework}")
    print(format_table(rows, align_right=("GiB", "share")))
    if capacity is not None:
        print(f"{total / GIB:.1f} GiB of {capacity / GIB:.1f} GiB on {args.accelerator}: "
              f"{'fits' if fits else 'DOES NOT FIT'}")
    return 0


def _capacity_bytes(accelerator: str | None) -> float | None:
    if accelerator is None:
        return None
    from costmodel.tables.catalog import engine_catalog

    return float(engine_catalog().accelerator(accelerator).memory_bytes)


# train -------------------------------------------------------------------------------------------

def _train_layout(args: argparse.Namespace):
    """(layout or None, setup, n_devices) of the train flags: no layout flag -> None (chosen)."""
    layout, setup = _layout_and_setup(args)
    if args.devices is not None and args.devices < 1:
        raise CliError(f"--devices must be >= 1 (got {args.devices})")
    if all(getattr(args, k) is None for k in LAYOUT_FLAGS):
        return None, setup, args.devices
    if args.devices is not None and args.dp is None:
        rest = layout.tp * layout.pp * layout.cp
        if args.devices % rest:
            raise CliError(f"--devices {args.devices} is not a multiple of tp*pp*cp = {rest}")
        layout = layout.model_copy(update={"dp": args.devices // rest})
    return layout, setup, args.devices


def _user_catalog(args: argparse.Namespace):
    """The engine catalog with the user's ``--catalog`` files on top (None: the shipped one);
    a bad file is a CatalogError naming the file, line and column."""
    if not args.catalog:
        return None
    from costmodel.tables.catalog import engine_catalog

    return engine_catalog(args.catalog)


def _cmd_train(args: argparse.Namespace) -> int:
    from costmodel.faces.api import _n_params, estimate_training
    from costmodel.specs.setup import micro_batches

    layout, setup, n_devices = _train_layout(args)
    est = estimate_training(args.model, args.accelerator, layout, setup,
                            train_tokens=args.train_tokens, n_devices=n_devices, system=args.system,
                            offer=args.offer, pricing_model=args.pricing, framework=args.framework,
                            overrides=_overrides(args.set), catalog=_user_catalog(args))
    if args.format == "json":
        print(est.model_dump_json())
        return 0
    layout, setup = est.layout, est.setup
    global_batch = micro_batches(layout, setup, _n_params(resolve_model(args.model))) * setup.micro_batch * layout.dp
    print(f"{est.model} on {est.n_devices} x {est.accelerator} ({est.system}), framework {est.framework}")
    print(f"layout tp={layout.tp} pp={layout.pp} vpp={layout.vpp} dp={layout.dp} cp={layout.cp} "
          f"ep={layout.ep} sp={layout.sequence_parallel} ZeRO-{layout.zero_stage}; {setup.precision}, "
          f"recompute={setup.recompute}, micro-batch {setup.micro_batch}, "
          f"global batch {global_batch} x {setup.seq_len} tokens")
    _print_split(resolve_model(args.model), layout)
    if est.chosen_layout is not None:
        c = est.chosen_layout
        print(f"layout chosen: {c['rule']}; {c['feasible']:,} of {c['searched']:,} configurations "
              f"feasible (the planner's search space; give --tp/--pp/--dp/... to fix it)")
        print(f"global batch: {c['batch']}")
    print()
    rows = [{"component": k, "seconds": f"{v:.4f}",
             "share": f"{v / est.step_time_s:.1%}" if est.step_time_s else "-"}
            for k, v in est.step_breakdown_s.items()]
    rows.append({"component": "step time", "seconds": f"{est.step_time_s:.4f}", "share": "100.0%"})
    print(format_table(rows, align_right=("seconds", "share")))
    if est.communication:
        print()
        crow = [{"collective": c["collective"], "group": c["group_size"], "fabric": c["fabric"],
                 "MB/call": f"{c['bytes_per_call'] / 1e6:,.2f}", "calls/step": f"{c['calls_per_step']:,.0f}",
                 "GB/step": f"{c['bytes_per_step'] / 1e9:,.2f}", "time_s": f"{c['time_per_step_s']:.4f}",
                 "exposed_s": f"{c['exposed_per_step_s']:.4f}"} for c in est.communication]
        print(format_table(crow, align_right=("group", "MB/call", "calls/step", "GB/step", "time_s", "exposed_s")))
        print()
    print(f"step time range (all comm hidden .. none hidden): {est.step_time_lower_s:.3f} .. "
          f"{est.step_time_upper_s:.3f} s")
    print(f"throughput {est.tokens_per_s_per_device:,.0f} tokens/s/device, "
          f"{est.model_tflops_per_device:.1f} model TFLOP/s/device, MFU {est.mfu:.1%}, HFU {est.hfu:.1%}")
    mem = est.memory_per_device_bytes / GIB
    cap = est.memory_capacity_bytes / GIB
    print(f"memory {mem:.1f} GiB of {cap:.1f} GiB per device: "
          f"{'fits' if est.fits_in_memory else 'DOES NOT FIT'}")
    print()
    print(f"run: {est.train_tokens:.4g} tokens = {est.steps:,.0f} steps, {est.time_total_hours:,.1f} h "
          f"({est.time_total_hours / 24:,.1f} days; range {est.time_total_lower_hours / 24:,.1f}"
          f"..{est.time_total_upper_hours / 24:,.1f} days), {est.device_hours:,.0f} device-hours, "
          + (f"{est.energy_kwh:,.0f} kWh" if est.energy_kwh == est.energy_kwh
             else f"energy unknown (no TDP for {est.accelerator} in the catalog)"))
    if est.cost_total_usd is not None:
        print(f"cost: ${est.cost_total_usd:,.0f} on {est.offer} at ${est.usd_per_device_hour:.2f}/device-hour "
              f"(compute ${est.cost_compute_usd:,.0f}, checkpoint storage ${est.cost_storage_usd:,.0f}); "
              f"billed: {est.billing}, {est.billed_device_hours:,.0f} device-hours")
        print("the offer is the one with the lowest bill for this run (whole instances billed)"
              if args.offer is None else "the offer named with --offer")
    else:
        print(f"cost: {est.cost_note}")
    return 0


# serve ---------------------------------------------------------------------------------------------

def _serving_load(args: argparse.Namespace):
    from costmodel.specs.serving import ServingLoad

    if args.rps is None:
        return None
    return ServingLoad(requests_per_s=args.rps, input_len=args.input_len, output_len=args.output_len,
                       peak_to_mean=args.peak_to_mean, hourly_profile=_profile(args.hourly_profile),
                       ttft_p95_s=args.ttft_p95_s,
                       tpot_p95_s=args.tpot_p95_s, e2e_p95_s=args.e2e_p95_s,
                       max_utilization=args.max_utilization)


def _profile(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise CliError(f"--hourly-profile: {text!r} is not 24 comma-separated numbers") from None


#: (--weight-bits, --activation-bits) -> quantization scheme; fp8/mxfp4 via --precision.
_BITS_SCHEMES = {(8, 16): "w8a16", (4, 16): "w4a16", (8, 8): "int8", (4, 4): "nvfp4"}


def _scheme(args: argparse.Namespace) -> str:
    """The scheme named by --precision, or implied by --weight-bits/--activation-bits."""
    if args.weight_bits is None and args.activation_bits is None:
        return args.precision
    bits = (args.weight_bits or 16, args.activation_bits or 16)
    if bits == (16, 16):
        return args.precision
    if bits in ((8, 8), (4, 4)) and args.precision in ("fp8", "mxfp4"):
        return args.precision
    if bits not in _BITS_SCHEMES:
        raise CliError(f"--weight-bits {bits[0]} --activation-bits {bits[1]}: no such scheme; "
                       "allowed pairs: 16/16, 8/16, 4/16, 8/8, 4/4")
    return _BITS_SCHEMES[bits]


def _cmd_serve(args: argparse.Namespace) -> int:
    from costmodel.faces.serving_api import estimate_serving
    from costmodel.specs.serving import ReplicaLayout, ServingSetup

    layout = ReplicaLayout(tp=args.tp, pp=args.pp, ep=args.ep, disaggregated=args.disaggregated)
    setup = ServingSetup(precision=_scheme(args), kv_bits=args.kv_bits, batch=args.batch,
                         group_size=args.group_size, sparsity=args.sparsity,
                         input_len=args.input_len, output_len=args.output_len)
    est = estimate_serving(args.model, args.accelerator, layout, setup, load=_serving_load(args),
                           system=args.system, offer=args.offer, pricing_model=args.pricing,
                           overrides=_overrides(args.set))
    if args.format == "json":
        print(est.model_dump_json())
        return 0
    _print_serving(est)
    return 0


def _print_serving(est) -> None:
    print(f"{est.model} on {est.devices_per_replica} x {est.accelerator} per replica ({est.system}); "
          f"tp={est.layout.tp} pp={est.layout.pp} ep={est.layout.ep}, {est.setup.precision} weights, "
          f"{est.setup.kv_bits}-bit KV cache; {est.setup.input_len} in / {est.setup.output_len} out tokens")
    mem, cap = est.memory_per_device_bytes / GIB, est.memory_capacity_bytes / GIB
    print(f"memory {mem:.1f} GiB of {cap:.1f} GiB per device at batch {est.batch} "
          f"(largest batch that fits: {est.max_batch}): {'fits' if est.fits_in_memory else 'DOES NOT FIT'}")
    print()
    rows = [{"phase": "prefill (1 request)", "component": k, "seconds": f"{v:.5f}"}
            for k, v in est.prefill_breakdown_s.items()]
    rows += [{"phase": f"decode iteration (batch {est.batch})", "component": k, "seconds": f"{v:.5f}"}
             for k, v in est.decode_breakdown_s.items()]
    print(format_table(rows, align_right=("seconds",)))
    print()
    print(f"TTFT {est.ttft_s * 1e3:,.1f} ms (no queueing), TPOT {est.tpot_s * 1e3:,.2f} ms; decode "
          f"linear layers {est.gemms_memory_bound_share:.0%} memory-bound ({est.decode_bound}-bound)")
    print(f"throughput {est.output_tokens_per_s_per_replica:,.0f} output tokens/s per replica, "
          f"{est.output_tokens_per_s_per_device:,.0f} per device; {est.requests_per_s_per_replica:.3g} "
          f"requests/s per replica")
    if est.replicas is not None:
        print(f"load: {est.replicas} replicas ({est.n_devices} devices), p95 TTFT {est.ttft_p95_s:.3f} s, "
              f"p95 end-to-end {est.e2e_p95_s:.2f} s, utilisation {est.utilization:.0%}"
              + (f"; {est.slo_note}" if est.slo_note else ""))
    if est.cost_per_month_usd is not None:
        print(f"cost: ${est.cost_per_month_usd:,.0f} per month on {est.offer} (billed: {est.billing}); "
              f"${est.usd_per_million_input_tokens:.3f} per million input, "
              f"${est.usd_per_million_output_tokens:.3f} per million output tokens")
    elif est.cost_note:
        print(f"cost: {est.cost_note}")


def _add_serving_flags(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_argument_group("serving load and objectives")
    g.add_argument("--input-len", type=int, required=required, help="prompt tokens per request (mean)")
    g.add_argument("--output-len", type=int, required=required, help="output tokens per request (mean)")
    g.add_argument("--peak-to-mean", type=float, default=1.0, help="peak over mean request rate")
    g.add_argument("--ttft-p95-s", type=float, help="p95 time-to-first-token objective (s)")
    g.add_argument("--tpot-p95-s", type=float, help="p95 time-per-output-token objective (s)")
    g.add_argument("--e2e-p95-s", type=float, help="p95 end-to-end latency objective (s)")
    g.add_argument("--max-utilization", type=float, default=0.8,
                   help="highest busy share of the batch slots at peak (default 0.8)")
    g.add_argument("--hourly-profile", default=None, metavar="V0,...,V23",
                   help="24 relative request rates (hour 0..23): size for the busiest hour and price "
                        "hourly scaling beside the fixed fleet")


# plan ----------------------------------------------------------------------------------------------

def _csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def scenario_from_args(args: argparse.Namespace):
    """A Scenario from a file (if given) with the command-line flags applied on top."""
    from costmodel.specs.scenario import Scenario, ScenarioError

    data: dict[str, Any] = {}
    if args.scenario:
        data = Scenario.load(args.scenario).to_dict()
    job = dict(data.get("job") or {})
    cons = dict(data.get("constraints") or {})
    search = dict(data.get("search") or {})
    if args.model:
        data["model"] = args.model
    for flag, key in (("train_tokens", "train_tokens"), ("seq_len", "seq_len"),
                      ("global_batch", "global_batch"), ("job_kind", "kind"),
                      ("framework", "framework"), ("optimizer", "optimizer"),
                      ("optimizer_state_bits", "optimizer_state_bits"),
                      ("grad_precision", "gradient_precision"), ("peft", "peft"),
                      ("lora_rank", "lora_rank"), ("lora_targets", "lora_targets"),
                      ("base_weight_bits", "base_weight_bits")):
        if getattr(args, flag) is not None:
            job[key] = getattr(args, flag)
    for flag, key in (("deadline_days", "deadline_days"), ("budget_usd", "budget_usd"),
                      ("max_devices", "max_devices")):
        if getattr(args, flag) is not None:
            cons[key] = getattr(args, flag)
    if cons.get("deadline_days") == "none":
        cons["deadline_days"] = None
    for flag, key in (("kinds", "kinds"), ("providers", "providers"), ("pricing", "pricing_models"),
                      ("regions", "regions"), ("price_quality", "price_qualities")):
        if getattr(args, flag) is not None:
            cons[key] = _csv_list(getattr(args, flag))
    if args.accelerators is not None:
        search["accelerators"] = _csv_list(args.accelerators)
    for name in SEARCH_LIST_FLAGS:
        value = getattr(args, f"search_{name}")
        if value is not None:
            search[name] = _search_list(name, value)
    if args.objective is not None:
        data["objective"] = args.objective
    if args.set:
        data["overrides"] = {**dict(data.get("overrides") or {}), **_overrides(args.set)}
    if args.serve_rps is not None:
        job = _serving_job(args, job)
    if args.compression is not None:
        search.update(_compression(args.compression))
    if args.max_quality_loss is not None:
        cons["max_quality_loss"] = args.max_quality_loss
    if "model" not in data:
        raise ScenarioError("give a SCENARIO file or --model")
    if job.get("kind") != "serve" and "train_tokens" not in job:
        raise ScenarioError("give a SCENARIO file, --train-tokens, or --serve-rps")
    data.update(job=job, constraints=cons, search=search)
    return Scenario.from_dict(data, where=args.scenario or "command line")


#: Search-space lists a plan's flags can narrow (``--tp 1,2,4``): name -> element type.
SEARCH_LIST_FLAGS = {"device_counts": int, "tp": int, "pp": int, "vpp": int, "cp": int, "ep": int,
                     "zero_stage": int, "recompute": str, "micro_batch": int, "precision": str,
                     "batch": int, "quantization": str, "kv_bits": int}


def _search_list(name: str, text: str) -> list:
    from costmodel.specs.scenario import ScenarioError

    kind = SEARCH_LIST_FLAGS[name]
    items = _csv_list(text) or []
    try:
        return [kind(x) for x in items]
    except ValueError:
        raise ScenarioError(f"--{name.replace('_', '-')}: {text!r} is not a comma-separated list of "
                            f"{'integers' if kind is int else 'names'}") from None


def _deadline(text: str) -> float | str | None:
    if text.strip().lower() in ("none", "null"):
        return "none"
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days, 'auto' or 'none'") from None


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of processes") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} processes; give 1 or more")
    return n


def _compression(text: str) -> dict[str, list]:
    """``--compression none|all|LIST``: the serving compression choices to search. LIST names
    quantization schemes, sparsity patterns and kv8/kv4; the uncompressed baseline is kept."""
    from costmodel.specs.scenario import ScenarioError
    from costmodel.specs.serving import SCHEMES, SPARSITIES

    if text == "none":
        return {"quantization": ["bf16"], "sparsity": ["none"], "kv_bits": [16]}
    if text == "all":
        return {"quantization": [s for s in SCHEMES if s not in ("fp32", "tf32")],
                "sparsity": list(SPARSITIES), "kv_bits": [16, 8, 4]}
    quant, sparse, kv = ["bf16"], ["none"], [16]
    for item in filter(None, (x.strip() for x in text.split(","))):
        if item in SCHEMES:
            quant.append(item)
        elif item in SPARSITIES:
            sparse.append(item)
        elif item in ("kv8", "kv4"):
            kv.append(int(item[2:]))
        else:
            raise ScenarioError(f"--compression: unknown choice {item!r}; allowed: none, all, or a list of "
                                f"{', '.join(SCHEMES)}, {', '.join(SPARSITIES[1:])}, kv8, kv4")
    return {"quantization": sorted(set(quant), key=quant.index), "sparsity": sorted(set(sparse), key=sparse.index),
            "kv_bits": sorted(set(kv), reverse=True)}


def _serving_job(args: argparse.Namespace, job: dict[str, Any]) -> dict[str, Any]:
    """A serving job from the plan flags (``--serve-rps`` and the lengths and objectives)."""
    from costmodel.specs.scenario import ScenarioError

    if args.input_len is None or args.output_len is None:
        raise ScenarioError("--serve-rps needs --input-len and --output-len")
    load = {"requests_per_s": args.serve_rps, "input_len": args.input_len, "output_len": args.output_len,
            "peak_to_mean": args.peak_to_mean, "max_utilization": args.max_utilization,
            "hourly_profile": _profile(args.hourly_profile)}
    for key in ("ttft_p95_s", "tpot_p95_s", "e2e_p95_s"):
        if getattr(args, key) is not None:
            load[key] = getattr(args, key)
    job = {k: v for k, v in job.items() if k not in ("train_tokens", "seq_len", "global_batch")}
    return {**job, "kind": "serve", "load": load}


class _Progress:
    """A progress bar on stderr for searches of more than one chunk (tqdm: it redraws in place on a
    terminal and stays silent when stderr is a file or a pipe, so logs get no carriage returns)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        if self.bar is None:
            if done == total:
                return  # a single-chunk search finishes before a bar is worth drawing
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=" configs", unit_scale=True, desc="searching",
                            file=sys.stderr, disable=None, leave=False)
        self.bar.update(done - self.bar.n)
        if done == total:
            self.bar.close()


def _cmd_plan(args: argparse.Namespace) -> int:
    from costmodel.search.grid import plan
    from costmodel.faces.report import duration_text, plans_table, write_reports

    sc = scenario_from_args(args)
    if args.save_scenario:
        sc.save(args.save_scenario)
    result = plan(sc, top=args.top, progress=_Progress(not args.no_progress), catalog=_user_catalog(args),
                  workers=args.workers)
    table = plans_table(result)
    print(_plan_heading(sc))
    print(f"searched {result.n_configurations:,} configurations x offers = {result.n_plans:,} plans "
          f"in {result.seconds:.2f} s; {int(result.context['feasible']):,} feasible")
    if table.empty:
        print(_closest(result))
    else:
        show = table.head(args.top)
        rows = _serving_rows(show) if sc.job.kind == "serve" else [{
            "rank": r["rank"], "accelerator": r["accelerator"], "offer": f"{r['provider']} {r['offer']}",
            "pricing": r["pricing_model"], "devices": r["n_devices"],
            "tp/pp/vpp/dp/cp/ep": f"{r['tp']}/{r['pp']}/{r['vpp']}/{r['dp']}/{r['cp']}/{r['ep']}",
            "zero": r["zero_stage"], "recompute": r["recompute"], "mb": r["micro_batch"],
            "prec": r["precision"], "time": duration_text(r["time_total_hours"]),
            "cost_usd": f"{r['cost_total_usd']:,.0f}", "mem_gib": f"{r['memory_per_device_gib']:.1f}",
            "mfu": f"{r['mfu']:.1%}",
        } for _, r in show.iterrows()]
        print(format_table(rows, align_right=("rank", "devices", "time", "cost_usd", "mem_gib", "mfu",
                                              "replicas", "usd_month", "ttft_p95", "usd_per_m_out",
                                              "api_usd_per_m_out")))
    knee = result.knee
    if knee is not None and not table.empty:
        axes = result.context.get("job") == "serve"
        print(f"Pareto knee (best trade of cost against {'latency' if axes else 'time'}): "
              f"{knee['accelerator']} x{knee['n_devices']} on {knee['provider']} {knee['offer']}, "
              + (f"${knee['cost_per_month_usd']:,.0f}/month, p95 e2e {knee['e2e_p95_s']:.2f} s" if axes else
                 f"${knee['cost_total_usd']:,.0f}, {duration_text(knee['time_total_hours'])}"))
    if "efficiency_basis" in table.columns and not table.empty:
        # Say when the ranking rests on parts no measured training run supports.
        shown = table.head(args.top).drop_duplicates(["accelerator", "efficiency_basis"])
        for acc, basis in zip(shown["accelerator"], shown["efficiency_basis"]):
            print(f"GEMM efficiency of {acc}: {basis}")
    if not result.infeasible.empty:
        print()
        print(format_table([{"infeasible because": r["reason"], "plans": f"{r['plans']:,}"}
                            for _, r in result.infeasible.iterrows()], align_right=("plans",)))
    if args.csv:
        paths = write_reports(result, args.csv)
        print()
        for kind, path in paths.items():
            print(f"wrote {kind}: {path}")
    return 0


def _closest(result) -> str:
    """Nothing feasible: how close the search came and which limit binds."""
    near = result.context.get("closest") or {}
    if not near:
        return "no feasible plan: see the reasons below"
    binding = sorted(((v, k.split(":", 1)[1]) for k, v in near.items() if k.startswith("binding:")), reverse=True)
    parts = [f"{name} ({n:,} plans)" for n, name in binding]
    c = result.scenario.constraints
    if "time_total_hours" in near:
        return (f"no feasible plan. The fastest plan found takes {near['time_total_hours'] / 24:,.1f} days "
                f"(deadline {c.deadline_for(result.scenario.job.kind)} days); the cheapest costs "
                f"${near['cost_total_usd']:,.0f} (budget {c.budget_usd or 'none'}). Binding: {', '.join(parts)}")
    return (f"no feasible plan. The cheapest plan found costs ${near.get('cost_per_month_usd', float('nan')):,.0f} "
            f"per month (budget {c.budget_usd or 'none'}). Binding: {', '.join(parts)}")


def _plan_heading(sc) -> str:
    from costmodel.jobs.train import batch_sequences

    job = sc.job
    if job.kind == "serve":
        ld = job.load
        return (f"{sc.model_spec().name}: serve {ld.requests_per_s:g} requests/s (peak x{ld.peak_factor:g}), "
                f"{ld.input_len} in / {ld.output_len} out tokens; objective {sc.objective}")
    deadline = sc.constraints.deadline_for(job.kind)
    auto = " (default)" if sc.constraints.deadline_days == "auto" else ""
    return (f"{sc.model_spec().name}: {job.kind} on {job.train_tokens:.4g} tokens, "
            f"{batch_sequences(sc)} x {job.seq_len}-token sequences per step, framework "
            f"{job.framework}; objective {sc.objective}; deadline "
            f"{'none' if deadline is None else f'{deadline:g} days{auto}'}; memory headroom "
            f"{sc.constraints.min_memory_headroom:.0%}")


def _serving_rows(show) -> list[dict[str, Any]]:
    return [{
        "rank": r["rank"], "accelerator": r["accelerator"], "offer": f"{r['provider']} {r['offer']}",
        "pricing": r["pricing_model"], "tp/pp/ep": f"{r['tp']}/{r['pp']}/{r['ep']}",
        "prec": r["precision"], "kv": r["kv_bits"], "batch": r["batch_size"],
        "pools": "P/D" if r["disaggregated"] else "one", "replicas": r["replicas"],
        "devices": r["n_devices"], "ttft_p95": f"{r['ttft_p95_s']:.3f}", "tpot": f"{r['tpot_p95_s']:.4f}",
        "usd_month": f"{r['cost_per_month_usd']:,.0f}",
        "usd_per_m_out": f"{r['usd_per_million_output_tokens']:.3f}",
        "api_usd_per_m_out": "" if r["api_usd_per_million_output_tokens"] != r["api_usd_per_million_output_tokens"]
        else f"{r['api_usd_per_million_output_tokens']:.3f}",
    } for _, r in show.iterrows()]


# validate / calibrate --------------------------------------------------------------------------------

def _cmd_validate(args: argparse.Namespace) -> int:
    from costmodel.validation.measurements import summarize, summarize_by, validate

    if args.cv:
        from costmodel.validation.calibration import cross_validate

        results = cross_validate(args.files or None)
    else:
        results = validate(args.files or None)
    if args.format == "json":
        records = []
        for r in results.to_dict("records"):
            ok = r["status"] == "ok"
            rec = {"id": r["id"], "category": r["category"], "metric": r["metric"],
                   "measured": r["measured"],
                   "predicted": r["predicted"] if ok else None,
                   "rel_error": r["rel_error"] if ok else None,
                   "status": r["status"]}
            if args.cv:
                rec.update(source=r["source"], cv_predicted=r["cv_predicted"] if ok else None,
                           cv_rel_error=r["cv_rel_error"] if ok else None)
            records.append(rec)
        print(json.dumps(records))
        return 0
    if args.format == "csv":
        from costmodel.faces.report import guard_frame

        guard_frame(results).to_csv(sys.stdout, index=False)
        return 0
    rows = []
    for r in results.to_dict("records"):
        ok = r["status"] == "ok"
        row = {"id": r["id"], "metric": r["metric"], "framework": r["framework"] or "-",
               "accelerator": r["accelerator"] or "-", "measured": f"{r['measured']:.4g}",
               "predicted": f"{r['predicted']:.4g}" if ok else "-",
               "rel_error": f"{r['rel_error']:+.1%}" if ok else "-"}
        if args.cv:
            row["cv_rel_error"] = f"{r['cv_rel_error']:+.1%}" if ok else "-"
        row.update({"status": "ok" if ok else r["status"], "defaults used": r["defaults"] or "-"})
        rows.append(row)
    print(format_table(rows, align_right=("measured", "predicted", "rel_error", "cv_rel_error")))
    print()
    summary = summarize(results)
    srows = []
    for r in summary.to_dict("records"):
        row = {"category": r["category"], "rows": r["rows"], "evaluated": r["evaluated"],
               "median_ape": f"{r['median_ape_pct']:.1f}%" if r["evaluated"] else "-"}
        if args.cv:
            row["cv_median_ape"] = f"{r['cv_median_ape_pct']:.1f}%" if r["evaluated"] else "-"
        row.update({"mean_ape": f"{r['mean_ape_pct']:.1f}%" if r["evaluated"] else "-",
                    "worst": f"{r['worst_id']} ({r['worst_ape_pct']:.1f}%)" if r["evaluated"] else "-"})
        srows.append(row)
    print(format_table(srows, align_right=("rows", "evaluated", "median_ape", "cv_median_ape", "mean_ape")))
    print()
    # Misses cluster by stack and part: the same summary per (category, framework, accelerator).
    by = summarize_by(results, ("category", "framework", "accelerator"))
    print(format_table([{**{k: r[k] for k in ("category", "framework", "accelerator", "evaluated")},
                         "median_ape": f"{r['median_ape_pct']:.1f}%",
                         **({"cv_median_ape": f"{r['cv_median_ape_pct']:.1f}%"} if args.cv else {})}
                        for r in by.to_dict("records")],
                       align_right=("evaluated", "median_ape", "cv_median_ape")))
    if args.cv:
        print("\ncv: leave one source out (costmodel.validation.calibration.cross_validate): each "
              "source whose rows set a fitted parameter is refitted without them and predicted")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from costmodel.validation.calibration import fit, median_abs_error_pct, write_fitted

    result = fit(args.files or None)
    if not result.rows_used:
        from costmodel.validation.calibration import MIN_FIT_ROWS, REFERENCE_FRAMEWORKS

        raise ValueError(
            f"nothing to fit: no (compute die, format) has {MIN_FIT_ROWS} or more train_throughput rows "
            f"on the catalog's exact hardware with a reference framework ({', '.join(REFERENCE_FRAMEWORKS)})"
            + ("; nothing written" if args.write else ""))
    rows = [{"accelerator": a, "quantity": q, "precision": f, "fitted": f"{v:.3f}"}
            for (a, q, f), v in sorted(result.values.items())]
    rows += [{"accelerator": f"framework {fw}", "quantity": "matmul_efficiency_scale",
              "precision": "", "fitted": f"{v:.3f}"} for fw, v in result.framework_scales.items()]
    print(format_table(rows))
    print(f"rows used: {len(result.rows_used)}; median |error| on them "
          f"{median_abs_error_pct(result.before, result.rows_used):.1f}% before, {median_abs_error_pct(result.after, result.rows_used):.1f}% after")
    if args.write:
        path = write_fitted(result, args.write)
        print(f"wrote {path} and {path.parent / 'framework_knobs.yaml'}")
    return 0


# entry point ----------------------------------------------------------------------------------------

def _add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="prefill, decode, latency, throughput and memory of one serving replica")
    p.add_argument("model", help="preset name or path to a config.json")
    p.add_argument("--accelerator", required=True, help="catalog id, e.g. h100-sxm5-80gb")
    p.add_argument("--system", default=None, help="catalog system id (default: the part's default)")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree of a replica")
    p.add_argument("--pp", type=int, default=1, help="pipeline stages of a replica")
    p.add_argument("--ep", type=int, default=1, help="expert parallelism: 1 or tp")
    p.add_argument("--disaggregated", action="store_true",
                   help="separate prefill and decode pools of such replicas (with --rps)")
    p.add_argument("--batch", type=int, default=None, help="sequences per replica (default: most that fit)")
    p.add_argument("--precision", default="bf16",
                   help="quantization scheme: bf16, fp16, fp32, fp8, int8 (W8A8), w8a16, w4a16, nvfp4, mxfp4")
    p.add_argument("--group-size", type=int, default=None, help="weights per scale group (w4a16: 128)")
    p.add_argument("--weight-bits", type=int, default=None, help="16, 8 or 4 (with --activation-bits: a scheme)")
    p.add_argument("--activation-bits", type=int, default=None, help="16, 8 or 4")
    p.add_argument("--sparsity", default="none", help="weight sparsity: none, 2:4, unstructured-50")
    p.add_argument("--kv-bits", type=int, default=16, help="KV-cache bits: 16, 8 or 4")
    p.add_argument("--rps", type=float, default=None, help="requests/s to serve (adds replicas and cost)")
    p.add_argument("--offer", default=None, help="instance/SKU to price with (default: the lowest bill)")
    p.add_argument("--pricing", default="on-demand", help="pricing model of the offer")
    p.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE", help="override an assumption")
    _add_serving_flags(p, required=True)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_serve)


def _add_plan_parser(sub) -> None:
    p = sub.add_parser("plan", help="search every training or serving configuration and rank the feasible ones")
    p.add_argument("scenario", nargs="?", help="scenario YAML/JSON (flags below override it)")
    p.add_argument("--catalog", action="append", metavar="FILE", default=None,
                   help="your own catalog file (CSV with a shipped file's header, or YAML; "
                        "docs/catalog.md) merged over the shipped catalog; repeat for several")
    p.add_argument("--model", help="preset name or path to a config.json")
    p.add_argument("--train-tokens", type=float, help="tokens of the whole run")
    p.add_argument("--seq-len", type=int, help="tokens per sequence")
    p.add_argument("--global-batch", type=int, help="sequences per optimizer step")
    p.add_argument("--job-kind", choices=("pretrain", "finetune"), help="training job kind")
    p.add_argument("--serve-rps", type=float, help="plan serving this many requests/s (mean)")
    p.add_argument("--compression", default=None,
                   help="serving compression to search: none, all, or a list such as w4a16,fp8,2:4,kv8 "
                        "(default: the quantization schemes, no sparsity, KV at 16/8/4 bits)")
    p.add_argument("--max-quality-loss", type=float, default=None,
                   help="exclude compression whose published degradation exceeds this fraction or is unknown")
    _add_serving_flags(p, required=False)
    p.add_argument("--framework", help="framework profile (default nemo)")
    p.add_argument("--optimizer", help="adam, adamw, sgd, momentum, adagrad, lion or adafactor")
    p.add_argument("--optimizer-state-bits", type=int, help="32, 16 or 8 (8-bit Adam)")
    p.add_argument("--grad-precision", help="gradients in the parameter format (param) or fp32")
    p.add_argument("--peft", help="none, lora or qlora (fine-tune low-rank adapters on a frozen base)")
    p.add_argument("--lora-rank", type=int, help="rank r of each LoRA adapter (default 16)")
    p.add_argument("--lora-targets", help="attention (q,k,v,o), all (default) or qv")
    p.add_argument("--base-weight-bits", type=int,
                   help="frozen base bits: 16, 8 or 4 (default 16 for lora, 4 for qlora)")
    p.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                   help="override an assumption knob (repeatable); see data/assumptions.yaml")
    p.add_argument("--deadline-days", type=_deadline,
                   help="wall-clock limit of a training run in days, 'auto' (default: 90 for pre-training, "
                        "14 for fine-tuning) or 'none'")
    p.add_argument("--budget-usd", type=float, help="total cost limit")
    p.add_argument("--max-devices", type=int, help="largest device count")
    p.add_argument("--kinds", help="accelerator kinds, e.g. gpu,tpu,asic,fpga")
    p.add_argument("--providers", help="comma-separated providers")
    p.add_argument("--regions", help="comma-separated regions")
    p.add_argument("--pricing", help="pricing models, e.g. on-demand,spot,commit-1y,commit-3y,capacity-block")
    p.add_argument("--accelerators", help="comma-separated accelerator ids to search")
    p.add_argument("--price-quality", help="allowed price sources: first-party,third-party,user")
    g = p.add_argument_group("search space (comma-separated lists; default: the planner's)")
    for name in SEARCH_LIST_FLAGS:
        flag = "--zero" if name == "zero_stage" else f"--{name.replace('_', '-')}"
        g.add_argument(flag, dest=f"search_{name}", metavar="LIST", help=f"search.{name}")
    p.add_argument("--objective", choices=("cost", "time", "cost-per-token", "energy"))
    p.add_argument("--top", type=int, default=10, help="plans to print and report")
    p.add_argument("--csv", help="write the wide report here, plus _breakdown.csv and _metadata.json")
    p.add_argument("--save-scenario", help="write the resolved scenario to this YAML/JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="processes to search with (default: COSTMODEL_WORKERS, else 1); the result "
                        "does not depend on it")
    p.set_defaults(func=_cmd_plan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="costmodel",
        description="Cost, time and memory estimates for training and serving transformer models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("params", help="parameter count by component")
    p.add_argument("model", help="preset name (see `costmodel presets`) or path to a config.json")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_params)

    p = sub.add_parser("memory", help="peak training memory per device by component")
    p.add_argument("model", help="preset name or path to a config.json")
    p.add_argument("--accelerator", default=None, help="catalog id: also say whether it fits")
    _add_training_flags(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_memory)

    p = sub.add_parser("train", help="time, memory and cost of a training run (the layout the planner "
                       "would choose, or the one given)")
    p.add_argument("model", help="preset name or path to a config.json")
    p.add_argument("--accelerator", required=True, help="catalog id, e.g. h100-sxm5-80gb")
    p.add_argument("--catalog", action="append", metavar="FILE", default=None,
                   help="your own catalog file merged over the shipped catalog; repeat for several")
    p.add_argument("--devices", type=int, default=None,
                   help="device count (no layout flags: the fastest layout at this count; neither: "
                   "the fewest device-hours within the default deadline)")
    p.add_argument("--system", default=None, help="catalog system id (default: the part's default)")
    p.add_argument("--train-tokens", type=float, required=True, help="tokens of the whole run")
    p.add_argument("--offer", default=None, help="instance/SKU to price with (default: cheapest)")
    p.add_argument("--pricing", default="on-demand", help="pricing model of the offer")
    _add_training_flags(p, choose=True)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_train)

    _add_serve_parser(sub)

    _add_plan_parser(sub)

    p = sub.add_parser("validate", help="run published measurements through the engine")
    p.add_argument("files", nargs="*", help="measurement CSVs (default: data/validation/*.csv)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--cv", action="store_true",
                   help="also leave-one-source-out cross-validation: refit without each source, predict it")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("calibrate", help="fit the efficiency parameters on the public measurements")
    p.add_argument("files", nargs="*", help="measurement CSVs (default: data/validation/*.csv)")
    p.add_argument("--write", default=None, metavar="PATH",
                   help="write the fitted rows (e.g. data/calibration/fitted.csv)")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("presets", help="list the shipped model presets")
    p.set_defaults(func=_cmd_presets)

    for register in _extra_registrations():
        register(sub)
    return parser


def _cmd_presets(args: argparse.Namespace) -> int:
    from costmodel.formulas.params import active_parameter_count, parameter_count
    from costmodel.specs.spec import presets

    rows = []
    for name, spec in sorted(presets().items()):
        rows.append({"name": name, "parameters_b": f"{float(parameter_count(spec).total) / 1e9:.2f}",
                     "active_b": f"{float(active_parameter_count(spec).total) / 1e9:.2f}",
                     "layers": spec.n_layers, "d_model": spec.d_model,
                     "attention": spec.attention if spec.attention == "mla" else
                     ("mha" if spec.kv_heads == spec.n_heads else
                      "mqa" if spec.kv_heads == 1 else "gqa"),
                     "experts": f"{spec.experts_per_token}/{spec.n_experts}" if spec.is_moe else "-"})
    print(format_table(rows, align_right=("parameters_b", "active_b", "layers", "d_model")))
    return 0


def _extra_registrations() -> list[Callable[[Any], None]]:
    """Sub-commands contributed by other modules (catalog, train, plan, validate)."""
    regs: list[Callable[[Any], None]] = []
    try:
        from hardware_catalog import cli as catalog_cli
    except ImportError:  # the catalog package is optional at this layer
        catalog_cli = None
    if catalog_cli is not None and hasattr(catalog_cli, "register"):
        regs.append(catalog_cli.register)
    from costmodel.faces import compression

    regs.append(compression.register)
    return regs


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (``costmodel validate | head -1``): stop quietly, as Unix tools do
        # (Python docs, 'Note on SIGPIPE'): point stdout at devnull so the exit flush cannot fail.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except CliError as exc:
        print(f"costmodel: error: {exc}", file=sys.stderr)
    except ValidationError as exc:
        print(f"costmodel: error: {format_validation_error(exc)}", file=sys.stderr)
    except (ModelSpecError, AssumptionError, ValueError, KeyError, FileNotFoundError) as exc:
        # CatalogError, ScenarioError and MeasurementFileError are ValueErrors too.
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"costmodel: error: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
