"""Single-configuration entry points. Each builds 0-d columns and calls the same formulas the
planner evaluates over whole grids, so a single estimate is a grid of one row."""

from __future__ import annotations

from pathlib import Path

from costmodel.specs.assumptions import Assumptions
from costmodel.specs.columns import Breakdown, ModelColumns
from costmodel.formulas.flops import forward_flops_per_token, training_flops_per_token
from costmodel.formulas.params import adapter_forward_flops_per_token, adapter_parameter_count, parameter_count
from costmodel.specs.layout import ParallelLayout, layout_problems
from costmodel.formulas.memory import (TRAIN_MEMORY_COMPONENTS, inference_memory_per_device,
                                       training_memory_per_device)
from costmodel.specs.spec import ModelSpec, ModelSpecError, format_validation_error, resolve_model
from costmodel.specs.setup import TrainingSetup, training_columns

ModelLike = ModelSpec | str | Path


def training_memory(
    model: ModelLike,
    layout: ParallelLayout | None = None,
    setup: TrainingSetup | None = None,
    *,
    framework: str = "nemo",
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
        training_columns(layout, setup, _n_params(spec)),
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

    Returns ``forward_per_token``, ``backward_per_token`` (2 x forward), ``model_per_token``
    (forward + backward, what MFU counts), ``hardware_per_token`` (adds recomputation) and the
    same two per optimizer step (x global batch x sequence length). With LoRA/QLoRA
    (``setup.peft``) the frozen GEMMs' backward is their input gradient only (1 x forward) and
    the adapters are a component of their own (see ``formulas.flops``).
    """
    spec = resolve_model(model)
    setup = setup or TrainingSetup()
    layout = layout or ParallelLayout()
    t = training_columns(layout, setup, _n_params(spec))
    m = ModelColumns.from_spec(spec)
    peft = {} if setup.peft == "none" else {
        "frozen": 1.0, "adapter_forward": adapter_forward_flops_per_token(m, t.lora_rank, t.lora_targets)}
    model_flops, hardware_flops = training_flops_per_token(
        m, setup.seq_len, t.recompute,
        causal_discount=setup.causal_discount, vocab_head=setup.vocab_head, **peft,
    )
    tokens = t.global_batch * t.seq_len
    if peft:
        fwd = forward_flops_per_token(m, setup.seq_len, causal_discount=setup.causal_discount,
                                      vocab_head=setup.vocab_head)
        forward = Breakdown({**dict(fwd), "adapters": peft["adapter_forward"]})
        backward = Breakdown({k: model_flops[k] - forward[k] for k in forward})
    else:
        forward = model_flops.scaled(1.0 / 3.0)
        backward = forward.scaled(2.0)
    return {
        "forward_per_token": forward,
        "backward_per_token": backward,
        "model_per_token": model_flops,
        "hardware_per_token": hardware_flops,
        "model_per_step": model_flops.scaled(tokens),
        "hardware_per_step": hardware_flops.scaled(tokens),
    }


def lora_parameter_count(model: ModelLike, rank: int = 16, targets: str = "all") -> Breakdown:
    """Trainable LoRA adapter parameters by component (r (d_in + d_out) per adapted matrix), as
    Hugging Face PEFT's ``print_trainable_parameters`` counts them. ``targets``: attention
    (q, k, v, o), all (every linear layer of the blocks) or qv."""
    setup = TrainingSetup(peft="lora", lora_rank=rank, lora_targets=targets)
    return adapter_parameter_count(resolve_model(model), setup.lora_rank, setup.lora_targets)


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
    a = Assumptions("nemo", overrides)
    return inference_memory_per_device(
        ModelColumns.from_spec(spec), batch=batch, context_len=context_len,
        weight_bits=weight_bits, kv_bits=kv_bits, tp=tp, pp=pp, ep=ep,
        prefill_chunk=prefill_chunk, cuda_context_bytes=a["cuda_context_bytes"],
    )


# Training time and cost ------------------------------------------------------------------------

import math  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pydantic import BaseModel, ConfigDict, ValidationError  # noqa: E402

from costmodel.formulas.timing import COLLECTIVES, STEP_COMPONENTS  # noqa: E402
from costmodel.jobs import train as job  # noqa: E402
from costmodel.specs.codes import FORMATS  # noqa: E402
from costmodel.specs.setup import layout_codes, micro_batches, setup_codes  # noqa: E402
from costmodel.tables.catalog import engine_catalog, hardware_table, offer_table, resolve_system  # noqa: E402
from costmodel.tables.knobs import knob_columns  # noqa: E402
from costmodel.tables.offers import OfferTable  # noqa: E402


class TrainingEstimate(BaseModel):
    """Everything the engine says about one training configuration (units in the names).

    Cost fields are None when no offer prices the run; ``cost_note`` then says why. Providers
    bill whole instances: ``instances`` x ``devices_per_instance`` devices are billed even when
    the run uses fewer (``billing`` says so in words)."""

    model_config = ConfigDict(frozen=True)

    model: str
    accelerator: str
    system: str
    n_devices: int
    layout: ParallelLayout
    setup: TrainingSetup
    framework: str
    train_tokens: float
    memory_breakdown_bytes: dict[str, float]
    memory_per_device_bytes: float
    memory_capacity_bytes: float
    fits_in_memory: bool
    step_breakdown_s: dict[str, float]
    step_time_s: float
    step_time_lower_s: float
    step_time_upper_s: float
    tokens_per_s_per_device: float
    model_tflops_per_device: float
    mfu: float
    hfu: float
    steps: float
    time_total_hours: float
    time_total_lower_hours: float
    time_total_upper_hours: float
    device_hours: float
    offer: str | None
    usd_per_device_hour: float | None
    instances: int | None
    devices_per_instance: int | None
    billed_device_hours: float | None
    billing: str | None
    cost_compute_usd: float | None
    cost_storage_usd: float | None
    cost_energy_usd: float | None
    cost_total_usd: float | None
    cost_note: str | None
    energy_kwh: float
    communication: list[dict]
    assumptions: list[dict]
    chosen_layout: dict | None = None  # set when no layout was given: what was chosen and why


def _check_tokens(train_tokens: float) -> float:
    value = float(train_tokens)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"train_tokens must be a finite number > 0 (got {train_tokens!r})")
    return value


def _unsupported(reason: int, acc_id: str, system: str, setup: TrainingSetup, table) -> str:
    if reason == job.FORMAT:
        have = ", ".join(table.formats_with_peak(system)) or "none"
        return (f"{acc_id} has no dense peak for the formats of precision {setup.precision!r}: "
                f"format unsupported on hardware (formats it has: {have})")
    return f"{acc_id}: no efficiency data for {setup.precision} (no efficiency or price data)"


def _system_offers(catalog, table, system: str, pricing_model: str, offer: str | None) -> OfferTable:
    return offer_table(catalog).select(table.system_code(system), pricing_model, offer)


def _communication(out: dict[str, float]) -> list[dict]:
    rows = []
    for name in COLLECTIVES:
        calls = out[f"comm_{name}_calls_per_step"]
        if calls <= 0:
            continue
        rows.append({
            "collective": name,
            "bytes_per_call": out[f"comm_{name}_bytes_per_call"],
            "calls_per_step": calls,
            "bytes_per_step": out[f"comm_{name}_bytes_per_call"] * calls,
            "group_size": int(out[f"comm_{name}_group_size"]),
            "fabric": "scale-out" if out[f"comm_{name}_spans_nodes"] else "scale-up",
            "time_per_step_s": out[f"comm_{name}_raw_s"],
            "exposed_per_step_s": out[f"comm_{name}_exposed_s"],
        })
    return rows


def estimate_training(
    model: ModelLike,
    accelerator: str,
    layout: ParallelLayout | None = None,
    setup: TrainingSetup | None = None,
    *,
    train_tokens: float,
    n_devices: int | None = None,
    system: str | None = None,
    offer: str | None = None,
    pricing_model: str = "on-demand",
    framework: str = "nemo",
    overrides: dict[str, float] | None = None,
    catalog=None,
) -> TrainingEstimate:
    """Time, memory and cost of training ``model`` on ``train_tokens`` tokens.

    ``accelerator`` is a catalog id; ``system`` picks how devices are connected (default: the
    catalog's default system for the part). ``offer`` (an instance/SKU name of the catalog) prices
    the run; without it the offer of that system and pricing model with the lowest bill for this
    run is used (the planner's choice), if any. Runs through the same job functions as the planner.

    Without ``layout`` the layout is chosen as the planner would (``search.choose``): the fastest
    feasible one at ``n_devices`` devices, or without a count the fewest device-hours within the
    default deadline; micro-batch and recompute are searched unless ``setup`` sets them, and
    ``chosen_layout`` in the result says what was chosen and by which rule. A blank global batch
    takes the default for the model's size (``setup.default_global_batch``).
    """
    spec = resolve_model(model)
    setup = setup or TrainingSetup()
    train_tokens = _check_tokens(train_tokens)
    chosen = None
    if layout is None:
        layout, setup, chosen = _choose(spec, accelerator, setup, train_tokens, n_devices, system,
                                        framework, overrides, catalog)
    elif n_devices is not None and n_devices != layout.n_devices:
        raise ValueError(f"n_devices ({n_devices}) differs from the layout's tp*pp*cp*dp = {layout.n_devices}")
    problems = layout_problems(spec, layout)
    if problems:
        raise ModelSpecError(f"layout cannot shard {spec.name}: " + "; ".join(problems))
    catalog = catalog or engine_catalog()
    acc, sys_ = resolve_system(catalog, accelerator, system)
    table = hardware_table(catalog)
    knobs = knob_columns(framework, overrides)
    coded = {**layout_codes(layout), **setup_codes(setup),
             "n_micro": micro_batches(layout, setup, _n_params(spec))}
    ev = job.evaluate_configurations(ModelColumns.from_spec(spec), coded, table.system_code(sys_.id),
                                     table, knobs)
    if ev.live.size == 0:
        raise ValueError(_unsupported(int(ev.reason[0]), acc.id, sys_.id, setup, table))
    offers = _system_offers(catalog, table, sys_.id, pricing_model, offer)
    if offer is not None and len(offers) == 0:
        raise ValueError(f"no {pricing_model} offer {offer!r} for system {sys_.id}")
    out = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in ev.out.items()}
    cost, priced = _price_one(ev, offers, train_tokens, knobs)
    return TrainingEstimate(
        model=spec.name, accelerator=acc.id, system=sys_.id, n_devices=layout.n_devices,
        layout=layout, setup=setup, framework=framework, train_tokens=train_tokens,
        memory_breakdown_bytes={k: out[f"memory_{k}_bytes"] for k in TRAIN_MEMORY_COMPONENTS},
        memory_per_device_bytes=out["memory_total_bytes"],
        memory_capacity_bytes=out["memory_capacity_bytes"], fits_in_memory=bool(out["memory_fits"]),
        step_breakdown_s={c: out[f"{c}_s"] for c in STEP_COMPONENTS},
        step_time_s=out["step_time_s"], step_time_lower_s=out["step_time_lower_s"],
        step_time_upper_s=out["step_time_upper_s"],
        tokens_per_s_per_device=out["tokens_per_s_per_device"],
        model_tflops_per_device=out["model_flops_per_s_per_device"] / 1e12,
        mfu=out["mfu"], hfu=out["hfu"], **cost,
        offer=offers.describe(priced) if priced is not None else None,
        cost_note=None if priced is not None else (
            f"no {pricing_model} offer for system {sys_.id} in the catalog: cost not computed"),
        communication=_communication(out),
        assumptions=Assumptions(framework, overrides).as_records(),
        chosen_layout=chosen,
    )


def _n_params(spec: ModelSpec) -> float:
    """Total parameters: the model size a blank global batch is chosen for."""
    return float(parameter_count(spec).total)


def _choose(spec, accelerator, setup, train_tokens, n_devices, system, framework, overrides, catalog):
    """(layout, setup, chosen_layout record) of ``search.choose.choose_training_layout``."""
    from costmodel.search.choose import choose_training_layout

    kind = "pretrain" if setup.peft == "none" else "finetune"
    choice = choose_training_layout(spec, accelerator, setup, train_tokens=train_tokens,
                                    n_devices=n_devices, system=system, kind=kind,
                                    framework=framework, overrides=overrides, catalog=catalog)
    if choice.plan is None:
        raise ValueError(f"no feasible layout for {spec.name} on {accelerator}: {choice.reason}")
    p = choice.layout
    layout = ParallelLayout(tp=p["tp"], pp=p["pp"], vpp=p["vpp"], dp=p["dp"], cp=p["cp"], ep=p["ep"],
                            sequence_parallel=bool(p["sequence_parallel"]), zero_stage=p["zero_stage"])
    setup = setup.model_copy(update={"micro_batch": p["micro_batch"], "recompute": p["recompute"],
                                     "global_batch": p["global_batch"]})
    record = {**p, "rule": choice.rule, "batch": choice.batch_note or "given",
              "searched": choice.searched, "feasible": choice.feasible, "summary": choice.summary()}
    return layout, setup, record


def _price_one(ev, offers: OfferTable, train_tokens: float, knobs) -> tuple[dict, int | None]:
    """Run length and, when an offer exists, the cheapest bill (``job.cheapest_offer``)."""
    if len(offers):
        chosen, c = job.cheapest_offer(ev, 0, offers, np.arange(len(offers)), train_tokens, knobs)
        c = {k: float(v) for k, v in c.items()}
    else:  # run length and energy do not depend on the price: price with a zero-cost stand-in
        chosen = None
        stand_in = OfferTable(offers.frame, np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1, dtype=np.int64))
        c = {k: float(np.asarray(v)[0]) for k, v in job.price_training(
            ev, np.zeros(1, dtype=np.int64), stand_in, np.zeros(1, dtype=np.int64), train_tokens, knobs).items()}
    priced = chosen is not None
    keep = lambda k: c[k] if priced else None  # noqa: E731
    return {
        "steps": c["steps"], "time_total_hours": c["time_total_hours"],
        "time_total_lower_hours": c["time_total_lower_hours"],
        "time_total_upper_hours": c["time_total_upper_hours"], "device_hours": c["device_hours"],
        "energy_kwh": c["energy_kwh"], "usd_per_device_hour": keep("usd_per_device_hour"),
        "instances": int(c["instances"]) if priced else None,
        "devices_per_instance": int(c["devices_per_instance"]) if priced else None,
        "billed_device_hours": keep("billed_device_hours"),
        "billing": job.billing_note(ev.t.n_devices[0], c["instances"], c["devices_per_instance"])
        if priced else None,
        "cost_compute_usd": keep("cost_compute_usd"), "cost_storage_usd": keep("cost_storage_usd"),
        "cost_energy_usd": keep("cost_energy_usd"), "cost_total_usd": keep("cost_total_usd"),
    }, chosen


# Many configurations at once ------------------------------------------------------------------

FRAME_DEFAULTS = {
    "pp": 1, "vpp": 1, "dp": 1, "cp": 1, "ep": 1, "tp": 1, "sequence_parallel": False,
    "zero_stage": 0, "recompute": "none", "micro_batch": 1, "global_batch": None,
    "seq_len": 2048, "precision": "bf16", "optimizer": "adamw", "gradient_precision": "param",
    "optimizer_state_bits": 32, "master_weights": None, "flash_attention": True, "dropout": False,
    "vocab_head": True, "causal_discount": True, "framework": "nemo", "system": None,
    "rank_order": "tp-cp-dp-pp", "pricing_model": "on-demand", "offer": None,
    "peft": "none", "lora_rank": 16, "lora_targets": "all", "base_weight_bits": None,
}
_LAYOUT_FIELDS = ("tp", "pp", "vpp", "dp", "cp", "ep", "sequence_parallel", "zero_stage", "rank_order")
_SETUP_FIELDS = ("precision", "optimizer", "gradient_precision", "optimizer_state_bits",
                 "master_weights", "recompute", "micro_batch", "seq_len", "global_batch",
                 "flash_attention", "dropout", "vocab_head", "causal_discount", "peft", "lora_rank",
                 "lora_targets", "base_weight_bits")
_FRAME_OUTPUTS = ("step_time_s", "step_time_lower_s", "step_time_upper_s", "tokens_per_s_per_device",
                  "mfu", "hfu")
_FRAME_COSTS = ("time_total_hours", "device_hours", "billed_device_hours", "instances",
                "cost_compute_usd", "cost_storage_usd", "cost_energy_usd", "cost_total_usd",
                "energy_kwh")


def _cell(value):
    """A DataFrame cell as a plain Python value (None for blanks)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _frame_row(row, catalog, table):
    """(spec, layout, setup, system id) of one DataFrame row, validated at the boundary."""
    spec = row["model"] if isinstance(row["model"], ModelSpec) else resolve_model(row["model"])
    cells = {k: _cell(row[k]) for k in (*_LAYOUT_FIELDS, *_SETUP_FIELDS)}
    layout = ParallelLayout(**{k: cells[k] for k in _LAYOUT_FIELDS})
    problems = layout_problems(spec, layout)
    if problems:
        raise ValueError("; ".join(problems))
    for k in ("lora_rank", "base_weight_bits"):  # whole numbers that a float column holds as floats
        if isinstance(cells[k], float) and cells[k].is_integer():
            cells[k] = int(cells[k])
    setup = TrainingSetup(**{k: cells[k] for k in _SETUP_FIELDS})
    system = row["system"] if isinstance(row["system"], str) and row["system"] else \
        catalog.default_system(row["accelerator"]).id
    if catalog.system(system).accelerator != row["accelerator"]:
        raise ValueError(f"system {system!r} does not hold {row['accelerator']}")
    return spec, layout, setup, system


def evaluate_frame(configs, *, catalog=None):
    """Evaluate a DataFrame of training configurations with the engine, one vectorised pass.

    Required columns: ``model`` (preset name, config path or ModelSpec) and ``accelerator``
    (catalog id). Optional: the fields of ``FRAME_DEFAULTS`` (missing columns take those values)
    ``train_tokens`` and ``overrides`` (a dict of assumption knobs per row). With ``train_tokens``, each row is priced like ``estimate_training``:
    the catalog offer named in ``offer`` (or the one with the lowest bill) of its system and
    ``pricing_model``, billed by whole instances; a ``usd_per_device_hour`` column instead prices
    with your own rate (``devices_per_instance``, default 1, is the billing unit). Rows no offer
    prices get empty cost cells and a ``cost_note`` saying why; rows the engine cannot evaluate
    get a ``reason``. Each row is validated at the boundary (an error names the row and field).
    """
    df = pd.DataFrame(configs).reset_index(drop=True)
    missing = [c for c in ("model", "accelerator") if c not in df]
    if missing:
        raise ValueError(f"configurations need column(s) {', '.join(missing)}")
    for col, default in FRAME_DEFAULTS.items():
        if col not in df:
            df[col] = default
        elif default is not None:
            df[col] = df[col].astype(object).where(df[col].notna(), default)
    catalog = catalog or engine_catalog()
    table = hardware_table(catalog)
    parsed = []
    for i, row in df.iterrows():
        try:
            parsed.append(_frame_row(row, catalog, table))
            micro_batches(parsed[-1][1], parsed[-1][2], _n_params(parsed[-1][0]))
        except ValidationError as exc:
            raise ValueError(format_validation_error(exc, f"row {i}")) from None
        except (ValueError, KeyError) as exc:
            raise ValueError(f"row {i}: {exc.args[0] if exc.args else exc}") from None
    n_micro = [micro_batches(lay, st, _n_params(sp)) for sp, lay, st, _ in parsed]
    coded = {k: np.array([({**layout_codes(lay), **setup_codes(st), "n_micro": nm})[k]
                          for (_, lay, st, _), nm in zip(parsed, n_micro)], dtype=np.float64)
             for k in (*layout_codes(ParallelLayout()), *setup_codes(TrainingSetup()), "n_micro")}
    per_row = [dict(v) if isinstance(v, dict) else {} for v in df["overrides"]] if "overrides" in df else None
    knobs = knob_columns(list(df["framework"]), per_row)
    ev = job.evaluate_configurations(ModelColumns.from_specs([p[0] for p in parsed]), coded,
                                     np.array([table.system_code(p[3]) for p in parsed]), table, knobs)
    res = df.copy()
    res["system"] = [p[3] for p in parsed]
    res["n_devices"] = [p[1].n_devices for p in parsed]
    res["reason"] = [job.REASONS[r] if r not in (0, job.MEMORY) else "" for r in ev.reason]
    _frame_engine_columns(res, ev)
    if "train_tokens" in df:
        _frame_costs(res, ev, catalog, table, knobs)
    return res


def _frame_engine_columns(res: pd.DataFrame, ev) -> None:
    def put(name, values):
        col = np.full(len(res), np.nan)
        col[ev.live] = values
        res[name] = col
    if ev.live.size == 0:
        return
    put("memory_per_device_gib", ev.out["memory_total_bytes"] / 2**30)
    put("memory_capacity_gib", ev.out["memory_capacity_bytes"] / 2**30)
    res["fits_in_memory"] = False
    res.loc[ev.live, "fits_in_memory"] = np.asarray(ev.out["memory_fits"], dtype=bool)
    for key in _FRAME_OUTPUTS:
        put(key, ev.out[key])
    put("model_tflops_per_device", ev.out["model_flops_per_s_per_device"] / 1e12)


def _frame_costs(res: pd.DataFrame, ev, catalog, table, knobs) -> None:
    """Cost columns per row through ``job.cheapest_offer``/``job.price_training``."""
    tokens = np.array([_check_tokens(v) for v in res["train_tokens"]])
    cols = {k: [None] * len(res) for k in (*_FRAME_COSTS, "usd_per_device_hour", "priced_offer", "billing",
                                          "cost_note")}
    user_rate = res["usd_per_device_hour"].notna() if "usd_per_device_hour" in res else pd.Series(False, res.index)
    for pos, i in enumerate(ev.live):
        row = res.iloc[i]
        if user_rate.iloc[i]:
            offers = _user_offer(catalog, table, row)
        else:
            offers = _system_offers(catalog, table, row["system"], row["pricing_model"], _cell(row["offer"]))
        if len(offers) == 0:
            cols["cost_note"][i] = f"no {row['pricing_model']} offer for system {row['system']} in the catalog"
            continue
        chosen, c = job.cheapest_offer(ev, pos, offers, np.arange(len(offers)), tokens[i], knobs)
        for k in (*_FRAME_COSTS, "usd_per_device_hour"):
            cols[k][i] = float(c[k])
        cols["priced_offer"][i] = offers.describe(chosen)
        cols["billing"][i] = job.billing_note(ev.t.n_devices[pos], c["instances"], c["devices_per_instance"])
    for i in np.flatnonzero(ev.reason != 0):
        if ev.reason[i] != job.MEMORY:
            cols["cost_note"][i] = f"not evaluated: {job.REASONS[ev.reason[i]]}"
    for k, v in cols.items():
        res[k] = pd.array(v, dtype="Float64") if k in (*_FRAME_COSTS, "usd_per_device_hour") else v


def _user_offer(catalog, table, row) -> OfferTable:
    dpi = _cell(row.get("devices_per_instance")) or 1
    frame = pd.DataFrame([{
        "provider": "user", "offer": "user price", "accelerator": row["accelerator"],
        "system": row["system"], "devices_per_instance": int(dpi), "region": "",
        "pricing_model": "user", "usd_per_instance_hour": float(row["usd_per_device_hour"]) * int(dpi),
        "usd_per_device_hour": float(row["usd_per_device_hour"]), "as_of": "", "source": "user input",
        "notes": ""}])
    return OfferTable.build(catalog, frame, table.system_code)
