"""Priced offers as arrays: what a run is billed per device-hour, by whole instances, and where
the checkpoint storage price comes from. The planner joins configurations with these rows; the
scalar and DataFrame APIs pick rows of the same table, so every face prices from one place."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hardware_catalog import Catalog
from hardware_catalog.models import COMMIT_TERM_HOURS, PREEMPTIBLE_PRICING


#: The pricing columns every plan report carries, in order (``price_report_columns`` fills them).
PRICE_REPORT_COLUMNS = (
    "price_as_of", "price_source", "price_quality", "usd_per_device_hour_low", "usd_per_device_hour_high",
    "price_sampling", "preemption_risk", "commitment_term_hours", "commitment_total_usd",
)
#: What ``preemption_risk`` says for a spot offer whose row states nothing (a user's file).
RISK_NOT_PUBLISHED = "not published"


def price_report_columns(offers: pd.DataFrame, instances: np.ndarray) -> dict[str, np.ndarray]:
    """The price provenance and risk columns of plan rows priced by ``offers`` (one catalog offer
    row per plan) running ``instances`` instances each.

    * ``usd_per_device_hour_low``/``_high``: the range the catalog sampled (NaN where none was);
      plans are still ranked by ``usd_per_device_hour``, the stored price.
    * ``preemption_risk``: the spot row's published band or reclaim terms, ``not published`` for a
      spot row that states none, empty for pricing models the provider does not reclaim.
    * ``commitment_term_hours`` and ``commitment_total_usd``: a committed price (commit-1y/3y) is
      owed for every hour of its term whether the instances run or not, so the least the plan
      commits you to is instances x USD per instance-hour x term hours (e.g. 2 instances at 10 USD
      for 1 year: 2 x 10 x 8,760 = 175,200 USD). Zero for pay-as-you-go, spot and capacity blocks
      (a capacity block is already billed for the hours reserved)."""
    model = offers["pricing_model"].to_numpy()
    risk = offers["preemption_risk"].fillna("").astype(str).to_numpy() if "preemption_risk" in offers \
        else np.full(len(offers), "", dtype=object)
    risk = np.where(np.isin(model, PREEMPTIBLE_PRICING),
                    np.where(np.char.str_len(risk.astype(str)) > 0, risk, RISK_NOT_PUBLISHED), "")
    term = np.array([COMMIT_TERM_HOURS.get(m, 0.0) for m in model], dtype=np.float64)
    inst_usd = offers["usd_per_instance_hour"].to_numpy(dtype=np.float64)

    def column(name: str, kind=np.float64):
        if name not in offers:
            return np.full(len(offers), np.nan if kind is np.float64 else "", dtype=kind if kind is np.float64 else object)
        col = offers[name]
        return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64) if kind is np.float64 \
            else col.fillna("").astype(str).to_numpy()

    return {
        "price_as_of": offers["as_of"].to_numpy(), "price_source": offers["source"].to_numpy(),
        "price_quality": offers["price_quality"].to_numpy(),
        "usd_per_device_hour_low": column("usd_per_device_hour_low"),
        "usd_per_device_hour_high": column("usd_per_device_hour_high"),
        "price_sampling": column("price_sampling", object), "preemption_risk": risk,
        "commitment_term_hours": term,
        "commitment_total_usd": np.asarray(instances, dtype=np.float64) * inst_usd * term,
    }


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
