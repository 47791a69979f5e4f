"""Dollars, hours and energy of a whole training run from its step time.

- Run length: ceil(tokens / tokens per step) optimizer steps x step time.
- Compute cost: whole instances are billed: ceil(n_devices / devices_per_instance) instances x
  devices_per_instance x USD per device-hour x hours.
- Checkpoint storage: full training state (weights, fp32 master copy, optimizer states) x
  checkpoints retained x USD per GB-month x months the run lasts (730 hours per month).
- Energy: devices x TDP x average power fraction x hours x PUE (kWh); priced only when an
  electricity rate is given (on-premises estimates; cloud prices already include power).
"""

from __future__ import annotations

import numpy as np

from costmodel.specs.columns import Array, as_array

HOURS_PER_MONTH = 730.0


def checkpoint_bytes(n_params: Array, weight_bytes: Array, master_bytes: Array,
                     optimizer_state_bytes: Array) -> Array:
    """Size of one full training-state checkpoint: weights, fp32 master copy and optimizer
    states (gradients are not saved)."""
    return as_array(n_params) * (as_array(weight_bytes) + master_bytes + optimizer_state_bytes)


def training_run_cost(
    *,
    step_time_s: Array,
    step_time_lower_s: Array,
    step_time_upper_s: Array,
    tokens_per_step: Array,
    train_tokens: Array,
    n_devices: Array,
    devices_per_instance: Array,
    usd_per_device_hour: Array,
    checkpoint_bytes: Array,
    checkpoints_retained: Array,
    storage_usd_per_gb_month: Array,
    tdp_w: Array,
    power_utilization_fraction: Array,
    pue: Array,
    electricity_usd_per_kwh: Array = 0.0,
    goodput_fraction: Array = 1.0,
) -> dict[str, Array]:
    """Run length, device-hours and dollars of a training run. ``goodput_fraction``: the share of
    the run's wall-clock time spent in productive steps; the rest (restarts after failures,
    checkpoint writes, evaluation) stretches every hour-based figure by 1 / goodput (Dubey et al.
    2024, 'The Llama 3 Herd of Models', Sec. 3.3.4: over 90% effective training time across 466
    interruptions in a 54-day snapshot of the 16k-GPU run)."""
    steps = np.ceil(as_array(train_tokens) / tokens_per_step)
    stretch = 1.0 / as_array(goodput_fraction)
    hours = steps * step_time_s / 3600.0 * stretch
    n = as_array(n_devices)
    dpi = as_array(devices_per_instance)
    billed_devices = np.ceil(n / dpi) * dpi
    device_hours = n * hours
    compute_usd = billed_devices * hours * usd_per_device_hour
    storage_usd = (as_array(checkpoint_bytes) / 1e9 * checkpoints_retained
                   * storage_usd_per_gb_month * hours / HOURS_PER_MONTH)
    energy_kwh = n * as_array(tdp_w) * power_utilization_fraction * hours / 1000.0 * pue
    rate = as_array(electricity_usd_per_kwh)
    # Unknown TDP leaves the energy unknown (NaN) but must not make a cloud price unknown.
    energy_usd = np.where(rate > 0, energy_kwh * rate, 0.0)
    total = compute_usd + storage_usd + energy_usd
    return {
        "steps": steps,
        "time_total_hours": hours,
        "time_total_lower_hours": steps * step_time_lower_s / 3600.0 * stretch,
        "time_total_upper_hours": steps * step_time_upper_s / 3600.0 * stretch,
        "device_hours": device_hours,
        "billed_device_hours": billed_devices * hours,
        "cost_compute_usd": compute_usd,
        "cost_storage_usd": storage_usd,
        "cost_energy_usd": energy_usd,
        "cost_total_usd": total,
        "cost_per_million_tokens_usd": total / (as_array(train_tokens) / 1e6),
        "energy_kwh": energy_kwh,
    }
