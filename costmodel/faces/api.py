"""Single-configuration entry points. Each builds 0-d columns and calls the same formulas the
planner evaluates over whole grids, so a single estimate is a grid of one row."""

from __future__ import annotations

from pathlib import Path

from costmodel.specs.assumptions import Assumptions
from costmodel.specs.columns import Breakdown, ModelColumns
from costmodel.formulas.flops import training_flops_per_token
from costmodel.specs.layout import ParallelLayout, layout_problems
from costmodel.formulas.memory import inference_memory_per_device, training_memory_per_device
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

    Returns ``forward_per_token``, ``backward_per_token`` (2 x forward), ``model_per_token``
    (forward + backward, what MFU counts), ``hardware_per_token`` (adds recomputation) and the
    same two per optimizer step (x global batch x sequence length).
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
    forward = model_flops.scaled(1.0 / 3.0)
    return {
        "forward_per_token": forward,
        "backward_per_token": forward.scaled(2.0),
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
    a = Assumptions("nemo", overrides)
    return inference_memory_per_device(
        ModelColumns.from_spec(spec), batch=batch, context_len=context_len,
        weight_bits=weight_bits, kv_bits=kv_bits, tp=tp, pp=pp, ep=ep,
        prefill_chunk=prefill_chunk, cuda_context_bytes=a["cuda_context_bytes"],
    )


# Training time and cost ------------------------------------------------------------------------

from pydantic import BaseModel, ConfigDict  # noqa: E402


class TrainingEstimate(BaseModel):
    """Everything the engine says about one training configuration (units in the names)."""

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
    cost_compute_usd: float | None
    cost_storage_usd: float | None
    cost_total_usd: float | None
    energy_kwh: float
    communication: list[dict]
    assumptions: list[dict]


def estimate_training(
    model: ModelLike,
    accelerator: str,
    layout: ParallelLayout | None = None,
    setup: TrainingSetup | None = None,
    *,
    train_tokens: float,
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
    the run; without it the cheapest offer of that system and pricing model is used, if any.
    """
    import numpy as np

    from costmodel.tables.catalog import engine_catalog, hardware_table, object_storage_price
    from costmodel.formulas.cost import checkpoint_bytes, training_run_cost
    from costmodel.jobs.train import evaluate_training, knob_columns
    from costmodel.formulas.params import parameter_count

    spec = resolve_model(model)
    layout = layout or ParallelLayout()
    setup = setup or TrainingSetup()
    if train_tokens <= 0:
        raise ValueError("train_tokens must be > 0")
    problems = layout_problems(spec, layout)
    if problems:
        raise ModelSpecError(f"layout cannot shard {spec.name}: " + "; ".join(problems))
    catalog = catalog or engine_catalog()
    acc = catalog.accelerator(accelerator)
    sys_ = catalog.system(system) if system else catalog.default_system(acc.id)
    if sys_.accelerator != acc.id:
        raise ValueError(f"system {sys_.id!r} holds {sys_.accelerator}, not {acc.id}")
    table = hardware_table(catalog)
    t = training_columns(layout, setup)
    hw = table.columns(np.array([table.system_code(sys_.id)]), np.array([int(t.precision)]))
    if not np.isfinite(hw.peak_matmul_flops_per_s[0]):
        raise ValueError(f"{acc.id} has no dense peak for {setup.precision}: format unsupported on hardware")
    knobs = knob_columns(framework, overrides)
    m = ModelColumns.from_spec(spec)
    out = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in evaluate_training(m, t, hw, knobs).items()}
    offers = catalog.offers_for(accelerator=acc.id, pricing_model=pricing_model)
    offers = [o for o in offers if o.system == sys_.id and (offer is None or o.offer == offer)]
    if offer is not None and not offers:
        raise ValueError(f"no {pricing_model} offer {offer!r} for system {sys_.id}")
    chosen = min(offers, key=lambda o: o.usd_per_device_hour) if offers else None
    storage = object_storage_price(catalog, chosen.provider if chosen else None)
    storage_price = storage.value if storage else 0.0
    cost = training_run_cost(
        step_time_s=out["step_time_s"], step_time_lower_s=out["step_time_lower_s"],
        step_time_upper_s=out["step_time_upper_s"], tokens_per_step=out["tokens_per_step"],
        train_tokens=train_tokens, n_devices=layout.n_devices,
        devices_per_instance=chosen.devices_per_instance if chosen else 1,
        usd_per_device_hour=chosen.usd_per_device_hour if chosen else float("nan"),
        checkpoint_bytes=checkpoint_bytes(parameter_count(m).total, t.weight_bytes, t.master_bytes,
                                          t.optimizer_state_bytes),
        checkpoints_retained=float(knobs["checkpoints_retained"]),
        storage_usd_per_gb_month=storage_price, tdp_w=float(hw.tdp_w[0]),
        power_utilization_fraction=float(knobs["power_utilization_fraction"]), pue=float(knobs["pue"]),
    )
    cost = {k: float(v) for k, v in cost.items()}
    mem = {k[len("memory_"):-len("_bytes")]: v for k, v in out.items()
           if k.startswith("memory_") and k.endswith("_bytes")
           and k not in ("memory_total_bytes", "memory_capacity_bytes")}
    from costmodel.specs.assumptions import Assumptions
    from costmodel.formulas.timing import COLLECTIVES, STEP_COMPONENTS

    communication = []
    for name in COLLECTIVES:
        calls = out[f"comm_{name}_calls_per_step"]
        if calls <= 0:
            continue
        communication.append({
            "collective": name,
            "bytes_per_call": out[f"comm_{name}_bytes_per_call"],
            "calls_per_step": calls,
            "bytes_per_step": out[f"comm_{name}_bytes_per_call"] * calls,
            "group_size": int(out[f"comm_{name}_group_size"]),
            "fabric": "scale-out" if out[f"comm_{name}_spans_nodes"] else "scale-up",
            "time_per_step_s": out[f"comm_{name}_raw_s"],
            "exposed_per_step_s": out[f"comm_{name}_exposed_s"],
        })

    return TrainingEstimate(
        model=spec.name, accelerator=acc.id, system=sys_.id, n_devices=layout.n_devices,
        layout=layout, setup=setup, framework=framework, train_tokens=train_tokens,
        memory_breakdown_bytes=mem, memory_per_device_bytes=out["memory_total_bytes"],
        memory_capacity_bytes=out["memory_capacity_bytes"], fits_in_memory=bool(out["memory_fits"]),
        step_breakdown_s={c: out[f"{c}_s"] for c in STEP_COMPONENTS},
        step_time_s=out["step_time_s"], step_time_lower_s=out["step_time_lower_s"],
        step_time_upper_s=out["step_time_upper_s"],
        tokens_per_s_per_device=out["tokens_per_s_per_device"],
        model_tflops_per_device=out["model_flops_per_s_per_device"] / 1e12,
        mfu=out["mfu"], hfu=out["hfu"], steps=cost["steps"],
        time_total_hours=cost["time_total_hours"],
        time_total_lower_hours=cost["time_total_lower_hours"],
        time_total_upper_hours=cost["time_total_upper_hours"], device_hours=cost["device_hours"],
        offer=f"{chosen.provider} {chosen.offer} ({chosen.region}, {chosen.pricing_model})" if chosen else None,
        usd_per_device_hour=chosen.usd_per_device_hour if chosen else None,
        cost_compute_usd=cost["cost_compute_usd"] if chosen else None,
        cost_storage_usd=cost["cost_storage_usd"] if chosen else None,
        cost_total_usd=cost["cost_total_usd"] if chosen else None,
        energy_kwh=cost["energy_kwh"],
        communication=communication,
        assumptions=Assumptions(framework, overrides).as_records(),
    )


# Many configurations at once ------------------------------------------------------------------

FRAME_DEFAULTS = {
    "pp": 1, "vpp": 1, "dp": 1, "cp": 1, "ep": 1, "tp": 1, "sequence_parallel": False,
    "zero_stage": 0, "recompute": "none", "micro_batch": 1, "global_batch": None,
    "seq_len": 2048, "precision": "bf16", "optimizer": "adamw", "framework": "nemo",
    "system": None, "rank_order": "tp-cp-dp-pp",
}


def evaluate_frame(configs, *, catalog=None):
    """Evaluate a DataFrame of training configurations with the engine, one vectorised pass.

    Required columns: ``model`` (preset name, config path or ModelSpec) and ``accelerator``
    (catalog id). Optional: the fields of ``FRAME_DEFAULTS`` (missing columns take those values),
    ``train_tokens`` and ``usd_per_device_hour`` (for run time and cost). Each row is validated
    at the boundary (an error names the row and field); the formulas then run over all rows as
    numpy columns. Returns the input columns plus memory, step time, throughput, MFU and, when
    given tokens and prices, time and cost of the run.
    """
    import numpy as np
    import pandas as pd
    from pydantic import ValidationError

    from costmodel.tables.catalog import engine_catalog, hardware_table
    from costmodel.formulas.cost import checkpoint_bytes, training_run_cost
    from costmodel.jobs.train import evaluate_training, knob_columns
    from costmodel.formulas.params import parameter_count
    from costmodel.specs.setup import TrainingColumns

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
    specs: dict[str, ModelSpec] = {}
    spec_rows, col_rows, sys_codes = [], [], []
    for i, row in df.iterrows():
        where = f"row {i}"
        try:
            spec = row["model"] if isinstance(row["model"], ModelSpec) else resolve_model(row["model"])
            layout = ParallelLayout(tp=int(row["tp"]), pp=int(row["pp"]), vpp=int(row["vpp"]),
                                    dp=int(row["dp"]), cp=int(row["cp"]), ep=int(row["ep"]),
                                    sequence_parallel=bool(row["sequence_parallel"]),
                                    zero_stage=int(row["zero_stage"]), rank_order=row["rank_order"])
            problems = layout_problems(spec, layout)
            if problems:
                raise ValueError("; ".join(problems))
            gb = row["global_batch"]
            setup = TrainingSetup(precision=row["precision"], optimizer=row["optimizer"],
                                  recompute=row["recompute"], micro_batch=int(row["micro_batch"]),
                                  seq_len=int(row["seq_len"]),
                                  global_batch=None if gb is None or pd.isna(gb) else int(gb))
            system = row["system"] if isinstance(row["system"], str) and row["system"] else \
                catalog.default_system(row["accelerator"]).id
            if catalog.system(system).accelerator != row["accelerator"]:
                raise ValueError(f"system {system!r} does not hold {row['accelerator']}")
            cols = training_columns(layout, setup)
        except ValidationError as exc:
            raise ValueError(format_validation_error(exc, where)) from None
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{where}: {exc.args[0] if exc.args else exc}") from None
        specs.setdefault(spec.name, spec)
        spec_rows.append(spec)
        col_rows.append(cols)
        sys_codes.append(table.system_code(system))
    m = ModelColumns.from_specs(spec_rows)
    t = TrainingColumns.stack(col_rows)
    hw = table.columns(np.array(sys_codes), t.precision)
    knobs = knob_columns(list(df["framework"]))
    out = evaluate_training(m, t, hw, knobs)
    res = df.copy()
    res["n_devices"] = t.n_devices.astype(int)
    res["memory_per_device_gib"] = out["memory_total_bytes"] / 2**30
    res["memory_capacity_gib"] = out["memory_capacity_bytes"] / 2**30
    res["fits_in_memory"] = out["memory_fits"]
    for key in ("step_time_s", "step_time_lower_s", "step_time_upper_s", "tokens_per_s_per_device",
                "mfu", "hfu"):
        res[key] = out[key]
    res["model_tflops_per_device"] = out["model_flops_per_s_per_device"] / 1e12
    if "train_tokens" in df:
        price = df["usd_per_device_hour"].to_numpy(dtype=float) if "usd_per_device_hour" in df else np.nan
        cost = training_run_cost(
            step_time_s=out["step_time_s"], step_time_lower_s=out["step_time_lower_s"],
            step_time_upper_s=out["step_time_upper_s"], tokens_per_step=out["tokens_per_step"],
            train_tokens=df["train_tokens"].to_numpy(dtype=float), n_devices=t.n_devices,
            devices_per_instance=1.0, usd_per_device_hour=price,
            checkpoint_bytes=checkpoint_bytes(parameter_count(m).total, t.weight_bytes, t.master_bytes,
                                              t.optimizer_state_bytes),
            checkpoints_retained=knobs["checkpoints_retained"],
            storage_usd_per_gb_month=0.0, tdp_w=hw.tdp_w,
            power_utilization_fraction=knobs["power_utilization_fraction"], pue=knobs["pue"])
        for key in ("time_total_hours", "device_hours", "cost_compute_usd", "energy_kwh"):
            res[key] = cost[key]
    return res
