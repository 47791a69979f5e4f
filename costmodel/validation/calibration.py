"""Fit the few efficiency parameters that no datasheet or micro-benchmark gives, on published runs,
and measure how well they transfer (leave one source out).

What is fitted: the *effective* GEMM efficiency in end-to-end training, i.e. the fraction of dense
peak the engine's roofline uses for matrix products. It absorbs what the analytical model does not
itemise (kernel gaps, imperfect shapes, launch latency, casts). Fused-attention efficiencies are not
fitted (published kernel benchmarks, data/calibration/attention.csv).

The parameter is a *ratio*: end-to-end GEMM efficiency over the part's own micro-benchmark (MAMF)
efficiency, one per (compute die, format group). The data decide which exist:
- a (die, group) gets its own ratio when at least ``MIN_FIT_ROWS`` clean reference rows measure it
  (``train_throughput``, the catalog's exact hardware, a reference framework, evaluated);
- parts built from one die share it (``DIE_FAMILIES``); each keeps its own micro-benchmark, so
  B200 and GB200 share a ratio, not an efficiency;
- every other (part, format) takes the mean ratio of the fitted dies of its kind (TPU from TPUs,
  GPU from GPUs; any kind when its kind has none), so an unmeasured part is ranked on the same
  basis as a measured one, never on its raw micro-benchmark;
- frameworks outside ``REFERENCE_FRAMEWORKS`` get one kernel-efficiency scale each when at least
  ``MIN_FIT_ROWS`` of their rows run on a fitted die; otherwise they keep 1.0 (never a constant
  tuned to one or two rows).
Each parameter minimises the mean absolute log ratio predicted/measured of its rows (robust: one
row the engine cannot model, such as a run with an unmodelled kernel, does not drag a whole die) over
a grid; rows depend on one parameter only, so all parameters are searched in one pass.

``cross_validate`` refits without each source's rows (``source_key``: a publication, repository
release or benchmark document) and predicts them: the error on runs the fit never saw.
"""

from __future__ import annotations

import csv
import datetime as _dt
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from costmodel.specs.setup import PRECISION_TABLE
from costmodel.validation.measurements import ValidationBatch, evaluate_validation, prepare_validation

FIT_COMMAND = "costmodel calibrate --write data/calibration/fitted.csv"

#: Parts built from one compute die (efficiency ratios are shared; each part keeps its own peak
#: and micro-benchmark): GA100 (A100 40/80 GB SXM), GH100 (H100 SXM, H200 = more HBM, H800 = less
#: NVLink), the Blackwell B200 die (HGX B200 at 1000 W and GB200 NVL72 at 1200 W).
DIE_FAMILIES = {
    "a100-sxm4-80gb": "ga100", "a100-sxm4-40gb": "ga100",
    "h100-sxm5-80gb": "gh100", "h200-sxm-141gb": "gh100", "h800-sxm5-80gb": "gh100",
    "b200-sxm-180gb": "b200-die", "gb200-nvl72": "b200-die",
}

#: Number formats that share a fitted ratio (same tensor-core path, same kernels).
FORMAT_GROUPS = {"bf16": "16-bit", "fp16": "16-bit", "fp8": "fp8", "tf32": "32-bit", "fp32": "32-bit"}

#: Frameworks whose runs calibrate the hardware (their kernels define scale 1.0): the vendors'
#: own stacks on their parts (Megatron-LM / NeMo on NVIDIA, JAX/MaxText on TPU, Neuron on
#: Trainium).
REFERENCE_FRAMEWORKS = ("megatron", "nemo", "jax", "neuronx")

#: The fewest rows that may set a parameter.
MIN_FIT_ROWS = 3

#: Ratio grid (a GEMM in training may beat the micro-benchmark's best shape only slightly; the
#: resulting efficiency is capped at 1.0 of peak).
RATIO_GRID = np.round(np.arange(0.30, 1.30001, 0.005), 3)
SCALE_GRID = np.round(np.arange(0.50, 1.50001, 0.005), 3)


def source_key(source: str) -> str:
    """The publication a row comes from, for leave-one-source-out: a GitHub repository at its
    commit or release (``owner/repo @abc123``), a repository's benchmark document when no commit
    is named, or a paper / page title up to its first bracket, quote or comma."""
    text = source.strip()
    m = re.match(r"([\w.-]+/[\w.-]+)\s", text + " ")
    if m and not re.match(r"\w+ et al", text):
        repo = m.group(1)
        commit = re.search(r"@([0-9a-f]{6,40})", text)
        if commit:
            return f"{repo} @{commit.group(1)}"
        doc = re.match(r"[\w.-]+/[\w.-]+\s+(\S+)", text)
        return f"{repo} {doc.group(1)}" if doc else repo
    return re.split(r"[(\[',;]", text, maxsplit=1)[0].strip() or text


@dataclass
class _Rows:
    """Per training row of a batch: what the fit needs."""

    ids: list[str]
    die: np.ndarray
    group: np.ndarray
    kind: np.ndarray
    framework: np.ndarray
    source: np.ndarray
    clean: np.ndarray  # train_throughput, exact hardware, evaluated
    base_mm: np.ndarray  # micro-benchmark GEMM efficiency of the row's part and format


def _rows(batch: ValidationBatch, catalog) -> _Rows:
    if not batch.train:  # nothing the engine evaluates: nothing to fit
        e = np.array([], dtype=str)
        return _Rows([], e, e, e, e, e, np.array([], dtype=bool), np.array([]))
    precision_names = list(PRECISION_TABLE)
    prec = [precision_names[int(c)] for c in np.atleast_1d(batch.columns.precision)]
    ids, die, group, kind, fw, src, clean = [], [], [], [], [], [], []
    for p, x in zip(batch.train, prec):
        rid = p.row.text("id")
        res = batch.results[rid]
        acc = p.row.text("accelerator")
        ids.append(rid)
        die.append(DIE_FAMILIES.get(acc, acc))
        group.append(FORMAT_GROUPS.get(PRECISION_TABLE[x][2], PRECISION_TABLE[x][2]))
        kind.append(catalog.accelerator(acc).kind)
        fw.append(p.framework)
        src.append(source_key(p.row.text("source")))
        clean.append(res["category"] == "train_throughput" and not res["hardware_variant"]
                     and res["status"] == "ok")
    return _Rows(ids, np.array(die), np.array(group), np.array(kind), np.array(fw), np.array(src),
                 np.array(clean, dtype=bool), np.array(batch.hardware.matmul_efficiency, dtype=float))


@dataclass
class Fit:
    """Fitted ratios and scales, and the rows each was fitted on."""

    ratios: dict[tuple[str, str], float]  # (die, format group) -> end-to-end / micro-benchmark
    ratio_rows: dict[tuple[str, str], list[str]]
    transfer: dict[tuple[str, str], float]  # (kind, format group) -> mean fitted ratio
    scales: dict[str, float]  # framework -> kernel-efficiency scale
    scale_rows: dict[str, list[str]]

    def ratio(self, die: str, kind: str, group: str) -> tuple[float, str]:
        """The ratio for a part and how it was obtained ('fit' or 'transfer from ...')."""
        if (die, group) in self.ratios:
            return self.ratios[(die, group)], "fit"
        for key in ((kind, group), ("any", group), (kind, "16-bit"), ("any", "16-bit")):
            if key in self.transfer:
                return self.transfer[key], f"transfer {key[0]} {key[1]}"
        return 1.0, "none"


def _hardware(batch: ValidationBatch, rows: _Rows, ratio_per_row: np.ndarray):
    """The batch's hardware columns with each row's GEMM efficiency = micro-benchmark x ratio
    (at most the dense peak)."""
    return replace(batch.hardware, matmul_efficiency=np.minimum(1.0, rows.base_mm * ratio_per_row))


def _ratio_per_row(fit: Fit, rows: _Rows) -> np.ndarray:
    return np.array([fit.ratio(d, k, g)[0] for d, k, g in zip(rows.die, rows.kind, rows.group)])


def _log_ratio(batch: ValidationBatch, hardware, knobs, ids: list[str]) -> np.ndarray:
    frame = evaluate_validation(replace(batch, knobs=knobs), hardware).set_index("id")
    g = frame.loc[ids]
    r = np.log(g["predicted"].astype(float).to_numpy() / g["measured"].astype(float).to_numpy())
    return np.where(g["status"].to_numpy() == "ok", r, np.nan)


def _grid_search(abs_log_ratio, param: np.ndarray, masks: list[np.ndarray], grid: np.ndarray,
                 coarse_every: int = 4) -> list[float]:
    """Per parameter j, the grid value minimising the mean |log ratio| over the rows ``masks[j]``.

    Every row depends on one parameter (``param``: its index, -1 for none), so all parameters are
    tried together: a coarse pass over every ``coarse_every``-th grid value, then every grid
    value within one coarse step of each parameter's coarse optimum."""
    n = len(masks)

    def losses(values_per_param: np.ndarray) -> np.ndarray:
        v = np.where(param >= 0, values_per_param[np.maximum(param, 0)], grid[0])
        lr = abs_log_ratio(v)
        return np.array([np.nanmean(np.where(m, lr, np.nan)) if m.any() else np.inf for m in masks])

    coarse = grid[::coarse_every]
    loss = np.array([losses(np.full(n, v)) for v in coarse])
    centre = np.nanargmin(loss, axis=0) * coarse_every
    offsets = range(-coarse_every + 1, coarse_every)
    idx = np.array([[min(max(c + o, 0), len(grid) - 1) for c in centre] for o in offsets])
    fine = np.array([losses(grid[i]) for i in idx])
    pick = np.nanargmin(fine, axis=0)
    return [float(grid[idx[pick[j], j]]) for j in range(n)]


def _fit(batch: ValidationBatch, rows: _Rows, exclude: set[str] = frozenset()) -> Fit:
    """Fit on ``batch`` without the rows of the sources in ``exclude``."""
    if not rows.ids:
        return Fit({}, {}, {}, {}, {})
    use = rows.clean & ~np.isin(rows.source, list(exclude))
    ref = use & np.isin(rows.framework, REFERENCE_FRAMEWORKS)
    keys = sorted({(str(d), str(g)) for d, g in zip(rows.die[ref], rows.group[ref])})
    keys = [k for k in keys if int((ref & (rows.die == k[0]) & (rows.group == k[1])).sum()) >= MIN_FIT_ROWS]
    param = np.full(len(rows.ids), -1)
    for j, (d, g) in enumerate(keys):
        param[(rows.die == d) & (rows.group == g)] = j
    knobs0 = batch.knobs
    scale0 = np.array(knobs0["matmul_efficiency_scale"], dtype=float, copy=True)

    # Hardware ratios: every parameter tried at every grid value in one evaluation per value.
    ratios: dict[tuple[str, str], float] = {}
    if keys:
        best = _grid_search(lambda v: np.abs(_log_ratio(batch, _hardware(batch, rows, v), knobs0, rows.ids)),
                            param, [ref & (param == j) for j in range(len(keys))], RATIO_GRID)
        ratios = dict(zip(keys, best))
    ratio_rows = {k: [rows.ids[i] for i in np.flatnonzero(ref & (param == j))] for j, k in enumerate(keys)}
    transfer: dict[tuple[str, str], float] = {}
    for (d, g), v in ratios.items():
        kind = str(rows.kind[rows.die == d][0])
        transfer.setdefault((kind, g), []).append(v)
        transfer.setdefault(("any", g), []).append(v)
    transfer = {k: float(np.mean(v)) for k, v in transfer.items()}
    fit = Fit(ratios, ratio_rows, transfer, {}, {})
    hw = _hardware(batch, rows, _ratio_per_row(fit, rows))

    # Framework scales on rows of fitted dies.
    on_fitted = use & (param >= 0) & ~np.isin(rows.framework, REFERENCE_FRAMEWORKS)
    fws = [str(f) for f in sorted(set(rows.framework[on_fitted]))
           if int((on_fitted & (rows.framework == f)).sum()) >= MIN_FIT_ROWS]
    if fws:
        fw_index = np.array([fws.index(f) if f in fws else -1 for f in rows.framework])

        def scaled(v: np.ndarray) -> np.ndarray:
            knobs = dict(knobs0)
            knobs["matmul_efficiency_scale"] = np.where(fw_index >= 0, v, scale0)
            return np.abs(_log_ratio(batch, hw, knobs, rows.ids))

        best = _grid_search(scaled, fw_index, [on_fitted & (fw_index == j) for j in range(len(fws))],
                            SCALE_GRID)
        fit.scales = dict(zip(fws, best))
        fit.scale_rows = {f: [rows.ids[i] for i in np.flatnonzero(on_fitted & (rows.framework == f))]
                          for f in fws}
    return fit


def _apply(batch: ValidationBatch, rows: _Rows, fit: Fit) -> pd.DataFrame:
    if not batch.train:
        return evaluate_validation(batch)
    hw = _hardware(batch, rows, _ratio_per_row(fit, rows))
    knobs = dict(batch.knobs)
    scale = np.array(knobs["matmul_efficiency_scale"], dtype=float, copy=True)
    for f, v in fit.scales.items():
        scale[rows.framework == f] = v
    knobs["matmul_efficiency_scale"] = scale
    return evaluate_validation(replace(batch, knobs=knobs), hw)


def _base_catalog():
    """The shipped catalog with the calibration files except a previous fit."""
    from costmodel.tables.catalog import calibration_files
    from hardware_catalog import load_catalog

    return load_catalog([f for f in calibration_files() if f.name != "fitted.csv"])


def _base_batch(paths=None):
    """The batch on ``_base_catalog`` (the result never depends on what was fitted before)."""
    base = _base_catalog()
    batch = prepare_validation(paths, catalog=base)
    if batch.train:
        # Nor on previously fitted framework scales: the unfitted value (assumptions.yaml, 1.0)
        # unless a row states its own.
        from costmodel.specs.assumptions import _global_knobs

        unfitted = _global_knobs()["matmul_efficiency_scale"].value
        knobs = dict(batch.knobs)
        knobs["matmul_efficiency_scale"] = np.array(
            [float(p.knobs.get("matmul_efficiency_scale", unfitted)) for p in batch.train])
        batch = replace(batch, knobs=knobs)
    return base, batch


@dataclass
class FitResult:
    fit: Fit
    values: dict[tuple[str, str, str], float]  # (accelerator, "matmul", format) -> efficiency
    rows_used: list[str]
    before: pd.DataFrame
    after: pd.DataFrame

    @property
    def framework_scales(self) -> dict[str, float]:
        return self.fit.scales

    @property
    def framework_rows(self) -> dict[str, list[str]]:
        return self.fit.scale_rows


def _catalog_values(fit: Fit, catalog) -> dict[tuple[str, str, str], tuple[float, str, str]]:
    """Efficiency of every (part, matmul format with a peak): ratio x the part's micro-benchmark."""
    formats = sorted({v[2] for v in PRECISION_TABLE.values()})
    out = {}
    for acc in catalog.accelerator_ids:
        part = catalog.accelerator(acc)
        die = DIE_FAMILIES.get(acc, acc)
        for fmt in formats:
            if part.peak(fmt) is None:
                continue
            try:
                base = catalog.efficiency_value(acc, "matmul", fmt)
            except Exception:
                continue
            ratio, how = fit.ratio(die, part.kind, FORMAT_GROUPS.get(fmt, fmt))
            if how == "none":
                continue
            out[(acc, "matmul", fmt)] = (min(1.0, base.value * ratio), how,
                                         f"{base.value:.3f} ({base.accelerator} {base.precision or 'any'} "
                                         f"micro-benchmark row) x {ratio:.3f}")
    return out


def fit(paths=None) -> FitResult:
    """Fit on every public row; ``values`` holds the efficiency each catalog part gets."""
    base, batch = _base_batch(paths)
    rows = _rows(batch, base)
    f = _fit(batch, rows)
    values = {k: v[0] for k, v in _catalog_values(f, base).items()}
    used = sorted({i for ids in f.ratio_rows.values() for i in ids})
    return FitResult(f, values, used, evaluate_validation(batch), _apply(batch, rows, f))


def cross_validate(paths=None) -> pd.DataFrame:
    """Leave one source out: for every source holding rows that set a parameter, refit without
    that source's rows and predict them.

    Returns ``validate()``'s frame (the shipped calibration: ``predicted``, ``rel_error``) with
    ``source`` (``source_key``), ``cv_predicted`` and ``cv_rel_error``. A row whose source sets
    no parameter (memory, serving, variants, sources of non-fitted parts) is predicted by a fit
    that never saw it already, so its held-out prediction is its in-sample one."""
    from costmodel.validation.measurements import read_measurements, validate

    base, batch = _base_batch(paths)
    rows = _rows(batch, base)
    full = _fit(batch, rows)
    out = validate(paths).set_index("id")
    out["source"] = pd.Series({r.text("id"): source_key(r.text("source")) for r in read_measurements(paths)})
    out["cv_predicted"] = out["predicted"].astype(float)
    src_of = dict(zip(rows.ids, rows.source))
    used = {i for ids in list(full.ratio_rows.values()) + list(full.scale_rows.values()) for i in ids}
    for s in sorted({src_of[i] for i in used}):
        held = _apply(batch, rows, _fit(batch, rows, exclude={s})).set_index("id")
        mine = [i for i in rows.ids if src_of[i] == s]
        out.loc[mine, "cv_predicted"] = held.loc[mine, "predicted"].astype(float)
    ok = out["status"] == "ok"
    out["cv_rel_error"] = np.nan
    out.loc[ok, "cv_rel_error"] = ((out.loc[ok, "cv_predicted"] - out.loc[ok, "measured"])
                                   / out.loc[ok, "measured"])
    return out.reset_index()


def median_abs_error_pct(frame: pd.DataFrame, ids: list[str]) -> float:
    """Median |relative error| in percent of the result rows ``ids``."""
    g = frame[frame["id"].isin(ids)]
    return float((g["rel_error"].abs() * 100).median())


def write_fitted(result: FitResult, path: str | Path, catalog=None) -> Path:
    """Write ``fitted.csv`` (every part's GEMM efficiency with how it was obtained) and
    ``framework_knobs.yaml`` (the fitted framework scales) beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    today = _dt.date.today().isoformat()
    if catalog is None:
        catalog = _base_catalog()
    f = result.fit
    notes = {}
    for (die, group), ids in f.ratio_rows.items():
        notes[(die, group)] = (
            f"{die} {group} ratio {f.ratios[(die, group)]:.3f} fitted on {len(ids)} reference "
            f"train_throughput rows: {' '.join(ids)}; median |error| on them "
            f"{median_abs_error_pct(result.before, ids):.1f}% before, "
            f"{median_abs_error_pct(result.after, ids):.1f}% after")
    fitted_dies = ", ".join(f"{d} {g}" for d, g in sorted(f.ratios))
    rows = []
    for (acc, quantity, fmt), (value, how, basis) in sorted(_catalog_values(f, catalog).items()):
        die = DIE_FAMILIES.get(acc, acc)
        group = FORMAT_GROUPS.get(fmt, fmt)
        if how == "fit":
            source = f"fit: `{FIT_COMMAND}`: {basis}"
            note = notes[(die, group)]
        else:
            source = f"fit {how}: `{FIT_COMMAND}`: {basis}"
            note = (f"no {MIN_FIT_ROWS}+ reference training rows of this part in {group}; the mean "
                    f"ratio of end-to-end to micro-benchmark GEMM efficiency of the fitted dies "
                    f"({how.removeprefix('transfer ')}; fitted: {fitted_dies}) is applied")
        rows.append([acc, fmt, quantity, "", f"{value:.3f}", today, source, note])
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["accelerator", "precision", "quantity", "size", "value", "as_of", "source", "notes"])
        w.writerows(rows)
    knobs = {}
    for fw, v in sorted(f.scales.items()):
        ids = f.scale_rows[fw]
        knobs[fw] = {"knobs": {"matmul_efficiency_scale": {
            "value": v, "min": 0, "max": 2, "min_exclusive": True, "unit": "fraction",
            "source": f"fit: `{FIT_COMMAND}` (costmodel.validation.calibration) on {len(ids)} {fw} rows on "
                      f"fitted hardware: {' '.join(ids)}; median |error| on them "
                      f"{median_abs_error_pct(result.before, ids):.1f}% before, "
                      f"{median_abs_error_pct(result.after, ids):.1f}% after",
            "description": "Multiplier on the matmul and attention efficiencies for this framework's kernels."}}}
    (path.parent / "framework_knobs.yaml").write_text(
        "# Written by `" + FIT_COMMAND + "`; do not edit by hand.\n" + yaml.safe_dump(knobs, sort_keys=False, width=110))
    return path
