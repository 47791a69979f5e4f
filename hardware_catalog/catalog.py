"""The immutable :class:`Catalog` and the functions that load it."""

from __future__ import annotations

import datetime as _dt
import difflib
import functools
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from .loader import SHIPPED_REQUIRED, TABLES, CatalogError, Provenance, RowRecord, read_table_file, read_user_file, row_key
from .models import (
    KINDS,
    NUMBER_FORMATS,
    PRICING_MODELS,
    Accelerator,
    EfficiencyPoint,
    Offer,
    OtherPrice,
    System,
)
from .paths import data_dir as _data_dir

__all__ = ["Catalog", "load_catalog", "default_catalog", "EFFICIENCY_FALLBACK_ORDER"]

_MODELS: dict[str, type[BaseModel]] = {
    "accelerators": Accelerator,
    "systems": System,
    "offers": Offer,
    "efficiency": EfficiencyPoint,
    "other_prices": OtherPrice,
}

EFFICIENCY_FALLBACK_ORDER = (
    "1. the accelerator's own row for (quantity, precision)",
    "2. the accelerator's own row for (quantity, '')",
    "3. matmul/attention only: the accelerator's own bf16 row",
    "4. the kind default row 'kind:<kind>' for (quantity, precision)",
    "5. the kind default row for (quantity, '')",
    "6. matmul/attention only: the kind default bf16 row",
)
"""How :meth:`Catalog.efficiency_value` picks a row; every row it can return is in the data."""


def _close(name: str, options: Iterable[str]) -> str:
    options = list(options)
    close = difflib.get_close_matches(name, options, n=5, cutoff=0.4)
    if close:
        return f"did you mean: {', '.join(close)}? (valid ids: {', '.join(options)})"
    return f"valid ids: {', '.join(options)}"


class Catalog:
    """Accelerators, systems, offers, efficiency points and other prices, validated together.

    Instances are immutable: :meth:`with_overrides` returns a new catalog. Integer codes used by
    :meth:`offers_codes`, :meth:`accelerator_arrays` and :meth:`system_arrays` are positions in
    :attr:`accelerator_ids`, :attr:`system_ids`, :attr:`providers` and ``PRICING_MODELS``.
    """

    def __init__(self, records: Sequence[RowRecord]):
        tables: dict[str, dict[tuple, RowRecord]] = {name: {} for name in TABLES}
        for rec in records:
            tables[rec.table][row_key(rec)] = rec  # later records replace earlier ones
        self._records = tables
        accs = {r.row.id: r.row for r in tables["accelerators"].values()}
        syss = {r.row.id: r.row for r in tables["systems"].values()}
        self._accelerators: Mapping[str, Accelerator] = MappingProxyType(accs)
        self._systems: Mapping[str, System] = MappingProxyType(syss)
        self._offers: tuple[Offer, ...] = tuple(r.row for r in tables["offers"].values())
        self._efficiency: tuple[EfficiencyPoint, ...] = tuple(r.row for r in tables["efficiency"].values())
        self._other_prices: tuple[OtherPrice, ...] = tuple(r.row for r in tables["other_prices"].values())
        self._validate_references()
        self._default_system = self._compute_default_systems()
        self._eff_index = {p.key: p for p in self._efficiency}
        self._acc_ids = tuple(accs)
        self._sys_ids = tuple(syss)
        self._providers = tuple(sorted({o.provider for o in self._offers}))

    # ------------------------------------------------------------------ validation
    def _where(self, table: str, key: tuple) -> Provenance:
        return self._records[table][key].where

    def _validate_references(self) -> None:
        accs, syss = self._accelerators, self._systems
        for key, rec in self._records["systems"].items():
            s: System = rec.row
            if s.accelerator not in accs:
                raise CatalogError(f"{rec.where}, field 'accelerator': unknown accelerator {s.accelerator!r}; {_close(s.accelerator, accs)}")
        for key, rec in self._records["offers"].items():
            o: Offer = rec.row
            if o.accelerator not in accs:
                raise CatalogError(f"{rec.where}, field 'accelerator': unknown accelerator {o.accelerator!r}; {_close(o.accelerator, accs)}")
            if o.system not in syss:
                raise CatalogError(f"{rec.where}, field 'system': unknown system {o.system!r}; {_close(o.system, syss)}")
            if syss[o.system].accelerator != o.accelerator:
                raise CatalogError(
                    f"{rec.where}, field 'system': system {o.system!r} holds {syss[o.system].accelerator!r}, "
                    f"not the offer's accelerator {o.accelerator!r}"
                )
        for key, rec in self._records["efficiency"].items():
            p: EfficiencyPoint = rec.row
            if not p.is_kind_default and p.accelerator not in accs:
                raise CatalogError(
                    f"{rec.where}, field 'accelerator': unknown accelerator {p.accelerator!r} "
                    f"(use an accelerator id or kind:<{'|'.join(KINDS)}>); {_close(p.accelerator, accs)}"
                )
        with_system = {s.accelerator for s in syss.values()}
        for key, rec in self._records["accelerators"].items():
            if rec.row.id not in with_system:
                raise CatalogError(
                    f"{rec.where}, field 'id': accelerator {rec.row.id!r} has no system; every accelerator needs at "
                    "least one row in systems (for a PCIe-only part: scaleup_fabric 'PCIe' with its PCIe bandwidth)"
                )

    def _compute_default_systems(self) -> dict[str, str]:
        first: dict[str, str] = {}
        chosen: dict[str, str] = {}
        for s in self._systems.values():  # load order: a later default (user file) wins
            first.setdefault(s.accelerator, s.id)
            if s.default:
                chosen[s.accelerator] = s.id
        return {acc: chosen.get(acc, first[acc]) for acc in first}

    # ------------------------------------------------------------------ raw access
    @property
    def accelerators(self) -> Mapping[str, Accelerator]:
        """Accelerators by id (read-only mapping, catalog order)."""
        return self._accelerators

    @property
    def systems(self) -> Mapping[str, System]:
        """Systems by id (read-only mapping, catalog order)."""
        return self._systems

    @property
    def offers(self) -> tuple[Offer, ...]:
        return self._offers

    @property
    def efficiency(self) -> tuple[EfficiencyPoint, ...]:
        return self._efficiency

    @property
    def other_prices(self) -> tuple[OtherPrice, ...]:
        return self._other_prices

    @property
    def accelerator_ids(self) -> tuple[str, ...]:
        """Accelerator ids in code order (``accelerator_code`` indexes this tuple)."""
        return self._acc_ids

    @property
    def system_ids(self) -> tuple[str, ...]:
        """System ids in code order (``system_code`` indexes this tuple)."""
        return self._sys_ids

    @property
    def providers(self) -> tuple[str, ...]:
        """Providers in code order (sorted; ``provider_code`` indexes this tuple)."""
        return self._providers

    @property
    def pricing_models(self) -> tuple[str, ...]:
        """``PRICING_MODELS`` (``pricing_code`` indexes this tuple)."""
        return PRICING_MODELS

    def provenance(self, table: str, key: tuple) -> Provenance:
        """File and line a row came from (``key`` as in the table's key columns)."""
        return self._where(table, key)

    def __repr__(self) -> str:
        return (
            f"Catalog({len(self._accelerators)} accelerators, {len(self._systems)} systems, "
            f"{len(self._offers)} offers, {len(self._efficiency)} efficiency points, {len(self._other_prices)} other prices)"
        )

    # ------------------------------------------------------------------ lookups
    def accelerator(self, id: str) -> Accelerator:
        """The accelerator ``id``; CatalogError listing close matches if unknown."""
        try:
            return self._accelerators[id]
        except KeyError:
            raise CatalogError(f"unknown accelerator {id!r}; {_close(id, self._accelerators)}") from None

    def system(self, id: str) -> System:
        """The system ``id``; CatalogError listing close matches if unknown."""
        try:
            return self._systems[id]
        except KeyError:
            raise CatalogError(f"unknown system {id!r}; {_close(id, self._systems)}") from None

    def systems_for(self, accelerator_id: str) -> list[System]:
        self.accelerator(accelerator_id)
        return [s for s in self._systems.values() if s.accelerator == accelerator_id]

    def default_system(self, accelerator_id: str) -> System:
        """The system to assume when only an accelerator is named.

        The row of ``systems.csv`` marked ``default`` for that accelerator (8-GPU HGX/DGX-style
        node for SXM parts, the NVL72 rack for GB200, a full pod slice for TPUs, the largest
        instance for AWS chips); without a mark, the first system listed for it."""
        self.accelerator(accelerator_id)
        return self._systems[self._default_system[accelerator_id]]

    def by_kind(self, kind: str) -> list[Accelerator]:
        """Accelerators of one kind (gpu, tpu, fpga, asic)."""
        if kind not in KINDS:
            raise CatalogError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
        return [a for a in self._accelerators.values() if a.kind == kind]

    def supporting(self, fmt: str) -> list[Accelerator]:
        """Accelerators with a dense peak for number format ``fmt``."""
        if fmt not in NUMBER_FORMATS:
            raise CatalogError(f"unknown number format {fmt!r}; valid: {', '.join(NUMBER_FORMATS)}")
        return [a for a in self._accelerators.values() if a.peak(fmt) is not None]

    def offers_for(
        self,
        accelerator: str | Iterable[str] | None = None,
        provider: str | Iterable[str] | None = None,
        pricing_model: str | Iterable[str] | None = None,
        kind: str | Iterable[str] | None = None,
        region: str | Iterable[str] | None = None,
    ) -> list[Offer]:
        """Offers matching every given filter (each a value or a collection of values)."""

        def norm(v: str | Iterable[str] | None) -> set[str] | None:
            if v is None:
                return None
            return {v} if isinstance(v, str) else set(v)

        accs, provs, models, kinds, regions = map(norm, (accelerator, provider, pricing_model, kind, region))
        for a in accs or ():
            self.accelerator(a)
        for m in models or ():
            if m not in PRICING_MODELS:
                raise CatalogError(f"unknown pricing model {m!r}; valid: {', '.join(PRICING_MODELS)}")
        for k in kinds or ():
            if k not in KINDS:
                raise CatalogError(f"unknown kind {k!r}; valid: {', '.join(KINDS)}")
        out = []
        for o in self._offers:
            if accs is not None and o.accelerator not in accs:
                continue
            if provs is not None and o.provider not in provs:
                continue
            if models is not None and o.pricing_model not in models:
                continue
            if kinds is not None and self._accelerators[o.accelerator].kind not in kinds:
                continue
            if regions is not None and o.region not in regions:
                continue
            out.append(o)
        return out

    def other_price(self, item: str, provider: str | None = None, region: str | None = None) -> list[OtherPrice]:
        """Non-hourly prices of one item (object_storage, block_storage, egress, electricity, pue)."""
        return [
            p
            for p in self._other_prices
            if p.item == item and (provider is None or p.provider == provider) and (region is None or p.region == region)
        ]

    # ------------------------------------------------------------------ efficiency
    def efficiency_value(self, accelerator: str, quantity: str, precision: str = "") -> EfficiencyPoint:
        """The efficiency point to use for ``accelerator`` (see ``EFFICIENCY_FALLBACK_ORDER``).

        The returned row says which row was used: its ``accelerator`` is the part's own id or
        ``kind:<kind>`` for a kind default. Raises CatalogError if no rule matches."""
        acc = self.accelerator(accelerator)
        candidates: list[tuple[str, str, str]] = [(accelerator, quantity, precision), (accelerator, quantity, "")]
        per_precision = quantity in ("matmul", "attention")
        if per_precision:
            candidates.append((accelerator, quantity, "bf16"))
        kind_id = f"kind:{acc.kind}"
        candidates += [(kind_id, quantity, precision), (kind_id, quantity, "")]
        if per_precision:
            candidates.append((kind_id, quantity, "bf16"))
        for key in candidates:
            point = self._eff_index.get(key)
            if point is not None:
                return point
        raise CatalogError(
            f"no efficiency data for accelerator {accelerator!r}, quantity {quantity!r}, precision {precision!r} "
            f"and no default row for {kind_id!r}"
        )

    # ------------------------------------------------------------------ overrides
    def with_overrides(
        self,
        accelerators: Iterable[Accelerator | Mapping[str, Any]] = (),
        systems: Iterable[System | Mapping[str, Any]] = (),
        offers: Iterable[Offer | Mapping[str, Any]] = (),
        efficiency: Iterable[EfficiencyPoint | Mapping[str, Any]] = (),
        other_prices: Iterable[OtherPrice | Mapping[str, Any]] = (),
    ) -> "Catalog":
        """A new catalog with rows replaced (same key) or added (new key).

        Rows are model instances or mappings of model fields in base units (bytes, bytes/s,
        FLOP/s, W, s, USD). The result is validated like a loaded catalog."""
        records = [rec for table in self._records.values() for rec in table.values()]
        for table, rows in (
            ("accelerators", accelerators),
            ("systems", systems),
            ("offers", offers),
            ("efficiency", efficiency),
            ("other_prices", other_prices),
        ):
            model = _MODELS[table]
            for i, row in enumerate(rows):
                where = Provenance(f"<override {table}>", i + 1)
                if not isinstance(row, model):
                    try:
                        row = model.model_validate(dict(row))
                    except ValidationError as exc:
                        err = exc.errors()[0]
                        loc = ".".join(str(x) for x in err.get("loc", ())) or None
                        raise CatalogError(f"{where}{', field ' + repr(loc) if loc else ''}: {err.get('msg')}") from None
                records.append(RowRecord(table, row, where))
        return Catalog(records)

    def override_efficiency(
        self,
        accelerator: str,
        quantity: str,
        value: float,
        precision: str = "",
        size: int | None = None,
        source: str = "user override",
        notes: str = "",
    ) -> "Catalog":
        """A new catalog whose efficiency point (accelerator, quantity, precision) is ``value``."""
        return self.with_overrides(
            efficiency=[
                {
                    "accelerator": accelerator,
                    "quantity": quantity,
                    "precision": precision,
                    "size": size,
                    "value": value,
                    "as_of": _dt.date.today().isoformat(),
                    "source": source,
                    "notes": notes,
                }
            ]
        )

    def override_price(
        self,
        provider: str,
        offer: str,
        region: str,
        pricing_model: str,
        usd_per_device_hour: float | None = None,
        usd_per_instance_hour: float | None = None,
        source: str = "user override",
    ) -> "Catalog":
        """A new catalog with the price of an existing offer replaced (give either price)."""
        matches = [o for o in self._offers if o.key == (provider, offer, region, pricing_model)]
        if not matches:
            raise CatalogError(f"no offer with key {(provider, offer, region, pricing_model)!r}")
        old = matches[0]
        n = old.devices_per_instance
        if usd_per_device_hour is None and usd_per_instance_hour is None:
            raise CatalogError("give usd_per_device_hour or usd_per_instance_hour")
        if usd_per_device_hour is None:
            usd_per_device_hour = usd_per_instance_hour / n
        if usd_per_instance_hour is None:
            usd_per_instance_hour = usd_per_device_hour * n
        row = old.model_dump()
        row.update(
            usd_per_device_hour=usd_per_device_hour,
            usd_per_instance_hour=usd_per_instance_hour,
            price_quality="user",
            # the sampled range belonged to the replaced price; a user's figure carries none
            usd_per_device_hour_low=None,
            usd_per_device_hour_high=None,
            price_sampling="user override",
            as_of=_dt.date.today().isoformat(),
            source=source,
            notes=f"override of: {old.source}",
        )
        return self.with_overrides(offers=[row])

    # ------------------------------------------------------------------ frames
    def accelerators_frame(self) -> pd.DataFrame:
        """One row per accelerator; column names carry units; NaN/empty where not given."""
        rows = []
        for a in self._accelerators.values():
            row: dict[str, Any] = {
                "id": a.id,
                "kind": a.kind,
                "vendor": a.vendor,
                "name": a.name,
                "form_factor": a.form_factor,
                "memory_bytes": a.memory_bytes,
                "memory_bandwidth_bytes_per_s": a.memory_bandwidth_bytes_per_s,
            }
            for fmt in NUMBER_FORMATS:
                row[f"peak_{fmt}_flops_per_s"] = a.peak_flops_per_s.get(fmt, math.nan)
            row.update(
                sparsity_pattern=a.sparsity_pattern or "",
                sparsity_speedup=a.sparsity_speedup if a.sparsity_speedup is not None else math.nan,
                onchip_memory_bytes=a.onchip_memory_bytes if a.onchip_memory_bytes is not None else math.nan,
                tdp_w=a.tdp_w if a.tdp_w is not None else math.nan,
                release_year=a.release_year if a.release_year is not None else pd.NA,
                purchase_price_usd=a.purchase_price_usd if a.purchase_price_usd is not None else math.nan,
                default_system=self._default_system.get(a.id, ""),
                as_of=a.as_of,
                source=a.source,
                notes=a.notes,
            )
            rows.append(row)
        df = pd.DataFrame(rows)
        if not df.empty:
            df["release_year"] = df["release_year"].astype("Int64")
        return df

    def systems_frame(self) -> pd.DataFrame:
        rows = []
        for s in self._systems.values():
            rows.append(
                {
                    "id": s.id,
                    "accelerator": s.accelerator,
                    "default": self._default_system.get(s.accelerator) == s.id,
                    "name": s.name,
                    "devices_per_node": s.devices_per_node,
                    "scaleup_fabric": s.scaleup_fabric,
                    "scaleup_domain_devices": s.scaleup_domain_devices,
                    "scaleup_bandwidth_bytes_per_s": s.scaleup_bandwidth_bytes_per_s,
                    "scaleup_latency_s": s.scaleup_latency_s,
                    "scaleout_fabric": s.scaleout_fabric,
                    "scaleout_bandwidth_bytes_per_s": s.scaleout_bandwidth_bytes_per_s,
                    "scaleout_latency_s": s.scaleout_latency_s,
                    "host_memory_bytes": s.host_memory_bytes if s.host_memory_bytes is not None else math.nan,
                    "as_of": s.as_of,
                    "source": s.source,
                    "notes": s.notes,
                }
            )
        return pd.DataFrame(rows)

    def offers_frame(self) -> pd.DataFrame:
        """One row per offer; prices in USD per hour."""
        cols = [
            "provider",
            "offer",
            "accelerator",
            "kind",
            "system",
            "devices_per_instance",
            "region",
            "pricing_model",
            "usd_per_instance_hour",
            "usd_per_device_hour",
            "price_quality",
            "max_instances",
            "usd_per_device_hour_low",
            "usd_per_device_hour_high",
            "price_sampling",
            "preemption_risk",
            "commitment_term_hours",
            "as_of",
            "source",
            "notes",
        ]
        rows = [
            {
                "provider": o.provider,
                "offer": o.offer,
                "accelerator": o.accelerator,
                "kind": self._accelerators[o.accelerator].kind,
                "system": o.system,
                "devices_per_instance": o.devices_per_instance,
                "region": o.region,
                "pricing_model": o.pricing_model,
                "usd_per_instance_hour": o.usd_per_instance_hour,
                "usd_per_device_hour": o.usd_per_device_hour,
                "price_quality": o.price_quality,
                "max_instances": o.max_instances,
                "usd_per_device_hour_low": o.usd_per_device_hour_low,
                "usd_per_device_hour_high": o.usd_per_device_hour_high,
                "price_sampling": o.price_sampling,
                "preemption_risk": o.preemption_risk,
                "commitment_term_hours": o.commitment_term_hours,
                "as_of": o.as_of,
                "source": o.source,
                "notes": o.notes,
            }
            for o in self._offers
        ]
        return pd.DataFrame(rows, columns=cols)

    def efficiency_frame(self) -> pd.DataFrame:
        """One row per efficiency point (``size`` as a nullable integer)."""
        df = pd.DataFrame(
            [p.model_dump() for p in self._efficiency],
            columns=["accelerator", "precision", "quantity", "size", "value", "as_of", "source", "notes"],
        )
        df["size"] = df["size"].astype("Int64")
        return df

    def cheapest_offers(self) -> pd.DataFrame:
        """One row per (accelerator, pricing_model): the offer with the lowest usd_per_device_hour.

        Ties are broken by provider, offer and region (alphabetically), so the result is stable."""
        df = self.offers_frame()
        cols = [
            "accelerator",
            "pricing_model",
            "usd_per_device_hour",
            "provider",
            "offer",
            "region",
            "devices_per_instance",
            "usd_per_instance_hour",
            "price_quality",
            "as_of",
            "source",
        ]
        if df.empty:
            return pd.DataFrame(columns=cols)
        df = df.sort_values(["accelerator", "pricing_model", "usd_per_device_hour", "provider", "offer", "region"], kind="mergesort")
        best = df.groupby(["accelerator", "pricing_model"], sort=False).head(1)
        order = {a: i for i, a in enumerate(self._acc_ids)}
        best = best.assign(_a=best["accelerator"].map(order), _p=best["pricing_model"].map(PRICING_MODELS.index))
        best = best.sort_values(["_a", "_p"]).drop(columns=["_a", "_p"])
        return best[cols].reset_index(drop=True)

    # ------------------------------------------------------------------ vectorised views
    def offers_codes(self) -> pd.DataFrame:
        """Offers as integer codes for vectorised joins.

        Columns: ``offer_code`` (position in :attr:`offers`), ``accelerator_code`` (index into
        :attr:`accelerator_ids` and the arrays of :meth:`accelerator_arrays`), ``system_code``
        (index into :attr:`system_ids` / :meth:`system_arrays`), ``provider_code`` (index into
        :attr:`providers`), ``pricing_code`` (index into ``PRICING_MODELS``), plus
        ``usd_per_device_hour`` and ``devices_per_instance``. The category lists are also in
        ``df.attrs`` under ``accelerator_ids``, ``system_ids``, ``providers``, ``pricing_models``."""
        acc = {a: i for i, a in enumerate(self._acc_ids)}
        sys_ = {s: i for i, s in enumerate(self._sys_ids)}
        prov = {p: i for i, p in enumerate(self._providers)}
        n = len(self._offers)
        df = pd.DataFrame(
            {
                "offer_code": np.arange(n, dtype=np.int64),
                "accelerator_code": np.array([acc[o.accelerator] for o in self._offers], dtype=np.int64),
                "system_code": np.array([sys_[o.system] for o in self._offers], dtype=np.int64),
                "provider_code": np.array([prov[o.provider] for o in self._offers], dtype=np.int64),
                "pricing_code": np.array([PRICING_MODELS.index(o.pricing_model) for o in self._offers], dtype=np.int64),
                "usd_per_device_hour": np.array([o.usd_per_device_hour for o in self._offers], dtype=np.float64),
                "devices_per_instance": np.array([o.devices_per_instance for o in self._offers], dtype=np.int64),
            }
        )
        df.attrs.update(
            accelerator_ids=list(self._acc_ids),
            system_ids=list(self._sys_ids),
            providers=list(self._providers),
            pricing_models=list(PRICING_MODELS),
        )
        return df

    def accelerator_arrays(self) -> dict[str, np.ndarray]:
        """Per-accelerator float arrays indexed by ``accelerator_code`` (NaN where not given).

        Keys: ``memory_bytes``, ``memory_bandwidth_bytes_per_s``, ``peak_<fmt>_flops_per_s`` for
        every format in NUMBER_FORMATS, ``tdp_w``, ``onchip_memory_bytes``, ``sparsity_speedup``,
        ``default_system_code``."""
        accs = [self._accelerators[i] for i in self._acc_ids]

        def arr(values: Iterable[float | None]) -> np.ndarray:
            return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)

        out = {
            "memory_bytes": arr(a.memory_bytes for a in accs),
            "memory_bandwidth_bytes_per_s": arr(a.memory_bandwidth_bytes_per_s for a in accs),
        }
        for fmt in NUMBER_FORMATS:
            out[f"peak_{fmt}_flops_per_s"] = arr(a.peak_flops_per_s.get(fmt) for a in accs)
        out["tdp_w"] = arr(a.tdp_w for a in accs)
        out["onchip_memory_bytes"] = arr(a.onchip_memory_bytes for a in accs)
        out["sparsity_speedup"] = arr(a.sparsity_speedup for a in accs)
        sys_index = {s: i for i, s in enumerate(self._sys_ids)}
        out["default_system_code"] = np.array([sys_index[self._default_system[a.id]] for a in accs], dtype=np.int64)
        return out

    def system_arrays(self) -> dict[str, np.ndarray]:
        """Per-system arrays indexed by ``system_code``: devices_per_node, scaleup_domain_devices,
        scaleup/scaleout bandwidth (bytes/s, per device, one direction) and latency (s),
        host_memory_bytes (NaN if unknown) and accelerator_code."""
        syss = [self._systems[i] for i in self._sys_ids]
        acc_index = {a: i for i, a in enumerate(self._acc_ids)}
        f = np.float64
        return {
            "accelerator_code": np.array([acc_index[s.accelerator] for s in syss], dtype=np.int64),
            "devices_per_node": np.array([s.devices_per_node for s in syss], dtype=np.int64),
            "scaleup_domain_devices": np.array([s.scaleup_domain_devices for s in syss], dtype=np.int64),
            "scaleup_bandwidth_bytes_per_s": np.array([s.scaleup_bandwidth_bytes_per_s for s in syss], dtype=f),
            "scaleup_latency_s": np.array([s.scaleup_latency_s for s in syss], dtype=f),
            "scaleout_bandwidth_bytes_per_s": np.array([s.scaleout_bandwidth_bytes_per_s for s in syss], dtype=f),
            "scaleout_latency_s": np.array([s.scaleout_latency_s for s in syss], dtype=f),
            "host_memory_bytes": np.array([math.nan if s.host_memory_bytes is None else s.host_memory_bytes for s in syss], dtype=f),
        }


# ---------------------------------------------------------------------------------------
# loading


def _shipped_records(data_dir: str | Path | None) -> list[RowRecord]:
    base = Path(data_dir) if data_dir is not None else _data_dir()
    hw = base / "hardware" if (base / "hardware").is_dir() else base
    records: list[RowRecord] = []
    for spec in TABLES.values():
        path = hw / spec.filename
        if not path.exists():
            raise CatalogError(f"{path}: shipped catalog file missing")
        records.extend(read_table_file(path, spec, require=SHIPPED_REQUIRED.get(spec.name, ())))
    return records


def load_catalog(
    extra_files: Sequence[str | Path] = (),
    mode: str = "merge",
    data_dir: str | Path | None = None,
) -> Catalog:
    """Load the shipped catalog and the user's files.

    ``extra_files``: CSV files whose header matches one of the shipped schemas, or YAML files
    with top-level keys accelerators/systems/offers/efficiency/other_prices. ``mode='merge'``:
    a user row with the same key as a shipped row replaces it, new keys are added.
    ``mode='replace'``: the shipped catalog is not loaded; the user's files are the whole
    catalog. ``data_dir``: the ``data/`` folder (or ``data/hardware``) to load instead of the
    shipped one."""
    if isinstance(extra_files, (str, Path)):
        extra_files = [extra_files]
    if mode not in ("merge", "replace"):
        raise CatalogError(f"unknown mode {mode!r}; valid: merge, replace")
    records: list[RowRecord] = [] if mode == "replace" else _shipped_records(data_dir)
    for f in extra_files:
        records.extend(read_user_file(f))
    if mode == "replace" and not extra_files:
        raise CatalogError("mode='replace' needs at least one catalog file")
    return Catalog(records)


@functools.lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The shipped catalog, loaded once and cached."""
    return load_catalog()
