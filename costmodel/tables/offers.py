"""Priced offers as arrays: what a run is billed per device-hour, by whole instances, and where
the checkpoint storage price comes from. The planner joins configurations with these rows; the
scalar and DataFrame APIs pick rows of the same table, so every face prices from one place."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hardware_catalog import Catalog


def object_storage_price(catalog: Catalog, provider: str | None):
    """The object-storage price row for checkpoints of a run at ``provider``: the provider's own
    cheapest, else the cheapest in the catalog (None when the catalog has none)."""
    own = catalog.other_price("object_storage", provider=provider) if provider else []
    rows = own or catalog.other_price("object_storage")
    return min(rows, key=lambda r: r.value) if rows else None


@dataclass(frozen=True)
class OfferTable:
    """Offers sorted by system code; ``start``/``count`` give each system's block of rows."""

    frame: pd.DataFrame  # catalog columns plus system_code, storage price and its source
    usd_per_device_hour: np.ndarray
    devices_per_instance: np.ndarray
    storage_usd_per_gb_month: np.ndarray
    system_code: np.ndarray
    max_instances: np.ndarray | None = None  # per offer; inf where the catalog sets no limit

    @classmethod
    def build(cls, catalog: Catalog, frame: pd.DataFrame, system_code_of) -> OfferTable:
        """``frame``: rows of ``catalog.offers_frame()`` (filtered as the caller needs);
        ``system_code_of``: system id -> code in the hardware table."""
        frame = frame[np.isfinite(frame["usd_per_device_hour"].to_numpy(dtype=float))]
        frame = frame.assign(system_code=[system_code_of(s) for s in frame["system"]])
        frame = frame.sort_values(["system_code", "provider", "offer", "region", "pricing_model"],
                                  kind="stable").reset_index(drop=True)
        prices, sources = [], []
        for provider in frame["provider"]:
            row = object_storage_price(catalog, provider)
            if row is None:
                prices.append(0.0)
                sources.append("no object-storage price in the catalog")
                continue
            prices.append(row.value)
            tag = "" if row.provider == provider else f" (no {provider} price; using {row.provider})"
            sources.append(f"{row.provider} {row.region or ''} {row.value} {row.unit}, {row.as_of}: "
                           f"{row.source}{tag}")
        frame = frame.assign(storage_usd_per_gb_month=prices, storage_source=sources)
        limit = (pd.to_numeric(frame["max_instances"], errors="coerce").to_numpy(dtype=np.float64)
                 if "max_instances" in frame else np.full(len(frame), np.nan))
        return cls(frame, frame["usd_per_device_hour"].to_numpy(dtype=np.float64),
                   frame["devices_per_instance"].to_numpy(dtype=np.float64),
                   np.array(prices, dtype=np.float64),
                   frame["system_code"].to_numpy(dtype=np.int64),
                   np.where(np.isfinite(limit), limit, np.inf))

    def take(self, rows: np.ndarray) -> OfferTable:
        """The offers at ``rows`` (kept in order), as a table of their own."""
        rows = np.asarray(rows, dtype=np.int64)
        return OfferTable(self.frame.iloc[rows].reset_index(drop=True), self.usd_per_device_hour[rows],
                          self.devices_per_instance[rows], self.storage_usd_per_gb_month[rows],
                          self.system_code[rows], self.instance_limits()[rows])

    def instance_limits(self, quota: float | None = None) -> np.ndarray:
        """Most instances per offer: the catalog's limit, capped by a user's quota."""
        limit = (self.max_instances if self.max_instances is not None
                 else np.full(len(self.usd_per_device_hour), np.inf))
        return np.minimum(limit, np.inf if quota is None else float(quota))

    def select(self, system_code: int, pricing_model: str, offer: str | None = None) -> OfferTable:
        """The offers of one system and pricing model (and offer name, if given)."""
        f = self.frame
        mask = (self.system_code == system_code) & (f["pricing_model"].to_numpy() == pricing_model)
        if offer is not None:
            mask &= f["offer"].to_numpy() == offer
        return self.take(np.flatnonzero(mask))

    def __len__(self) -> int:
        return len(self.frame)

    def blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distinct system codes, first row of each, rows of each)."""
        return np.unique(self.system_code, return_index=True, return_counts=True)

    def describe(self, row: int) -> str:
        o = self.frame.iloc[int(row)]
        return f"{o['provider']} {o['offer']} ({o['region']}, {o['pricing_model']})"
