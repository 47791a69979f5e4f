"""Hardware as columns: what the timing and cost formulas need from an accelerator, its system and
the achievable-efficiency data, one value per configuration row."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from costmodel.specs.columns import Array, as_array
from costmodel.formulas.comms import Fabric


@dataclass(frozen=True)
class HardwareColumns:
    """Per-row hardware figures. Peaks are dense; efficiencies are achieved fractions of them."""

    peak_matmul_flops_per_s: Array  # dense peak of the linear layers' number format
    peak_attention_flops_per_s: Array  # dense peak of the attention format (bf16 under fp8)
    matmul_efficiency: Array  # achieved fraction of peak for large GEMMs
    attention_efficiency: Array  # achieved fraction of peak for fused attention fwd+bwd
    memory_bandwidth_bytes_per_s: Array
    memory_bandwidth_efficiency: Array
    kernel_overhead_s: Array  # fixed time per GEMM launch/tail
    memory_bytes: Array  # device memory capacity
    fabric: Fabric
    tdp_w: Array
    devices_per_node: Array

    @property
    def achieved_memory_bandwidth(self) -> Array:
        return self.memory_bandwidth_bytes_per_s * self.memory_bandwidth_efficiency

    def take(self, index: Array) -> HardwareColumns:
        """Rows ``index`` of a 1-d table (e.g. per-configuration hardware codes)."""
        def pick(x):
            return np.asarray(x)[index]
        fab = Fabric(**{f.name: pick(getattr(self.fabric, f.name)) for f in fields(Fabric)})
        vals = {f.name: pick(getattr(self, f.name)) for f in fields(self) if f.name != "fabric"}
        return HardwareColumns(fabric=fab, **vals)


def hardware_from_values(**values: float) -> HardwareColumns:
    """A single-row hardware description from plain numbers (tests, notebooks, user systems).

    Keys: the fields of ``HardwareColumns`` plus the fields of ``Fabric``.
    """
    fab_names = {f.name for f in fields(Fabric)}
    fab = Fabric(**{k: as_array(values.pop(k)) for k in list(values) if k in fab_names})
    return HardwareColumns(fabric=fab, **{k: as_array(v) for k, v in values.items()})


# Catalog join ---------------------------------------------------------------------------------

#: Efficiency quantities read from the catalog for the timing model.
LINK_QUANTITIES = ("scaleup_allreduce", "scaleup_alltoall", "scaleout_allreduce", "scaleout_alltoall")


class HardwareTable:
    """Hardware figures per (system, training precision), gathered from a catalog once.

    ``columns(system_code, precision_code)`` returns ``HardwareColumns`` for any number of rows by
    integer indexing, which is what makes the planner's joins vectorised. Missing data stays NaN
    (a format the part does not accelerate, an efficiency nobody measured); the planner turns NaN
    into an infeasibility reason rather than a number.
    """

    def __init__(self, catalog, kernel_overhead_s: float):
        from costmodel.specs.setup import PRECISION_TABLE

        self.catalog = catalog
        self.system_ids = list(catalog.system_ids)
        acc = catalog.accelerator_arrays()
        sysa = catalog.system_arrays()
        acc_ids = list(catalog.accelerator_ids)
        acc_code = sysa["accelerator_code"]
        n_sys, formats = len(self.system_ids), list(PRECISION_TABLE.values())
        shape = (n_sys, len(formats))
        self.peak_matmul = np.full(shape, np.nan)
        self.peak_attention = np.full(shape, np.nan)
        self.matmul_eff = np.full(shape, np.nan)
        self.attention_eff = np.full(shape, np.nan)
        self.sources: dict[tuple[str, str, str], str] = {}

        def eff(acc_id: str, quantity: str, fmt: str = "") -> float:
            try:
                point = catalog.efficiency_value(acc_id, quantity, fmt)
            except Exception:  # no row and no documented fallback: leave NaN
                return np.nan
            self.sources[(acc_id, quantity, fmt)] = f"{point.accelerator}: {point.source}"
            return point.value

        acc_eff_cache: dict[tuple[str, str, str], float] = {}
        for si in range(n_sys):
            ai = acc_code[si]
            acc_id = acc_ids[ai]
            for pi, (_, _, mm_fmt, attn_fmt) in enumerate(formats):
                self.peak_matmul[si, pi] = acc[f"peak_{mm_fmt}_flops_per_s"][ai]
                self.peak_attention[si, pi] = acc[f"peak_{attn_fmt}_flops_per_s"][ai]
                for arr, q, fmt in ((self.matmul_eff, "matmul", mm_fmt),
                                    (self.attention_eff, "attention", attn_fmt)):
                    key = (acc_id, q, fmt)
                    if key not in acc_eff_cache:
                        acc_eff_cache[key] = eff(acc_id, q, fmt)
                    arr[si, pi] = acc_eff_cache[key]
        per_sys_acc = [acc_ids[a] for a in acc_code]
        self.memory_bandwidth = acc["memory_bandwidth_bytes_per_s"][acc_code]
        self.memory_bw_eff = np.array([eff(a, "memory_bandwidth") for a in per_sys_acc])
        self.memory_bytes = acc["memory_bytes"][acc_code]
        self.tdp_w = acc["tdp_w"][acc_code]
        self.link_eff = {q: np.array([eff(a, q) for a in per_sys_acc]) for q in LINK_QUANTITIES}
        self.scaleup_bw = sysa["scaleup_bandwidth_bytes_per_s"]
        self.scaleout_bw = sysa["scaleout_bandwidth_bytes_per_s"]
        self.scaleup_latency = sysa["scaleup_latency_s"]
        self.scaleout_latency = sysa["scaleout_latency_s"]
        self.scaleup_domain = sysa["scaleup_domain_devices"].astype(np.float64)
        self.devices_per_node = sysa["devices_per_node"].astype(np.float64)
        self.kernel_overhead_s = float(kernel_overhead_s)
        self.accelerator_code = acc_code

    def system_code(self, system_id: str) -> int:
        return self.system_ids.index(system_id)

    def columns(self, system_code: Array, precision_code: Array) -> HardwareColumns:
        sc = np.asarray(system_code, dtype=np.int64)
        pc = np.asarray(precision_code, dtype=np.int64)
        fab = Fabric(
            scaleup_allreduce_bytes_per_s=(self.scaleup_bw * self.link_eff["scaleup_allreduce"])[sc],
            scaleup_alltoall_bytes_per_s=(self.scaleup_bw * self.link_eff["scaleup_alltoall"])[sc],
            scaleup_latency_s=self.scaleup_latency[sc],
            scaleup_domain=self.scaleup_domain[sc],
            scaleout_allreduce_bytes_per_s=(self.scaleout_bw * self.link_eff["scaleout_allreduce"])[sc],
            scaleout_alltoall_bytes_per_s=(self.scaleout_bw * self.link_eff["scaleout_alltoall"])[sc],
            scaleout_latency_s=self.scaleout_latency[sc],
        )
        return HardwareColumns(
            peak_matmul_flops_per_s=self.peak_matmul[sc, pc],
            peak_attention_flops_per_s=self.peak_attention[sc, pc],
            matmul_efficiency=self.matmul_eff[sc, pc],
            attention_efficiency=self.attention_eff[sc, pc],
            memory_bandwidth_bytes_per_s=self.memory_bandwidth[sc],
            memory_bandwidth_efficiency=self.memory_bw_eff[sc],
            kernel_overhead_s=np.full(sc.shape, self.kernel_overhead_s),
            memory_bytes=self.memory_bytes[sc],
            fabric=fab,
            tdp_w=self.tdp_w[sc],
            devices_per_node=self.devices_per_node[sc],
        )
