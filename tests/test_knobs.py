"""Every assumption knob must move a figure when a user overrides it.

The knob names are read from ``data/assumptions.yaml`` (global knobs), ``data/frameworks.yaml``
(framework profiles) and ``data/calibration/framework_knobs.yaml`` (fitted values on top of the
profiles). ``SENSITIVE`` maps each knob to a configuration that depends on it, the output field
that must move, the perturbation and the expected direction. A knob added to the YAML without an
entry here fails ``test_every_knob_has_a_sensitivity_test``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import pytest
import yaml

import costmodel
from costmodel import ParallelLayout, TrainingSetup
from hardware_catalog.paths import data_dir

REL = 1e-9  # relative change below which a figure counts as "did not move"
TRAIN_TOKENS = 1e10


# ---- knob names and values straight from the YAML files ------------------------------------

def _read(path) -> dict:
    if not path.exists():
        return {}
    with path.open() as fh:
        return yaml.safe_load(fh) or {}


@lru_cache(maxsize=1)
def _global_knobs() -> dict[str, float]:
    raw = _read(data_dir() / "assumptions.yaml")
    return {name: float(body["value"]) for name, body in raw.items()}


@lru_cache(maxsize=1)
def _profiles() -> dict[str, dict[str, float]]:
    """Framework -> {knob: value}, frameworks.yaml with calibration/framework_knobs.yaml on top."""
    out: dict[str, dict[str, float]] = {}
    for fw, body in _read(data_dir() / "frameworks.yaml").items():
        out[fw] = {k: float(v["value"]) for k, v in ((body or {}).get("knobs") or {}).items()}
    for fw, body in _read(data_dir() / "calibration" / "framework_knobs.yaml").items():
        out.setdefault(fw, {}).update(
            {k: float(v["value"]) for k, v in ((body or {}).get("knobs") or {}).items()})
    return out


def _yaml_knob_names() -> set[str]:
    names = set(_global_knobs())
    for knobs in _profiles().values():
        names |= set(knobs)
    return names


def _cases() -> list[tuple[str, str, float]]:
    """(framework, knob, that profile's value): each global knob once (in a profile that does not
    redefine it), and each framework knob once per profile that defines it."""
    profiles = _profiles()
    cases: list[tuple[str, str, float]] = []
    for fw, knobs in profiles.items():
        for name, value in sorted(knobs.items()):
            cases.append((fw, name, value))
    for name, value in sorted(_global_knobs().items()):
        plain = [fw for fw, knobs in profiles.items() if name not in knobs]
        if plain:
            fw = "nemo" if "nemo" in plain else plain[0]
            cases.append((fw, name, value))
    return cases


# ---- configurations ------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """A hashable estimate_training configuration."""

    model: str = "llama-3.1-8b"
    accelerator: str = "h100-sxm5-80gb"
    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    zero_stage: int = 1
    micro_batch: int = 1
    global_batch: int = 16
    seq_len: int = 4096
    recompute: str = "none"

    def layout(self) -> ParallelLayout:
        return ParallelLayout(tp=self.tp, pp=self.pp, dp=self.dp, cp=self.cp, ep=self.ep,
                              zero_stage=self.zero_stage, sequence_parallel=self.tp > 1)

    def setup(self) -> TrainingSetup:
        return TrainingSetup(micro_batch=self.micro_batch, global_batch=self.global_batch,
                             seq_len=self.seq_len, recompute=self.recompute)


# The published example: TP, PP, DP, ZeRO-1, selective recompute on one HGX node.
BASE = Config(tp=2, pp=2, dp=2, zero_stage=1, recompute="selective")
TP = Config(tp=2, dp=4)                       # TP all-reduces on every block
CP = Config(tp=2, cp=2, dp=2, seq_len=16384)  # ring-attention KV exchange
EP = Config(model="mixtral-8x7b", tp=2, dp=4, ep=4, global_batch=32)  # MoE all-to-all
PP = Config(tp=2, pp=2, dp=2)                 # pipeline send/receive
DP = Config(dp=8, zero_stage=1)               # gradient reduce-scatter + parameter all-gather
Z3 = Config(dp=8, zero_stage=3)               # FSDP per-micro-batch gathers
LOGITS = Config(tp=2, dp=4)                   # pp=1: the loaded stage holds the loss
SELECTIVE = Config(tp=2, dp=4, recompute="selective")


@dataclass(frozen=True)
class ServeConfig:
    """A hashable estimate_serving configuration (serving knobs), optionally under a load."""

    model: str = "llama-3.1-8b"
    accelerator: str = "h100-sxm5-80gb"
    batch: int | None = 64
    input_len: int = 1000
    output_len: int = 250
    requests_per_s: float | None = None
    precision: str = "bf16"

    def estimate(self, overrides: dict[str, float] | None):
        from costmodel.faces.serving_api import estimate_serving
        from costmodel.specs.serving import ServingLoad, ServingSetup

        load = None if self.requests_per_s is None else ServingLoad(
            requests_per_s=self.requests_per_s, input_len=self.input_len, output_len=self.output_len)
        return estimate_serving(self.model, self.accelerator,
                                setup=ServingSetup(batch=self.batch, input_len=self.input_len,
                                                   output_len=self.output_len, precision=self.precision),
                                load=load, overrides=overrides)


SERVE = ServeConfig()
SERVE_LOADED = ServeConfig(batch=16, requests_per_s=6.0)  # busy enough that requests queue


# ---- perturbations -------------------------------------------------------------------------

def flip_overlap(v: float) -> float:
    """An overlap share moved to the other end of [0, 1]: guarantees a change whenever the
    communication it hides is non-zero (the max(0, comm - overlap * window) clamps otherwise)."""
    return 0.0 if v >= 0.5 else 1.0


def keep_toggle(v: float) -> float:
    return 0.5 if v > 0.5 else 1.0


def double(v: float) -> float:
    return 2.0 * v if v else 1.0


def halve(v: float) -> float:
    return 0.5 * v


@dataclass(frozen=True)
class Sensitive:
    config: Config
    field: str  # attribute of TrainingEstimate, or "step_breakdown_s.<key>" / "memory_breakdown_bytes.<key>"
    perturb: Callable[[float], float]
    direction: int  # sign of d(field)/d(knob); 0 = no direction asserted
    why: str


SENSITIVE: dict[str, Sensitive] = {
    "cuda_context_bytes": Sensitive(
        BASE, "memory_per_device_bytes", double, +1,
        "the CUDA context is a fixed term of every device's memory"),
    "fragmentation_fraction": Sensitive(
        BASE, "memory_per_device_bytes", double, +1,
        "fragmentation scales the activations, which are non-zero in every training config"),
    "gemm_kernel_overhead_s": Sensitive(
        BASE, "step_time_s", double, +1,
        "every GEMM of every block pays the fixed kernel overhead"),
    "gemm_half_efficiency_gflops": Sensitive(
        BASE, "step_time_s", double, +1,
        "every GEMM pays the size term (G0 of extra work at the achieved rate)"),
    "expert_gemm_efficiency_scale": Sensitive(
        EP, "step_time_s", halve, -1,
        "mixtral's routed experts are most of its compute; at half their rate the step is longer"),
    "elementwise_traffic_factor": Sensitive(
        BASE, "step_time_s", double, +1,
        "norms, residuals and rotary are memory-bound work inside every block"),
    "matmul_efficiency_scale": Sensitive(
        BASE, "step_time_s", halve, -1,
        "the dense GEMMs dominate the compute of a dense model"),
    "attention_efficiency_scale": Sensitive(
        Config(tp=2, dp=4, seq_len=16384), "step_time_s", halve, -1,
        "fused attention is a large share of compute at 16k tokens"),
    "checkpoints_retained": Sensitive(
        BASE, "cost_storage_usd", double, +1,
        "storage cost is proportional to the number of checkpoints kept"),
    "power_utilization_fraction": Sensitive(
        BASE, "energy_kwh", halve, +1,
        "device energy is TDP x utilisation x hours"),
    "goodput_fraction": Sensitive(
        BASE, "device_hours", halve, -1,
        "run time and device-hours are the productive hours over the goodput"),
    "pue": Sensitive(
        BASE, "energy_kwh", double, +1,
        "facility energy is device energy x PUE"),
    "logits_bytes_per_element": Sensitive(
        LOGITS, "memory_per_device_bytes", double, +1,
        "pp=1, so the loaded stage holds the vocabulary logits of the loss"),
    "selective_keep_fraction": Sensitive(
        SELECTIVE, "memory_per_device_bytes", keep_toggle, +1,
        "selective recompute keeps this share of the non-attention-core activations"),
    "overlap_grad_reduce": Sensitive(
        DP, "step_time_s", flip_overlap, -1,
        "dp=8 with ZeRO-1 reduce-scatters the gradients once per step"),
    "overlap_param_gather": Sensitive(
        DP, "step_time_s", flip_overlap, -1,
        "dp=8 with ZeRO-1 all-gathers the updated parameters once per step"),
    "zero3_prefetch": Sensitive(
        Z3, "step_time_s", flip_overlap, -1,
        "dp=8 with ZeRO-3 gathers parameters and scatters gradients every micro-batch"),
    "tp_comm_overlap": Sensitive(
        TP, "step_time_s", flip_overlap, -1,
        "tp=2 runs all-gathers/reduce-scatters around every block"),
    "cp_comm_overlap": Sensitive(
        CP, "step_time_s", flip_overlap, -1,
        "cp=2 exchanges KV chunks in a ring around every attention core"),
    "ep_comm_overlap": Sensitive(
        EP, "step_time_s", flip_overlap, -1,
        "mixtral with ep=4 dispatches and combines tokens by all-to-all in every MoE block"),
    "pp_comm_overlap": Sensitive(
        PP, "step_time_s", flip_overlap, -1,
        "pp=2 sends activations and gradients between stages every micro-batch"),
    "serving_step_overhead_s": Sensitive(
        SERVE, "tpot_s", double, +1,
        "every decode iteration pays the fixed per-iteration time"),
    "serving_kv_block_tokens": Sensitive(
        SERVE, "memory_breakdown_bytes.kv_cache", double, +1,
        "1,250 tokens of context round up to 1,264 with 16-token blocks and 1,280 with 32"),
    "serving_memory_utilization": Sensitive(
        ServeConfig(batch=1), "max_batch", halve, +1,
        "the KV cache gets the engine's share of memory left after the weights"),
    "serving_prefill_chunk_tokens": Sensitive(
        SERVE, "ttft_s", double, 0,
        "a 1,000-token prompt is prefilled in ceil(1000 / chunk) iterations"),
    "serving_weight_only_compute_overhead": Sensitive(
        ServeConfig(precision="w4a16", batch=256), "tpot_s", double, +1,
        "int4 weight-only GEMMs at batch 256 with chunked prefill are compute-bound after dequantization"),
    "serving_service_time_cv2": Sensitive(
        SERVE_LOADED, "ttft_p95_s", double, +1,
        "the queueing wait scales with (1 + cv^2) / 2 (Allen-Cunneen)"),
}


# ---- cached evaluation ---------------------------------------------------------------------

@lru_cache(maxsize=None)
def _estimate(cfg: Config, framework: str, overrides: tuple[tuple[str, float], ...] = ()):
    if isinstance(cfg, ServeConfig):
        return cfg.estimate(dict(overrides) or None)
    return costmodel.estimate_training(
        cfg.model, cfg.accelerator, cfg.layout(), cfg.setup(), train_tokens=TRAIN_TOKENS,
        framework=framework, overrides=dict(overrides) or None)


def _field(est, field: str) -> float:
    if "." in field:
        attr, key = field.split(".", 1)
        return float(getattr(est, attr)[key])
    return float(getattr(est, field))


def _moved(a: float, b: float) -> bool:
    return not math.isclose(a, b, rel_tol=REL, abs_tol=0.0)


# ---- 1. completeness -----------------------------------------------------------------------

def test_every_knob_has_a_sensitivity_test():
    """The YAML knob set and SENSITIVE agree, so a new knob without a test fails here."""
    names = _yaml_knob_names()
    assert names, "no knobs read from data/"
    missing = sorted(names - set(SENSITIVE))
    stale = sorted(set(SENSITIVE) - names)
    assert not missing, f"knobs without an entry in SENSITIVE: {missing}"
    assert not stale, f"SENSITIVE names knobs the YAML no longer has: {stale}"


def test_every_profile_is_covered():
    """Each framework profile of frameworks.yaml contributes cases (the list is read, not typed)."""
    profiles = set(_profiles())
    assert {"megatron", "nemo", "torchtitan", "huggingface", "jax"} <= profiles
    assert {fw for fw, _, _ in _cases()} == profiles


# ---- 2. each knob moves its figure through the scalar API ----------------------------------

@pytest.mark.parametrize(("framework", "knob", "value"), _cases(),
                         ids=[f"{fw}-{k}" for fw, k, _ in _cases()])
def test_knob_moves_estimate(framework, knob, value):
    """Overriding a knob away from the profile's value moves the output its config depends on."""
    s = SENSITIVE[knob]
    new = s.perturb(value)
    assert new != value
    assert new >= 0
    if knob.endswith(("_fraction", "_overlap", "_prefetch")) or knob.startswith("overlap_"):
        assert 0.0 <= new <= 1.0
    base = _field(_estimate(s.config, framework), s.field)
    moved = _field(_estimate(s.config, framework, ((knob, new),)), s.field)
    assert _moved(base, moved), (
        f"{knob}: {value} -> {new} in {framework} left {s.field} at {base!r} ({s.why})")
    if s.direction:
        expect = s.direction * (1 if new > value else -1)
        assert (moved - base) * expect > 0, (
            f"{knob}: {value} -> {new} moved {s.field} {base!r} -> {moved!r}, "
            f"expected {'up' if expect > 0 else 'down'}")


def test_overlap_knobs_move_their_own_component():
    """Each overlap knob moves the step-time component of the communication it hides."""
    component = {"tp_comm_overlap": "tp_comm", "cp_comm_overlap": "cp_comm",
                 "ep_comm_overlap": "ep_comm", "pp_comm_overlap": "pp_comm",
                 "overlap_grad_reduce": "dp_comm", "overlap_param_gather": "dp_comm",
                 "zero3_prefetch": "dp_comm"}
    for knob, key in component.items():
        s = SENSITIVE[knob]
        base = _estimate(s.config, "megatron").step_breakdown_s[key]
        hidden = _estimate(s.config, "megatron", ((knob, 1.0),)).step_breakdown_s[key]
        exposed = _estimate(s.config, "megatron", ((knob, 0.0),)).step_breakdown_s[key]
        assert exposed > 0, f"{knob}: no {key} to hide in this config"
        assert hidden < exposed, f"{knob}: full overlap did not shrink {key}"
        assert hidden <= base <= exposed


# ---- 3. the planner sees the same knobs ----------------------------------------------------

def _scenario(overrides: dict[str, float]) -> costmodel.Scenario:
    return costmodel.Scenario(
        model="llama-3.1-8b",
        job=costmodel.Job(train_tokens=TRAIN_TOKENS, seq_len=4096, global_batch=64),
        search=costmodel.SearchSpace(
            accelerators=["h100-sxm5-80gb"], device_counts=[8], tp=[2], pp=[1], vpp=[1], cp=[1],
            zero_stage=[1], recompute=["none"], micro_batch=[1], precision=["bf16"]),
        overrides=overrides)


@lru_cache(maxsize=None)
def _plans(overrides: tuple[tuple[str, float], ...] = ()):
    result = costmodel.plan(_scenario(dict(overrides)), top=5)
    assert not result.plans.empty, "the planner found no plan for the fixed search space"
    return result.plans


_PLAN_KEY = ["accelerator", "offer", "region", "pricing_model", "system", "n_devices",
             "tp", "pp", "vpp", "dp", "cp", "ep", "zero_stage", "recompute", "micro_batch",
             "precision"]


@pytest.mark.parametrize(("knob", "new", "column", "direction"), [
    ("gemm_kernel_overhead_s", 1e-4, "step_time_s", +1),
    ("pue", 2.4, "energy_kwh", +1),
    ("cuda_context_bytes", 2 * 1408237568, "memory_per_device_gib", +1),
    ("checkpoints_retained", 4, "cost_storage_usd", +1),
])
def test_knob_moves_planner(knob, new, column, direction):
    """plan() resolves the same knobs: the top plan's figure moves (gemm overhead: a fixed bug)."""
    default = _global_knobs()[knob]
    assert new != default
    base = _plans()
    top = base.iloc[0]
    moved = _plans(((knob, float(new)),))
    key = {c: top[c] for c in _PLAN_KEY if c in base.columns}
    match = moved
    for c, v in key.items():
        match = match[match[c] == v]
    assert len(match) >= 1, f"the top plan {key} vanished after overriding {knob}"
    before, after = float(top[column]), float(match.iloc[0][column])
    assert _moved(before, after), f"plan(): {knob}={new} left {column} at {before!r}"
    assert (after - before) * direction * (1 if new > default else -1) > 0


# ---- 4. and the CLI ------------------------------------------------------------------------

def test_cli_set_gemm_kernel_overhead_moves_step_time(capsys):
    """`costmodel train --set gemm_kernel_overhead_s=...` reaches the step time (every GEMM pays it)."""
    from costmodel.faces.cli import main

    argv = ["train", "llama-3.1-8b", "--accelerator", "h100-sxm5-80gb", "--train-tokens", "1e10",
            "--tp", "2", "--dp", "4", "--global-batch", "16", "--seq-len", "4096",
            "--format", "json"]

    def run(extra: list[str]) -> dict:
        rc = main(argv + extra)
        assert not rc
        return json.loads(capsys.readouterr().out)

    base = run([])["step_time_s"]
    slower = run(["--set", "gemm_kernel_overhead_s=1e-4"])["step_time_s"]
    assert _moved(base, slower)
    assert slower > base
