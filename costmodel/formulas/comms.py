"""Communication: bytes per collective for each parallelism, the fabric each group spans, and the
time of each collective under an alpha-beta model.

Collective costs (Thakur, Rabenseifner & Gropp 2005; Patarasuk & Yuan 2009 for the ring):
- ring all-reduce of M bytes over n ranks: 2 (n-1)/n * M / B + 2 (n-1) alpha;
- all-gather / reduce-scatter (M = the full, unsharded size): (n-1)/n * M / B + (n-1) alpha;
- all-to-all (M = what each rank holds before the exchange): (n-1)/n * M / B + (n-1) alpha;
- tree (double binary tree) all-reduce: 2 (n-1)/n * M / B + 2 log2(n) alpha; the cheaper of ring
  and tree is taken, as NCCL's tuner does;
- point-to-point: M / B + alpha.
B is the achieved bus bandwidth per rank: the fabric's one-direction bandwidth times the measured
fraction for that collective (nccl-tests 'busbw' convention). When a group spans several scale-up
domains its ring runs through g members per domain; each domain leaves through its members' own
NICs, so B = min(B_scaleup, g * B_scaleout) (hierarchical/multi-rail placement, as NCCL builds one
ring per NIC).

Ranks are placed tensor-parallel innermost, then context, then data, then pipeline (Megatron
order). A group whose members are ``stride`` ranks apart has min(n, domain/stride) members per
scale-up domain (at least 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from costmodel.specs.columns import Array, as_array


@dataclass(frozen=True)
class Fabric:
    """Network figures per device, one direction, already multiplied by achieved fractions."""

    scaleup_allreduce_bytes_per_s: Array
    scaleup_alltoall_bytes_per_s: Array
    scaleup_latency_s: Array
    scaleup_domain: Array  # devices reachable over the scale-up fabric
    scaleout_allreduce_bytes_per_s: Array
    scaleout_alltoall_bytes_per_s: Array
    scaleout_latency_s: Array


@dataclass(frozen=True)
class Group:
    """A communicator: its size, members per scale-up domain and whether it crosses domains."""

    size: Array
    per_domain: Array
    spans_domains: Array


def group(size: Array, stride: Array, fabric: Fabric) -> Group:
    size, stride = as_array(size), as_array(stride)
    per_domain = np.clip(np.floor(fabric.scaleup_domain / stride), 1.0, size)
    return Group(size, per_domain, size > per_domain)


def _bandwidth(g: Group, up: Array, out: Array) -> Array:
    return np.where(g.spans_domains, np.minimum(up, g.per_domain * out), up)


def _latency(g: Group, fabric: Fabric) -> Array:
    return np.where(g.spans_domains, fabric.scaleout_latency_s, fabric.scaleup_latency_s)


def all_reduce_time(nbytes: Array, g: Group, fabric: Fabric) -> Array:
    n = g.size
    bw = _bandwidth(g, fabric.scaleup_allreduce_bytes_per_s, fabric.scaleout_allreduce_bytes_per_s)
    alpha = _latency(g, fabric)
    transfer = 2 * (n - 1) / n * nbytes / bw
    ring = transfer + 2 * (n - 1) * alpha
    tree = transfer + 2 * np.log2(np.maximum(n, 1.0)) * alpha
    return np.where(n > 1, np.minimum(ring, tree), 0.0)


def all_gather_time(nbytes: Array, g: Group, fabric: Fabric) -> Array:
    """Also the reduce-scatter time; ``nbytes`` is the full (gathered) size."""
    n = g.size
    bw = _bandwidth(g, fabric.scaleup_allreduce_bytes_per_s, fabric.scaleout_allreduce_bytes_per_s)
    return np.where(n > 1, (n - 1) / n * nbytes / bw + (n - 1) * _latency(g, fabric), 0.0)


reduce_scatter_time = all_gather_time


def all_to_all_time(nbytes: Array, g: Group, fabric: Fabric) -> Array:
    n = g.size
    bw = _bandwidth(g, fabric.scaleup_alltoall_bytes_per_s, fabric.scaleout_alltoall_bytes_per_s)
    return np.where(n > 1, (n - 1) / n * nbytes / bw + (n - 1) * _latency(g, fabric), 0.0)


def p2p_time(nbytes: Array, crosses_domains: Array, fabric: Fabric) -> Array:
    bw = np.where(crosses_domains, fabric.scaleout_allreduce_bytes_per_s,
                  fabric.scaleup_allreduce_bytes_per_s)
    lat = np.where(crosses_domains, fabric.scaleout_latency_s, fabric.scaleup_latency_s)
    return nbytes / bw + lat
