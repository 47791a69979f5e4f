"""``costmodel catalog ...``: list accelerators, systems, offers and the cheapest offers.

``register(subparsers)`` adds the ``catalog`` sub-command to an argparse subparsers object;
every leaf parser sets ``func(args) -> int`` which writes to ``sys.stdout``. Bad filter values
print a one-line error naming the flag and the allowed values to ``sys.stderr`` and return 2.

Standalone: ``python -m hardware_catalog.cli accelerators --kind gpu --format csv``.

``--format csv`` passes every text cell through :func:`hardware_catalog.csvsafe.guard_text`: a
cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading apostrophe (OWASP CSV
injection guidance), since offers/accelerators may come from a user's own catalog file.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
from typing import Callable, Sequence

import pandas as pd

from .catalog import Catalog, default_catalog, load_catalog
from .check import DEFAULT_MAX_AGE_DAYS, check_catalog
from .csvsafe import write_csv
from .loader import CatalogError
from .models import KINDS, NUMBER_FORMATS, PRICING_MODELS
from .units import format_quantity

__all__ = ["register", "main", "build_parser"]


class _UsageError(Exception):
    """A bad flag value: reported as 'error: --flag: ...' with exit code 2."""


def _split(values: Sequence[str] | None) -> list[str] | None:
    """``--kind gpu,tpu --kind asic`` -> ['gpu', 'tpu', 'asic']; None if the flag was not given."""
    if not values:
        return None
    out: list[str] = []
    for v in values:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _check(flag: str, values: list[str] | None, allowed: Sequence[str]) -> list[str] | None:
    if values is None:
        return None
    bad = [v for v in values if v not in allowed]
    if bad:
        raise _UsageError(f"{flag}: unknown value {bad[0]!r}; allowed: {', '.join(allowed)}")
    return values


def _catalog(args: argparse.Namespace) -> Catalog:
    files = getattr(args, "catalog", None) or []
    mode = getattr(args, "catalog_mode", "merge")
    if not files and mode == "merge":
        return default_catalog()
    return load_catalog(files, mode=mode)


def _write(df: pd.DataFrame, fmt: str, table: pd.DataFrame | None = None) -> None:
    if fmt == "json":
        records = json.loads(df.to_json(orient="records"))  # numpy scalars -> plain JSON values
        sys.stdout.write(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        # user catalog files put arbitrary text in these cells: neutralise spreadsheet formulas
        write_csv(df, sys.stdout, float_format="%.15g")
    else:
        shown = table if table is not None else df
        if shown.empty:
            sys.stdout.write("(no rows)\n")
        else:
            sys.stdout.write(shown.to_string(index=False) + "\n")


def _human_accelerators(df: pd.DataFrame) -> pd.DataFrame:
    def q(dim: str) -> Callable[[float], str]:
        return lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else format_quantity(v, dim, 4)

    out = pd.DataFrame({"id": df["id"], "kind": df["kind"], "vendor": df["vendor"]})
    out["memory"] = df["memory_bytes"].map(q("bytes"))
    out["mem_bw"] = df["memory_bandwidth_bytes_per_s"].map(q("bytes_per_s"))
    for fmt in NUMBER_FORMATS:
        col = df[f"peak_{fmt}_flops_per_s"]
        scale = 1e12
        out[f"{fmt} T{'OPS' if fmt.startswith('int') else 'FLOP/s'}"] = col.map(lambda v: "-" if math.isnan(v) else f"{v / scale:.6g}")
    out["sparsity"] = df["sparsity_pattern"].fillna("")
    out["tdp"] = df["tdp_w"].map(lambda v: "" if math.isnan(v) else f"{v:.0f} W")
    out["year"] = df["release_year"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    return out


def _cmd_accelerators(args: argparse.Namespace) -> int:
    kinds = _check("--kind", _split(args.kind), KINDS)
    fmts = _check("--supports", _split(args.supports), NUMBER_FORMATS)
    cat = _catalog(args)
    df = cat.accelerators_frame()
    if kinds is not None:
        df = df[df["kind"].isin(kinds)]
    for fmt in fmts or ():
        df = df[df[f"peak_{fmt}_flops_per_s"].notna()]
    df = df.reset_index(drop=True)
    _write(df, args.format, _human_accelerators(df) if args.format == "table" else None)
    return 0


def _cmd_systems(args: argparse.Namespace) -> int:
    cat = _catalog(args)
    df = cat.systems_frame()
    accs = _split(args.accelerator)
    if accs is not None:
        _check("--accelerator", accs, list(cat.accelerator_ids))
        df = df[df["accelerator"].isin(accs)]
    df = df.reset_index(drop=True)
    table = None
    if args.format == "table":
        table = pd.DataFrame(
            {
                "id": df["id"],
                "accelerator": df["accelerator"],
                "default": df["default"].map(lambda b: "*" if b else ""),
                "devices/node": df["devices_per_node"],
                "scale-up": df["scaleup_fabric"],
                "domain": df["scaleup_domain_devices"],
                "up GB/s (1-way)": (df["scaleup_bandwidth_bytes_per_s"] / 1e9).map(lambda v: f"{v:.4g}"),
                "scale-out": df["scaleout_fabric"],
                "out GB/s (1-way)": (df["scaleout_bandwidth_bytes_per_s"] / 1e9).map(lambda v: f"{v:.4g}"),
            }
        )
    _write(df, args.format, table)
    return 0


def _filtered_offers(args: argparse.Namespace, cat: Catalog) -> pd.DataFrame:
    kinds = _check("--kind", _split(args.kind), KINDS)
    pricing = _check("--pricing", _split(args.pricing), PRICING_MODELS)
    accs = _split(args.accelerator)
    if accs is not None:
        _check("--accelerator", accs, list(cat.accelerator_ids))
    provs = _split(args.provider)
    if provs is not None:
        known = {p.lower(): p for p in cat.providers}
        bad = [p for p in provs if p.lower() not in known]
        if bad:
            raise _UsageError(f"--provider: unknown value {bad[0]!r}; allowed: {', '.join(cat.providers)}")
        provs = [known[p.lower()] for p in provs]
    df = cat.offers_frame()
    if kinds is not None:
        df = df[df["kind"].isin(kinds)]
    if pricing is not None:
        df = df[df["pricing_model"].isin(pricing)]
    if accs is not None:
        df = df[df["accelerator"].isin(accs)]
    if provs is not None:
        df = df[df["provider"].isin(provs)]
    return df.reset_index(drop=True)


def _cmd_offers(args: argparse.Namespace) -> int:
    cat = _catalog(args)
    df = _filtered_offers(args, cat)
    if args.sort == "price":
        df = df.sort_values(["usd_per_device_hour", "provider", "offer"], kind="mergesort").reset_index(drop=True)
    table = None
    if args.format == "table":
        table = df[["provider", "offer", "accelerator", "devices_per_instance", "region", "pricing_model"]].copy()
        table["$/instance-h"] = df["usd_per_instance_hour"].map(lambda v: f"{v:.4f}")
        table["$/device-h"] = df["usd_per_device_hour"].map(lambda v: f"{v:.4f}")
        table["quality"] = df["price_quality"]
        table["as_of"] = df["as_of"]
    _write(df, args.format, table)
    return 0


def _cmd_cheapest(args: argparse.Namespace) -> int:
    cat = _catalog(args)
    df = cat.cheapest_offers()
    pricing = _check("--pricing", _split(args.pricing), PRICING_MODELS)
    kinds = _check("--kind", _split(args.kind), KINDS)
    if pricing is not None:
        df = df[df["pricing_model"].isin(pricing)]
    if kinds is not None:
        kind_of = {a: cat.accelerators[a].kind for a in cat.accelerator_ids}
        df = df[df["accelerator"].map(kind_of).isin(kinds)]
    df = df.reset_index(drop=True)
    table = None
    if args.format == "table":
        table = df[["accelerator", "pricing_model", "provider", "offer", "region"]].copy()
        table["$/device-h"] = df["usd_per_device_hour"].map(lambda v: f"{v:.4f}")
        table["as_of"] = df["as_of"]
    _write(df, args.format, table)
    return 0


def _cmd_efficiency(args: argparse.Namespace) -> int:
    cat = _catalog(args)
    df = cat.efficiency_frame()
    table = None
    if args.format == "table":
        table = df[["accelerator", "quantity", "precision", "size", "value", "as_of"]].copy()
        table["size"] = table["size"].map(lambda v: "" if v is None or pd.isna(v) else str(int(v)))
    _write(df, args.format, table)
    return 0


def _parse_today(text: str | None) -> _dt.date | None:
    if text is None:
        return None
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise _UsageError(f"--today: {text!r} is not a date (YYYY-MM-DD)") from None


def _cmd_check(args: argparse.Namespace) -> int:
    if args.max_age_days < 0:
        raise _UsageError(f"--max-age-days: must be 0 or more, got {args.max_age_days}")
    today = _parse_today(args.today)
    cat = _catalog(args)
    df = check_catalog(cat, max_age_days=args.max_age_days, today=today)
    if args.format == "table":
        counts = df["check"].value_counts()
        summary = ", ".join(f"{counts.get(c, 0)} {c}" for c in ("stale", "third-party-price", "no-offer"))
        sys.stdout.write(
            f"catalog check ({(today or _dt.date.today()).isoformat()}, max age {args.max_age_days} days): {summary}\n"
        )
        table = df.copy()
        table["detail"] = table["detail"].map(lambda t: t if len(t) <= 90 else t[:87] + "...")
        _write(df, "table", table)
    else:
        _write(df, args.format)
    return 0  # a report: findings do not fail the command


def _wrap(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except _UsageError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        except CatalogError as exc:
            sys.stderr.write(f"catalog error: {exc}\n")
            return 2
        except BrokenPipeError:  # e.g. piped into `head`: stop quietly
            try:
                sys.stdout = open(os.devnull, "w")
            except OSError:  # pragma: no cover
                pass
            return 0

    run.__name__ = func.__name__
    return run


def _common(p: argparse.ArgumentParser, formats: tuple[str, ...] = ("table", "csv")) -> None:
    p.add_argument("--format", choices=formats, default="table", help=f"{' | '.join(formats)}: table (human units) or csv/json (base units, units in column names)")
    p.add_argument(
        "--catalog",
        action="extend",
        nargs="+",
        metavar="FILE",
        help="your own catalog file(s): CSV with a shipped file's header, or YAML (see docs/catalog.md)",
    )
    p.add_argument(
        "--catalog-mode",
        choices=("merge", "replace"),
        default="merge",
        help="merge: your rows replace/add to the shipped catalog (default); replace: use only your files",
    )


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``catalog`` with leaves accelerators, systems, offers, cheapest, efficiency, check."""
    cat = subparsers.add_parser("catalog", help="list the hardware catalog: accelerators, systems, offers")
    sub = cat.add_subparsers(dest="catalog_command", metavar="{accelerators,systems,offers,cheapest,efficiency,check}")
    sub.required = True

    p = sub.add_parser("accelerators", help="accelerators with memory, bandwidth and dense peaks per number format")
    p.add_argument("--kind", action="append", metavar="KIND[,KIND]", help=f"filter by kind: {', '.join(KINDS)}")
    p.add_argument("--supports", action="append", metavar="FORMAT", help=f"only parts with a dense peak for: {', '.join(NUMBER_FORMATS)}")
    _common(p)
    p.set_defaults(func=_wrap(_cmd_accelerators))

    p = sub.add_parser("systems", help="systems (nodes, slices, racks); bandwidths per device, one direction")
    p.add_argument("--accelerator", action="append", metavar="ID[,ID]", help="filter by accelerator id")
    _common(p)
    p.set_defaults(func=_wrap(_cmd_systems))

    p = sub.add_parser("offers", help="cloud offers with USD per instance-hour and per device-hour")
    p.add_argument("--kind", action="append", metavar="KIND[,KIND]", help=f"filter by kind: {', '.join(KINDS)}")
    p.add_argument("--provider", action="append", metavar="NAME[,NAME]", help="filter by provider (AWS, GCP, Azure, Lambda, ...)")
    p.add_argument("--accelerator", action="append", metavar="ID[,ID]", help="filter by accelerator id")
    p.add_argument("--pricing", action="append", metavar="MODEL[,MODEL]", help=f"filter by pricing model: {', '.join(PRICING_MODELS)}")
    p.add_argument("--sort", choices=("catalog", "price"), default="catalog", help="row order (default: catalog order)")
    _common(p)
    p.set_defaults(func=_wrap(_cmd_offers))

    p = sub.add_parser("cheapest", help="the cheapest offer per accelerator and pricing model")
    p.add_argument("--kind", action="append", metavar="KIND[,KIND]", help=f"filter by kind: {', '.join(KINDS)}")
    p.add_argument("--pricing", action="append", metavar="MODEL[,MODEL]", help=f"filter by pricing model: {', '.join(PRICING_MODELS)}")
    _common(p)
    p.set_defaults(func=_wrap(_cmd_cheapest))

    p = sub.add_parser("efficiency", help="achievable-efficiency points (fractions of peak) with their sources")
    _common(p)
    p.set_defaults(func=_wrap(_cmd_efficiency))

    p = sub.add_parser(
        "check",
        help="report stale rows (as_of older than --max-age-days), third-party offer prices and accelerators without an offer (exit code 0)",
    )
    p.add_argument(
        "--max-age-days",
        type=int,
        default=DEFAULT_MAX_AGE_DAYS,
        metavar="N",
        help=f"a row is stale when its as_of is more than N days before today (default {DEFAULT_MAX_AGE_DAYS}); '<=YYYY-MM-DD' counts by that date",
    )
    p.add_argument("--today", metavar="YYYY-MM-DD", help="date to measure ages from (default: today's date)")
    _common(p, formats=("table", "csv", "json"))
    p.set_defaults(func=_wrap(_cmd_check))
    return cat


def build_parser(prog: str = "hardware-catalog") -> argparse.ArgumentParser:
    """A parser whose only command is ``catalog`` (for ``main`` and tests)."""
    parser = argparse.ArgumentParser(prog=prog)
    subparsers = parser.add_subparsers(dest="command")
    subparsers.required = True
    register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hardware_catalog.cli accelerators ...`` (the ``catalog`` word is optional)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "catalog":
        argv = ["catalog", *argv]
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
