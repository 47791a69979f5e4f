"""The engine's hardware table: catalog figures per (system, number format), gathered once.

``HardwareTable.columns(system_code, matmul_format, attention_format)`` returns
``HardwareColumns`` for any number of rows by integer indexing, which is what makes the planner's
joins vectorised. The format axis is every format of ``codes.FORMATS`` (fp32, tf32, fp16, bf16,
fp8, int8, fp4, int4), so a job that computes in int4 or fp4 reads that format's dense peak and
efficiency. Missing data stays NaN (a format the part does not accelerate, an efficiency nobody
measured); the job kinds turn NaN into an infeasibility reason rather than a number.
"""

from __future__ import annotations

import numpy as np

from costmodel.formulas.comms import Fabric
from costmodel.formulas.hardware import HardwareColumns
from costmodel.specs.codes import FORMATS
from costmodel.specs.columns import Array

#: Efficiency quantities read from the catalog for the timing model.
LINK_QUANTITIES = ("scaleup_allreduce", "scaleup_alltoall", "scaleout_allreduce", "scaleout_alltoall")


class HardwareTable:
    """Peaks and efficiencies indexed [system, format]; memory, bandwidth, links per system."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.system_ids = list(catalog.system_ids)
        self._system_index = {s: i for i, s in enumerate(self.system_ids)}
        acc = catalog.accelerator_arrays()
        sysa = catalog.system_arrays()
        acc_ids = list(catalog.accelerator_ids)
        acc_code = sysa["accelerator_code"]
        self.sources: dict[tuple[str, str, str], str] = {}
        per_sys_acc = [acc_ids[a] for a in acc_code]
        self.peak = np.stack([acc[f"peak_{f}_flops_per_s"][acc_code] for f in FORMATS], axis=1)
        bf16, fp16 = acc["peak_bf16_flops_per_s"][acc_code], acc["peak_fp16_flops_per_s"][acc_code]
        self.peak_16bit = np.where(np.isfinite(bf16), bf16, fp16)
        cache: dict[tuple[str, str, str], float] = {}

        def eff(acc_id: str, quantity: str, fmt: str = "") -> float:
            key = (acc_id, quantity, fmt)
            if key not in cache:
                try:
                    point = catalog.efficiency_value(acc_id, quantity, fmt)
                except Exception:  # no row and no documented fallback: leave NaN
                    cache[key] = np.nan
                else:
                    self.sources[key] = f"{point.accelerator}: {point.source}"
                    cache[key] = point.value
            return cache[key]

        self.matmul_eff = np.array([[eff(a, "matmul", f) for f in FORMATS] for a in per_sys_acc])
        self.attention_eff = np.array([[eff(a, "attention", f) for f in FORMATS] for a in per_sys_acc])
        self.memory_bandwidth = acc["memory_bandwidth_bytes_per_s"][acc_code]
        self.memory_bw_eff = np.array([eff(a, "memory_bandwidth") for a in per_sys_acc])
        self.memory_bytes = acc["memory_bytes"][acc_code]
        self.tdp_w = acc["tdp_w"][acc_code]
        self.sparsity_speedup = np.nan_to_num(acc["sparsity_speedup"][acc_code], nan=1.0)
        self.link_eff = {q: np.array([eff(a, q) for a in per_sys_acc]) for q in LINK_QUANTITIES}
        self.scaleup_bw = sysa["scaleup_bandwidth_bytes_per_s"]
        self.scaleout_bw = sysa["scaleout_bandwidth_bytes_per_s"]
        self.scaleup_latency = sysa["scaleup_latency_s"]
        self.scaleout_latency = sysa["scaleout_latency_s"]
        self.scaleup_domain = sysa["scaleup_domain_devices"].astype(np.float64)
        self.devices_per_node = sysa["devices_per_node"].astype(np.float64)
        self.accelerator_code = acc_code

    def system_digest(self, code: int) -> bytes:
        """Every figure of system ``code`` this table holds, as bytes (two systems with the same
        digest time every configuration alike)."""
        rows = [self.peak[code], self.matmul_eff[code], self.attention_eff[code],
                *(np.atleast_1d(a[code]) for a in (
                    self.peak_16bit, self.memory_bandwidth, self.memory_bw_eff, self.memory_bytes, self.tdp_w,
                    self.sparsity_speedup, self.scaleup_bw, self.scaleout_bw, self.scaleup_latency,
                    self.scaleout_latency, self.scaleup_domain, self.devices_per_node,
                    *self.link_eff.values()))]
        return np.concatenate([np.asarray(x, dtype=np.float64) for x in rows]).tobytes()

    def system_code(self, system_id: str) -> int:
        return self._system_index[system_id]

    def fabric(self, sc: np.ndarray) -> Fabric:
        return Fabric(
            scaleup_allreduce_bytes_per_s=(self.scaleup_bw * self.link_eff["scaleup_allreduce"])[sc],
            scaleup_alltoall_bytes_per_s=(self.scaleup_bw * self.link_eff["scaleup_alltoall"])[sc],
            scaleup_latency_s=self.scaleup_latency[sc],
            scaleup_domain=self.scaleup_domain[sc],
            scaleout_allreduce_bytes_per_s=(self.scaleout_bw * self.link_eff["scaleout_allreduce"])[sc],
            scaleout_alltoall_bytes_per_s=(self.scaleout_bw * self.link_eff["scaleout_alltoall"])[sc],
            scaleout_latency_s=self.scaleout_latency[sc],
        )

    def columns(self, system_code: Array, matmul_format: Array,
                attention_format: Array | None = None) -> HardwareColumns:
        """Hardware figures per row: peaks and efficiencies of the row's matmul and attention
        formats (codes into ``codes.FORMATS``; attention defaults to the matmul format)."""
        sc = np.asarray(system_code, dtype=np.int64)
        mf = np.asarray(matmul_format, dtype=np.int64)
        af = mf if attention_format is None else np.asarray(attention_format, dtype=np.int64)
        return HardwareColumns(
            peak_matmul_flops_per_s=self.peak[sc, mf],
            peak_attention_flops_per_s=self.peak[sc, af],
            matmul_efficiency=self.matmul_eff[sc, mf],
            attention_efficiency=self.attention_eff[sc, af],
            memory_bandwidth_bytes_per_s=self.memory_bandwidth[sc],
            memory_bandwidth_efficiency=self.memory_bw_eff[sc],
            memory_bytes=self.memory_bytes[sc],
            fabric=self.fabric(sc),
            tdp_w=self.tdp_w[sc],
            devices_per_node=self.devices_per_node[sc],
            sparsity_speedup=self.sparsity_speedup[sc],
            peak_16bit_flops_per_s=self.peak_16bit[sc],
        )

    def usable(self, system_code: Array, matmul_format: Array, attention_format: Array
               ) -> tuple[np.ndarray, np.ndarray]:
        """(the part has a dense peak for both formats, every figure the engine needs is known)
        per row, read from the table without building full columns."""
        sc = np.asarray(system_code, dtype=np.int64)
        mf = np.asarray(matmul_format, dtype=np.int64)
        af = np.asarray(attention_format, dtype=np.int64)
        fmt_ok = np.isfinite(self.peak[sc, mf]) & np.isfinite(self.peak[sc, af])
        per_system = (np.isfinite(self.memory_bw_eff) & np.isfinite(self.memory_bytes)
                      & np.isfinite(self.scaleup_bw * self.link_eff["scaleup_allreduce"])
                      & np.isfinite(self.scaleout_bw * self.link_eff["scaleout_allreduce"]))
        data_ok = (np.isfinite(self.matmul_eff[sc, mf]) & np.isfinite(self.attention_eff[sc, af])
                   & per_system[sc])
        return fmt_ok, data_ok

    def formats_with_peak(self, system_id: str) -> list[str]:
        """Number formats the system's accelerator has a dense peak for."""
        row = self.peak[self.system_code(system_id)]
        return [f for f, v in zip(FORMATS, row) if np.isfinite(v)]
