"""The serving face for notebooks: ``estimate_serving`` for one replica configuration, through
the serving job's own functions (``jobs.serve``), so it equals a one-configuration serving plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from costmodel.formulas.serving import DECODE_COMPONENTS, prefill_time
from costmodel.jobs import serve as job
from costmodel.specs.assumptions import Assumptions
from costmodel.specs.columns import ModelColumns
from costmodel.specs.serving import ReplicaLayout, ServingLoad, ServingSetup, serving_codes
from costmodel.specs.spec import ModelSpec, ModelSpecError, resolve_model
from costmodel.tables.catalog import engine_catalog, hardware_table, offer_table, resolve_system
from costmodel.tables.knobs import knob_columns

ModelLike = ModelSpec | str | Path
MAX_AUTO_BATCH = 1024


class ServingEstimate(BaseModel):
    """One replica configuration serving requests of the given shape (units in the names).

    Without a load: the replica's physics. With a load: the replicas that meet the SLOs, p95
    latencies, and (with an offer) the monthly bill and USD per million tokens. A configuration
    that does not fit reports ``fits_in_memory`` False with its figures at batch 1."""

    model_config = ConfigDict(frozen=True)

    model: str
    accelerator: str
    system: str
    layout: ReplicaLayout
    setup: ServingSetup
    devices_per_replica: int
    batch: int
    max_batch: int
    fits_in_memory: bool
    memory_breakdown_bytes: dict[str, float]
    memory_per_device_bytes: float
    memory_capacity_bytes: float
    prefill_s: float
    prefill_breakdown_s: dict[str, float]
    ttft_s: float
    tpot_s: float
    decode_breakdown_s: dict[str, float]
    decode_bound: str
    gemms_memory_bound_share: float
    output_tokens_per_s_per_replica: float
    output_tokens_per_s_per_device: float
    requests_per_s_per_replica: float
    service_time_s: float
    replicas: int | None = None
    n_devices: int | None = None
    ttft_p95_s: float | None = None
    tpot_p95_s: float | None = None
    e2e_p95_s: float | None = None
    utilization: float | None = None
    slo_note: str | None = None
    offer: str | None = None
    instances: int | None = None
    billing: str | None = None
    cost_per_month_usd: float | None = None
    usd_per_million_input_tokens: float | None = None
    usd_per_million_output_tokens: float | None = None
    cost_note: str | None = None
    assumptions: list[dict]


def _evaluate(spec, layout, setup, batch, sys_code, table, knobs, load):
    coded = serving_codes(layout, setup, batch)
    return job.evaluate_serving(ModelColumns.from_spec(spec), coded, sys_code, table, knobs, load)


def estimate_serving(
    model: ModelLike,
    accelerator: str,
    layout: ReplicaLayout | None = None,
    setup: ServingSetup | None = None,
    *,
    load: ServingLoad | None = None,
    system: str | None = None,
    offer: str | None = None,
    pricing_model: str = "on-demand",
    overrides: dict[str, float] | None = None,
    catalog=None,
) -> ServingEstimate:
    """Prefill and decode times by component, TTFT, TPOT, throughput per replica and per device,
    memory; with ``load`` the replicas, p95 latencies and the cheapest bill (or ``offer``)."""
    spec = resolve_model(model)
    layout = layout or ReplicaLayout()
    if setup is None:
        if load is None:
            raise ValueError("give setup (input_len, output_len) or load")
        setup = ServingSetup(input_len=load.input_len, output_len=load.output_len)
    if load is not None and (load.input_len, load.output_len) != (setup.input_len, setup.output_len):
        raise ValueError("setup and load disagree on input_len/output_len")
    catalog = catalog or engine_catalog()
    acc, sys_ = resolve_system(catalog, accelerator, system)
    table = hardware_table(catalog)
    knobs = knob_columns("nemo", overrides)
    code = table.system_code(sys_.id)
    probe = _evaluate(spec, layout, setup, setup.batch or 1, code, table, knobs, None)
    _raise_for(int(probe.reason[0]), spec, layout, acc.id, sys_.id, setup, table)
    fits_max = int(probe.out["max_batch"][0])
    batch = setup.batch or max(1, min(fits_max, MAX_AUTO_BATCH))
    ev = _evaluate(spec, layout, setup, batch, code, table, knobs, load)
    return _estimate(spec, acc.id, sys_.id, layout, setup, batch, ev, load, catalog, table, knobs,
                     offer, pricing_model, overrides)


def _raise_for(reason: int, spec, layout, acc_id, system, setup, table) -> None:
    if reason == job.LAYOUT:
        raise ModelSpecError(f"layout tp={layout.tp} pp={layout.pp} ep={layout.ep} cannot shard "
                             f"{spec.name} (heads, KV heads, layers and experts must divide)")
    if reason == job.FORMAT:
        have = ", ".join(table.formats_with_peak(system)) or "none"
        raise ValueError(f"{acc_id} has no dense peak for precision {setup.precision!r}: format "
                         f"unsupported on hardware (formats it has: {have})")
    if reason == job.DATA:
        raise ValueError(f"{acc_id}: no efficiency data for {setup.precision} (no efficiency or price data)")


def _estimate(spec, acc_id, sys_id, layout, setup, batch, ev, load, catalog, table, knobs, offer,
              pricing_model, overrides) -> ServingEstimate:
    out = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in ev.out.items()}
    pre = prefill_time(ev.model, ev.s, ev.hw, job.serving_knobs(knobs), sequences=1.0, prompt=setup.input_len)
    pre = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in pre.items()}
    fields = dict(
        model=spec.name, accelerator=acc_id, system=sys_id, layout=layout, setup=setup,
        devices_per_replica=layout.devices, batch=batch, max_batch=int(out["max_batch"]),
        fits_in_memory=bool(out["memory_fits"]),
        memory_breakdown_bytes={p: out[f"memory_{p}_bytes"] for p in job.MEMORY_PARTS},
        memory_per_device_bytes=out["memory_total_bytes"], memory_capacity_bytes=out["memory_capacity_bytes"],
        prefill_s=pre["total"], prefill_breakdown_s={k: v for k, v in pre.items() if k != "total"},
        ttft_s=out["ttft_service_s"], tpot_s=out["tpot_s"],
        decode_breakdown_s={c: out[f"decode_{c}_s"] for c in DECODE_COMPONENTS},
        decode_bound="memory" if out["gemms_memory_bound_share"] >= 0.5 else "compute",
        gemms_memory_bound_share=out["gemms_memory_bound_share"],
        output_tokens_per_s_per_replica=out["output_tokens_per_s_per_replica"],
        output_tokens_per_s_per_device=out["output_tokens_per_s_per_device"],
        requests_per_s_per_replica=out["requests_per_s_per_replica"],
        service_time_s=out["service_time_s"],
        assumptions=Assumptions("nemo", overrides).as_records(),
    )
    if load is not None and fields["fits_in_memory"]:
        fields.update(_with_load(ev, out, load, catalog, table, knobs, sys_id, offer, pricing_model))
    return ServingEstimate(**fields)


def _with_load(ev, out, load, catalog, table, knobs, sys_id, offer, pricing_model) -> dict:
    reason = int(ev.reason[0])
    fields = dict(replicas=int(out["replicas"]), n_devices=int(out["n_devices"]),
                  ttft_p95_s=out["ttft_p95_s"], tpot_p95_s=out["tpot_s"], e2e_p95_s=out["e2e_p95_s"],
                  utilization=out["utilization"])
    if reason:
        fields["slo_note"] = job.REASONS[reason]
    offers = offer_table(catalog).select(table.system_code(sys_id), pricing_model, offer)
    if offer is not None and len(offers) == 0:
        raise ValueError(f"no {pricing_model} offer {offer!r} for system {sys_id}")
    if len(offers) == 0:
        fields["cost_note"] = f"no {pricing_model} offer for system {sys_id} in the catalog: cost not computed"
        return fields
    cost = job.price_serving(ev, np.zeros(len(offers), dtype=np.int64), offers, np.arange(len(offers)),
                             load, knobs)
    best = int(np.lexsort((np.arange(len(offers)), cost["cost_per_month_usd"]))[0])
    c = {k: float(np.asarray(v)[best]) for k, v in cost.items()}
    from costmodel.jobs.train import billing_note

    fields.update(offer=offers.describe(best), instances=int(c["instances"]),
                  billing=billing_note(out["n_devices"], c["instances"], c["devices_per_instance"]),
                  cost_per_month_usd=c["cost_per_month_usd"],
                  usd_per_million_input_tokens=c["usd_per_million_input_tokens"],
                  usd_per_million_output_tokens=c["usd_per_million_output_tokens"])
    return fields


def batch_curve(
    model: ModelLike,
    accelerator: str,
    layout: ReplicaLayout | None = None,
    setup: ServingSetup | None = None,
    *,
    batches=None,
    system: str | None = None,
    overrides: dict[str, float] | None = None,
    catalog=None,
):
    """Latency against throughput of one replica as its batch grows: a DataFrame with one row per
    batch (``batch``, ``tpot_s``, ``ttft_s``, ``output_tokens_per_s_per_replica``,
    ``memory_per_device_gib``, ``fits_in_memory``), evaluated in one vectorised pass of the
    serving job. Default batches: powers of two up to the largest that fits (and one beyond)."""
    import pandas as pd

    spec = resolve_model(model)
    layout = layout or ReplicaLayout()
    if setup is None:
        raise ValueError("give setup (input_len, output_len)")
    catalog = catalog or engine_catalog()
    acc, sys_ = resolve_system(catalog, accelerator, system)
    table = hardware_table(catalog)
    knobs = knob_columns("nemo", overrides)
    code = table.system_code(sys_.id)
    if batches is None:
        probe = _evaluate(spec, layout, setup, 1, code, table, knobs, None)
        _raise_for(int(probe.reason[0]), spec, layout, acc.id, sys_.id, setup, table)
        top = max(1, int(probe.out["max_batch"][0]))
        batches = [b for b in (2**i for i in range(21)) if b <= 2 * top]
    b = np.asarray(list(batches), dtype=np.float64)
    coded = {**serving_codes(layout, setup, 1), "batch": b}
    ev = job.evaluate_serving(ModelColumns.from_spec(spec), coded, code, table, knobs)
    if ev.live.size != len(b):
        _raise_for(int(ev.reason[ev.reason != job.MEMORY][0]), spec, layout, acc.id, sys_.id, setup, table)
    out = ev.out
    return pd.DataFrame({
        "batch": b.astype(int), "tpot_s": out["tpot_s"], "ttft_s": out["ttft_service_s"],
        "output_tokens_per_s_per_replica": out["output_tokens_per_s_per_replica"],
        "memory_per_device_gib": out["memory_total_bytes"] / 2**30,
        "fits_in_memory": np.asarray(out["memory_fits"], dtype=bool),
    })
