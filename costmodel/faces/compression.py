"""Knowledge distillation, composed from the train and serve jobs through the planner (a face: it
calls the search, so it sits above it): what distilling a student
from a teacher costs once, and whether serving the student pays it back over a period.

- Teacher forward passes over the distillation tokens: the teacher's prefill rate on one replica
  (``formulas.serving.prefill_time`` through ``estimate_serving``: compute-bound forward passes of
  whole sequences), billed as whole instances of the lowest-bill offer; ``epochs`` times when the
  teacher runs online beside the student, once when its top-k logits are stored (Hinton et al.
  2015 soft targets; top-k storage: k values at 16 bits and k indices at 32 bits per token, held
  in object storage while the student trains).
- Student training on the distillation tokens x epochs: the planner's cheapest training plan on
  the same accelerator (the KD loss over k logits adds negligible work next to the forward pass).
- Serving at the given load: the planner's cheapest serving plan for the teacher and for the
  student; total cost of ownership over ``months`` and the month at which the student breaks even.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from costmodel.formulas.cost import HOURS_PER_MONTH
from costmodel.specs.scenario import Constraints, Job, Scenario, SearchSpace
from costmodel.specs.serving import ReplicaLayout, ServingLoad, ServingSetup
from costmodel.specs.spec import ModelSpec

LOGIT_VALUE_BYTES, LOGIT_INDEX_BYTES = 2.0, 4.0


class DistillationEstimate(BaseModel):
    """Cost of distilling once, serving cost per month of teacher and student, TCO and break-even."""

    model_config = ConfigDict(frozen=True)

    teacher: str
    student: str
    accelerator: str
    distill_tokens: float
    epochs: int
    mode: str
    teacher_replica: str
    teacher_forward_hours: float
    teacher_forward_cost_usd: float
    logits_storage_gb: float
    logits_storage_cost_usd: float
    student_training_hours: float
    student_training_cost_usd: float
    student_training_plan: str
    distillation_cost_usd: float
    teacher_serving_per_month_usd: float
    student_serving_per_month_usd: float
    teacher_serving_plan: str
    student_serving_plan: str
    months: float
    tco_teacher_usd: float
    tco_student_usd: float
    breakeven_month: float | None
    quality_impact: str


def _teacher_forward(teacher: ModelSpec, accelerator: str, seq_len: int, tokens: float, catalog):
    """(layout text, hours, USD) of ``tokens`` teacher forward tokens on the smallest replica that
    holds it, billed with the lowest-bill on-demand offer of its system."""
    from costmodel.faces.serving_api import estimate_serving

    for tp in (1, 2, 4, 8, 16):
        est = estimate_serving(teacher, accelerator, ReplicaLayout(tp=tp),
                               ServingSetup(batch=1, input_len=seq_len, output_len=1), catalog=catalog)
        if est.fits_in_memory:
            break
    else:
        raise ValueError(f"{teacher.name} does not fit on 16 x {accelerator}")
    hours = tokens / (seq_len / est.prefill_s) / 3600.0
    rate = _device_hour_bill(catalog, est.system, tp)
    return f"tp={tp} on {est.system}", hours, rate * hours


def _device_hour_bill(catalog, system: str, devices: int) -> float:
    """USD per hour of the cheapest bill for ``devices`` devices of ``system`` (whole instances)."""
    frame = catalog.offers_frame()
    frame = frame[(frame["system"] == system) & (frame["pricing_model"] == "on-demand")]
    if frame.empty:
        raise ValueError(f"no on-demand offer for system {system} to price the teacher's forward passes")
    bills = [math.ceil(devices / d) * d * p for d, p in zip(frame["devices_per_instance"],
                                                           frame["usd_per_device_hour"])]
    return float(min(bills))


def _serving_month(model, accelerator: str, load: ServingLoad) -> tuple[float, str]:
    from costmodel.search.grid import plan

    sc = Scenario(model=model, job=Job(kind="serve", load=load),
                  search=SearchSpace(accelerators=[accelerator]))
    best = plan(sc, top=1).best
    if best is None:
        raise ValueError(f"no serving plan for {getattr(model, 'name', model)} on {accelerator} meets the load")
    return float(best["cost_per_month_usd"]), (f"{best['replicas']} x tp={best['tp']} {best['precision']} "
                                               f"batch {best['batch_size']} on {best['provider']} {best['offer']}")


def estimate_distillation(
    teacher: ModelSpec | str,
    student: ModelSpec | str,
    accelerator: str,
    *,
    distill_tokens: float,
    load: ServingLoad,
    months: float = 12.0,
    epochs: int = 1,
    seq_len: int = 4096,
    stored_top_k: int | None = None,
    catalog=None,
) -> DistillationEstimate:
    """Distil ``student`` from ``teacher`` on ``distill_tokens`` tokens (x ``epochs``), then serve
    ``load`` for ``months``; compare with serving the teacher. ``stored_top_k``: store the
    teacher's top-k logits once instead of running it online every epoch."""
    from costmodel.search.grid import plan
    from costmodel.specs.spec import resolve_model
    from costmodel.tables.catalog import engine_catalog
    from costmodel.tables.offers import object_storage_price

    if not (math.isfinite(distill_tokens) and distill_tokens > 0):
        raise ValueError(f"distill_tokens must be a finite number > 0 (got {distill_tokens!r})")
    if not (math.isfinite(months) and months > 0) or epochs < 1:
        raise ValueError("months must be > 0 and epochs >= 1")
    catalog = catalog or engine_catalog()
    t, s = resolve_model(teacher), resolve_model(student)
    passes = 1 if stored_top_k else epochs
    replica, hours, fwd_usd = _teacher_forward(t, accelerator, seq_len, distill_tokens * passes, catalog)
    train = plan(Scenario(model=s, job=Job(train_tokens=distill_tokens * epochs, seq_len=seq_len),
                          search=SearchSpace(accelerators=[accelerator])), top=1).best
    if train is None:
        raise ValueError(f"no training plan for {s.name} on {accelerator}")
    storage_gb, storage_usd = 0.0, 0.0
    if stored_top_k:
        storage_gb = distill_tokens * stored_top_k * (LOGIT_VALUE_BYTES + LOGIT_INDEX_BYTES) / 1e9
        price = object_storage_price(catalog, None)
        storage_usd = storage_gb * (price.value if price else 0.0) * max(1.0, train["time_total_hours"] / HOURS_PER_MONTH)
    once = fwd_usd + storage_usd + float(train["cost_total_usd"])
    teacher_month, teacher_plan = _serving_month(t, accelerator, load)
    student_month, student_plan = _serving_month(s, accelerator, load)
    saving = teacher_month - student_month
    return DistillationEstimate(
        teacher=t.name, student=s.name, accelerator=accelerator, distill_tokens=distill_tokens,
        epochs=epochs, mode=f"stored top-{stored_top_k} logits" if stored_top_k else "online teacher",
        teacher_replica=replica, teacher_forward_hours=hours, teacher_forward_cost_usd=fwd_usd,
        logits_storage_gb=storage_gb, logits_storage_cost_usd=storage_usd,
        student_training_hours=float(train["time_total_hours"]),
        student_training_cost_usd=float(train["cost_total_usd"]),
        student_training_plan=f"{train['n_devices']} x {train['accelerator']} on {train['provider']} {train['offer']}",
        distillation_cost_usd=once, teacher_serving_per_month_usd=teacher_month,
        student_serving_per_month_usd=student_month, teacher_serving_plan=teacher_plan,
        student_serving_plan=student_plan, months=months, tco_teacher_usd=months * teacher_month,
        tco_student_usd=once + months * student_month,
        breakeven_month=once / saving if saving > 0 else None,
        quality_impact="unknown: the student's quality after distillation depends on the recipe "
                       "and is not predicted; measure it before switching",
    )


class PruningEstimate(BaseModel):
    """What producing a pruned model costs: calibration forward passes and recovery training."""

    model_config = ConfigDict(frozen=True)

    model: str
    pruned: str
    parameters: float
    pruned_parameters: float
    calibration_tokens: float
    calibration_hours: float
    calibration_cost_usd: float
    recovery_tokens: float
    recovery_cost_usd: float
    total_cost_usd: float
    note: str


#: SparseGPT (Frantar & Alistarh 2023) and Wanda (Sun et al. 2024) calibrate on 128 sequences of
#: 2,048 tokens from C4.
DEFAULT_CALIBRATION_TOKENS = 128 * 2048


def estimate_pruning(model: ModelSpec | str, pruned: ModelSpec | str, accelerator: str, *,
                     calibration_tokens: float = DEFAULT_CALIBRATION_TOKENS,
                     recovery_tokens: float = 0.0, seq_len: int = 2048, catalog=None) -> PruningEstimate:
    """Cost of pruning ``model`` to ``pruned``: forward passes of the original over the
    calibration tokens (the per-layer solves of SparseGPT are not counted: small next to a forward
    pass at these token counts, stated), plus the cheapest training plan of the pruned model on
    ``recovery_tokens`` (0 = no recovery fine-tuning)."""
    from costmodel.formulas.params import parameter_count
    from costmodel.search.grid import plan
    from costmodel.specs.spec import resolve_model
    from costmodel.tables.catalog import engine_catalog

    catalog = catalog or engine_catalog()
    m, p = resolve_model(model), resolve_model(pruned)
    _, hours, cal_usd = _teacher_forward(m, accelerator, seq_len, calibration_tokens, catalog)
    rec_usd = 0.0
    if recovery_tokens > 0:
        best = plan(Scenario(model=p, job=Job(kind="finetune", train_tokens=recovery_tokens, seq_len=seq_len),
                             search=SearchSpace(accelerators=[accelerator])), top=1).best
        if best is None:
            raise ValueError(f"no recovery training plan for {p.name} on {accelerator}")
        rec_usd = float(best["cost_total_usd"])
    return PruningEstimate(
        model=m.name, pruned=p.name, parameters=float(parameter_count(m).total),
        pruned_parameters=float(parameter_count(p).total), calibration_tokens=calibration_tokens,
        calibration_hours=hours, calibration_cost_usd=cal_usd, recovery_tokens=recovery_tokens,
        recovery_cost_usd=rec_usd, total_cost_usd=cal_usd + rec_usd,
        note="calibration = forward passes of the original model (billed by whole instances, "
             "rounded to no less than the hours used); per-layer solves not counted")


# CLI -------------------------------------------------------------------------------------------

def register(sub) -> None:
    """``costmodel distil``: distillation cost and total cost of ownership against the teacher."""
    p = sub.add_parser("distil", help="cost of distilling a student and its TCO against serving the teacher")
    p.add_argument("--teacher", required=True, help="preset name or config.json of the teacher")
    p.add_argument("--student", required=True,
                   help="preset name or config.json, or shrink:layers=0.5,ffn=0.75 (structured shrink of the teacher)")
    p.add_argument("--accelerator", required=True, help="catalog id")
    p.add_argument("--distill-tokens", type=float, required=True, help="tokens of distillation data")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--top-k", type=int, default=None, help="store the teacher's top-k logits instead of running it online")
    p.add_argument("--months", type=float, default=12.0, help="period of the TCO comparison")
    p.add_argument("--serve-rps", type=float, required=True, help="requests/s the model will serve")
    p.add_argument("--input-len", type=int, required=True)
    p.add_argument("--output-len", type=int, required=True)
    p.add_argument("--ttft-p95-s", type=float, default=None)
    p.add_argument("--tpot-p95-s", type=float, default=None)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_distil)


def _student(text: str, teacher: str):
    from costmodel.specs.pruning import shrink
    from costmodel.specs.spec import resolve_model

    if not text.startswith("shrink:"):
        return text
    parts = dict(item.split("=", 1) for item in text.removeprefix("shrink:").split(",") if "=" in item)
    try:
        fractions = {k.strip(): float(v) for k, v in parts.items()}
    except ValueError:
        raise ValueError(f"--student {text!r}: fractions must be numbers, e.g. shrink:layers=0.5") from None
    unknown = sorted(set(fractions) - {"layers", "ffn", "heads", "experts"})
    if unknown:
        raise ValueError(f"--student: unknown shrink axis {unknown}; allowed: layers, ffn, heads, experts")
    return shrink(resolve_model(teacher), **fractions)


def _cmd_distil(args) -> int:
    load = ServingLoad(requests_per_s=args.serve_rps, input_len=args.input_len, output_len=args.output_len,
                       ttft_p95_s=args.ttft_p95_s, tpot_p95_s=args.tpot_p95_s)
    est = estimate_distillation(args.teacher, _student(args.student, args.teacher), args.accelerator,
                                distill_tokens=args.distill_tokens, load=load, months=args.months,
                                epochs=args.epochs, stored_top_k=args.top_k)
    if args.format == "json":
        print(est.model_dump_json())
        return 0
    print(f"distil {est.student} from {est.teacher} on {est.distill_tokens:.3g} tokens x {est.epochs} ({est.mode})")
    print(f"  teacher forward: {est.teacher_forward_hours:,.1f} h on {est.teacher_replica}: ${est.teacher_forward_cost_usd:,.0f}"
          + (f"; logits {est.logits_storage_gb:,.0f} GB: ${est.logits_storage_cost_usd:,.0f}" if est.logits_storage_gb else ""))
    print(f"  student training: {est.student_training_hours:,.1f} h on {est.student_training_plan}: "
          f"${est.student_training_cost_usd:,.0f}")
    print(f"  distillation once: ${est.distillation_cost_usd:,.0f}")
    print(f"serving per month: teacher ${est.teacher_serving_per_month_usd:,.0f} ({est.teacher_serving_plan}), "
          f"student ${est.student_serving_per_month_usd:,.0f} ({est.student_serving_plan})")
    be = f"month {est.breakeven_month:.1f}" if est.breakeven_month is not None else "never"
    print(f"TCO over {est.months:g} months: teacher ${est.tco_teacher_usd:,.0f}, student ${est.tco_student_usd:,.0f}; "
          f"break-even {be}")
    print(f"quality: {est.quality_impact}")
    return 0
