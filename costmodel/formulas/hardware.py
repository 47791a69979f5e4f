"""Hardware as columns: what the timing and cost formulas need from an accelerator, its system and
the achievable-efficiency data, one value per configuration row. The table that fills these columns
from a catalog is ``costmodel.tables.hardware``."""

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
    memory_bytes: Array  # device memory capacity
    fabric: Fabric
    tdp_w: Array
    devices_per_node: Array
    sparsity_speedup: Array = 1.0  # peak multiplier for the part's structured sparsity (1 = none)
    peak_16bit_flops_per_s: Array = np.nan  # dense bf16 (else fp16) peak: the MFU denominator

    @property
    def achieved_memory_bandwidth(self) -> Array:
        return self.memory_bandwidth_bytes_per_s * self.memory_bandwidth_efficiency

    def take(self, index: Array) -> HardwareColumns:
        """Rows ``index`` of a 1-d table (e.g. per-configuration hardware codes)."""
        def pick(x):
            return np.asarray(x)[index]
        fab = Fabric(**{f.name: pick(getattr(self.fabric, f.name)) for f in fields(Fabric)})
        vals = {f.name: pick(np.broadcast_to(getattr(self, f.name), np.shape(self.memory_bytes)))
                for f in fields(self) if f.name != "fabric"}
        return HardwareColumns(fabric=fab, **vals)


def hardware_from_values(**values: float) -> HardwareColumns:
    """A single-row hardware description from plain numbers (tests, notebooks, user systems).

    Keys: the fields of ``HardwareColumns`` plus the fields of ``Fabric``.
    """
    fab_names = {f.name for f in fields(Fabric)}
    fab = Fabric(**{k: as_array(values.pop(k)) for k in list(values) if k in fab_names})
    return HardwareColumns(fabric=fab, **{k: as_array(v) for k, v in values.items()})
