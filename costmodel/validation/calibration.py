"""Fit the few efficiency parameters that no datasheet or micro-benchmark gives, on published runs.

What is fitted: the *effective* GEMM efficiency in end-to-end training per accelerator and number
format, i.e. the fraction of dense peak that the engine's roofline uses for matrix products.
Fused-attention efficiencies are not fitted: they come from published kernel benchmarks
(data/calibration/attention.csv). They absorb what the analytical model does not itemise (kernel gaps, imperfect
shapes, launch latency, casts). The fit:
- uses only ``train_throughput`` rows whose hardware is the catalog part (rows flagged
  'HARDWARE VARIANT' in their notes are reported, never fitted);
- minimises the mean squared log ratio predicted/measured by coordinate descent over a grid of
  plausible values in (0, 1] (never above the dense peak);
- writes ``data/calibration/fitted.csv`` in the catalog's efficiency schema with the command, the
  rows used and the before/after errors in each row's notes. No per-row factor exists anywhere.
Parts built from the same silicon inherit the fitted values (documented in SHARED_SILICON).
"""

from __future__ import annotations

import csv
import datetime as _dt
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from costmodel.validation.measurements import ValidationBatch, evaluate_validation, prepare_validation
from costmodel.specs.setup import PRECISION_TABLE

FIT_COMMAND = "costmodel calibrate --write data/calibration/fitted.csv"


@dataclass(frozen=True)
class FitParameter:
    accelerator: str
    quantity: str  # "matmul" or "attention"
    formats: tuple[str, ...]  # number formats this value applies to


FIT_PARAMETERS = (
    FitParameter("a100-sxm4-80gb", "matmul", ("fp16", "bf16")),
    FitParameter("h100-sxm5-80gb", "matmul", ("bf16", "fp16")),
    FitParameter("h100-sxm5-80gb", "matmul", ("fp8",)),
)

#: Parts that share the fitted values of another part because they are the same compute die:
#: A100 40GB/80GB (GA100), H200 and H800 with H100 SXM (GH100; H200 differs in memory only, H800
#: in NVLink only).
SHARED_SILICON = {
    "a100-sxm4-40gb": "a100-sxm4-80gb",
    "h200-sxm-141gb": "h100-sxm5-80gb",
    "h800-sxm5-80gb": "h100-sxm5-80gb",
}

GRID = np.round(np.arange(0.20, 1.0001, 0.005), 3)

#: Frameworks whose runs calibrate the hardware efficiencies (their kernels define scale 1.0).
REFERENCE_FRAMEWORKS = ("megatron", "nemo", "jax")


def _row_masks(batch: ValidationBatch) -> tuple[np.ndarray, list[np.ndarray]]:
    """Which training rows are used by the fit, and which rows each parameter touches."""
    precision_names = list(PRECISION_TABLE)
    fit_rows, masks = [], []
    for p in batch.train:
        res = batch.results[p.row.text("id")]
        fit_rows.append(res["category"] == "train_throughput" and not res["hardware_variant"]
                        and res["status"] == "ok" and p.framework in REFERENCE_FRAMEWORKS)
    fit_rows = np.array(fit_rows, dtype=bool)
    accs = np.array([SHARED_SILICON.get(a, a) for a in (p.row.text("accelerator") for p in batch.train)])
    prec = np.array([precision_names[int(c)] for c in np.atleast_1d(batch.columns.precision)])
    mm_fmt = np.array([PRECISION_TABLE[x][2] for x in prec])
    attn_fmt = np.array([PRECISION_TABLE[x][3] for x in prec])
    for fp in FIT_PARAMETERS:
        fmt = mm_fmt if fp.quantity == "matmul" else attn_fmt
        masks.append((accs == fp.accelerator) & np.isin(fmt, fp.formats))
    return fit_rows, masks


def _with_values(batch: ValidationBatch, masks: list[np.ndarray], values: np.ndarray):
    hw = batch.hardware
    mm = np.array(hw.matmul_efficiency, dtype=float, copy=True)
    at = np.array(hw.attention_efficiency, dtype=float, copy=True)
    for fp, mask, v in zip(FIT_PARAMETERS, masks, values):
        (mm if fp.quantity == "matmul" else at)[mask] = v
    return replace(hw, matmul_efficiency=mm, attention_efficiency=at)


def _loss(frame: pd.DataFrame, ids: set[str]) -> float:
    g = frame[frame["id"].isin(ids) & (frame["status"] == "ok")]
    r = np.log(g["predicted"].astype(float) / g["measured"].astype(float))
    # model_tflops rows are rates: a too-fast prediction shows as a too-high rate; the log ratio
    # is symmetric, so both kinds of metric count alike.
    return float(np.mean(r**2))


@dataclass
class FitResult:
    values: dict[tuple[str, str, str], float]
    rows_used: list[str]
    before: pd.DataFrame
    after: pd.DataFrame
    framework_scales: dict[str, float]
    framework_rows: dict[str, list[str]]


def fit(paths=None) -> FitResult:
    """Fit FIT_PARAMETERS on the public rows; returns values and before/after results."""
    from costmodel.tables.catalog import calibration_files
    from hardware_catalog import load_catalog

    # Start from the shipped catalog plus the non-fitted calibration files (never from a previous
    # fit, so the result does not depend on what was fitted before).
    base = load_catalog([f for f in calibration_files() if f.name != "fitted.csv"])
    batch = prepare_validation(paths, catalog=base)
    fit_rows, masks = _row_masks(batch)
    ids = {p.row.text("id") for p, used in zip(batch.train, fit_rows) if used}
    before = evaluate_validation(batch)
    values = np.array([float(np.nanmedian(np.where(m, (batch.hardware.matmul_efficiency
                                                        if fp.quantity == "matmul"
                                                        else batch.hardware.attention_efficiency), np.nan)))
                       if m.any() else 0.6 for fp, m in zip(FIT_PARAMETERS, masks)])
    values = np.where(np.isfinite(values), values, 0.6)
    for _sweep in range(4):
        for j in range(len(values)):
            if not (masks[j] & fit_rows).any():
                continue
            losses = []
            for v in GRID:
                trial = values.copy()
                trial[j] = v
                losses.append(_loss(evaluate_validation(batch, _with_values(batch, masks, trial)), ids))
            values[j] = GRID[int(np.argmin(losses))]
    hw_fitted = _with_values(batch, masks, values)
    # Frameworks outside the reference set: one kernel-efficiency scale each, fitted on their
    # rows on matching hardware, with the hardware values just fitted.
    scales, fw_rows = {}, {}
    frameworks = np.array([p.framework for p in batch.train])
    clean = np.array([batch.results[p.row.text("id")]["category"] == "train_throughput"
                      and not batch.results[p.row.text("id")]["hardware_variant"] for p in batch.train])
    base_scale = np.array(batch.knobs["matmul_efficiency_scale"], dtype=float, copy=True)
    for fw in sorted(set(frameworks) - set(REFERENCE_FRAMEWORKS)):
        rows = clean & (frameworks == fw)
        if not rows.any():
            continue
        fw_ids = {p.row.text("id") for p, r in zip(batch.train, rows) if r}
        losses = []
        for v in GRID:
            knobs = dict(batch.knobs)
            trial = base_scale.copy()
            trial[frameworks == fw] = v
            knobs["matmul_efficiency_scale"] = trial
            losses.append(_loss(evaluate_validation(replace(batch, knobs=knobs), hw_fitted), fw_ids))
        fw = str(fw)
        scales[fw] = float(GRID[int(np.argmin(losses))])
        fw_rows[fw] = sorted(fw_ids)
        base_scale[frameworks == fw] = scales[fw]
    knobs = dict(batch.knobs)
    knobs["matmul_efficiency_scale"] = base_scale
    after = evaluate_validation(replace(batch, knobs=knobs), hw_fitted)
    out = {}
    for fp, v in zip(FIT_PARAMETERS, values):
        for fmt in fp.formats:
            out[(fp.accelerator, fp.quantity, fmt)] = float(v)
    return FitResult(out, sorted(ids), before, after, scales, fw_rows)


def median_abs_error_pct(frame: pd.DataFrame, ids: list[str]) -> float:
    """Median |relative error| in percent of the result rows ``ids``."""
    g = frame[frame["id"].isin(ids)]
    return float((g["rel_error"].abs() * 100).median())


def transfer_ratios(result: FitResult, catalog) -> dict[str, float]:
    """Fitted end-to-end GEMM efficiency over the part's micro-benchmark (MAMF) efficiency, averaged
    over the fitted parts: one ratio for 16/32-bit formats and one for fp8."""
    ratios: dict[str, list[float]] = {"16": [], "fp8": []}
    for (acc, quantity, fmt), v in result.values.items():
        if quantity != "matmul" or fmt == "fp16":
            continue
        mamf = catalog.efficiency_value(acc, "matmul", fmt).value
        ratios["fp8" if fmt == "fp8" else "16"].append(v / mamf)
    return {k: float(np.mean(v)) for k, v in ratios.items() if v}


def transferred_rows(result: FitResult, catalog) -> list[list[str]]:
    """GEMM efficiencies for parts without their own fit: micro-benchmark value x transfer ratio,
    so that uncalibrated parts are not ranked on a more optimistic basis than calibrated ones."""
    ratios = transfer_ratios(result, catalog)
    formats = sorted({v[2] for v in PRECISION_TABLE.values()})  # matmul formats the engine uses
    fitted_accs = {a for (a, _, _) in result.values} | set(SHARED_SILICON)
    today = _dt.date.today().isoformat()
    rows = []
    for acc in catalog.accelerator_ids:
        if acc in fitted_accs:
            continue
        part = catalog.accelerator(acc)
        for fmt in formats:
            if part.peak(fmt) is None:
                continue
            key = "fp8" if fmt == "fp8" else "16"
            if key not in ratios:
                continue
            try:
                base = catalog.efficiency_value(acc, "matmul", fmt)
            except Exception:
                continue
            value = min(1.0, base.value * ratios[key])
            rows.append([acc, fmt, "matmul", "", f"{value:.3f}", today,
                         f"fit transfer: `{FIT_COMMAND}`: {base.value:.3f} ({base.accelerator} "
                         f"{base.precision or 'any'} micro-benchmark row) x {ratios[key]:.3f}",
                         f"no training run of this part is in the public rows; the ratio of fitted "
                         f"end-to-end to micro-benchmark GEMM efficiency on the calibrated parts "
                         f"({', '.join(sorted({a for (a, _, f) in result.values}))}) is applied"])
    return rows


def write_fitted(result: FitResult, path: str | Path, catalog=None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    today = _dt.date.today().isoformat()
    rows = []
    by_acc: dict[str, list[str]] = {}
    for p in result.rows_used:
        by_acc.setdefault(p, [])
    before, after = median_abs_error_pct(result.before, result.rows_used), median_abs_error_pct(result.after, result.rows_used)
    note = (f"fitted on {len(result.rows_used)} train_throughput rows of data/validation/public.csv "
            f"(matching hardware only): {' '.join(result.rows_used)}; median |error| on them "
            f"{before:.1f}% before, {after:.1f}% after")
    for (acc, quantity, fmt), v in sorted(result.values.items()):
        rows.append([acc, fmt, quantity, "", f"{v:.3f}", today,
                     f"fit: `{FIT_COMMAND}` (costmodel.validation.calibration)", note])
        for child, parent in sorted(SHARED_SILICON.items()):
            if parent == acc:
                rows.append([child, fmt, quantity, "", f"{v:.3f}", today,
                             f"fit: `{FIT_COMMAND}`; inherited from {acc} (same compute die)", note])
    if catalog is None:
        from costmodel.tables.catalog import calibration_files
        from hardware_catalog import load_catalog

        catalog = load_catalog([f for f in calibration_files() if f.name != "fitted.csv"])
    rows += transferred_rows(result, catalog)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["accelerator", "precision", "quantity", "size", "value", "as_of", "source", "notes"])
        w.writerows(rows)
    knobs = {}
    for fw, v in sorted(result.framework_scales.items()):
        ids = result.framework_rows[fw]
        knobs[fw] = {"knobs": {"matmul_efficiency_scale": {
            "value": v, "min": 0, "max": 2, "min_exclusive": True, "unit": "fraction",
            "source": f"fit: `{FIT_COMMAND}` (costmodel.validation.calibration) on {len(ids)} {fw} rows on "
                      f"matching hardware: {' '.join(ids)}; median |error| on them "
                      f"{median_abs_error_pct(result.before, ids):.1f}% before, {median_abs_error_pct(result.after, ids):.1f}% after",
            "description": "Multiplier on the matmul and attention efficiencies for this framework's kernels."}}}
    (path.parent / "framework_knobs.yaml").write_text(
        "# Written by `" + FIT_COMMAND + "`; do not edit by hand.\n" + yaml.safe_dump(knobs, sort_keys=False, width=110))
    return path
