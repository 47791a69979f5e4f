"""What the pages share: session state and its defaults, the model picker, the scenario built from
the inputs, and the cached calls into costmodel. No formula lives here: every figure the UI shows
comes from ``costmodel`` (``plan``, ``report``, ``parameter_count``, ``training_memory``, the
catalog); this module only collects inputs, calls the API and formats the answers.

State conventions
-----------------
- ``in_*`` keys are user inputs. Their defaults are set once per session by ``init_state`` and the
  widgets are created with ``persist_state="session"`` and no ``value=``, so an input keeps its
  value across page switches and any page can read it from ``st.session_state``.
- ``overrides`` (not a widget) holds the price, efficiency and knob overrides of the Assumptions
  page; they become part of the scenario, so every page plans with them.
- ``selected_plan`` (not a widget) is the ``plan_id`` of the plan the Plan page shows in detail.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
import yaml
from pydantic import ValidationError

import costmodel
from costmodel.faces import charts
from costmodel.specs.assumptions import AssumptionError, Assumptions, frameworks
from costmodel.tables.catalog import engine_catalog
from costmodel.specs.layout import RANK_DIMENSIONS
from costmodel.search.grid import apply_overrides, plan
from costmodel.search.result import plan_breakdown
from costmodel.search.workers import machine_workers, prefetch, started, warm_up
from costmodel.faces.report import HOURS_UNDER_DAYS, duration_text, metadata, report_bytes
from costmodel.specs.scenario import (
    OBJECTIVES,
    Constraints,
    Job,
    Scenario,
    ScenarioError,
    SearchSpace,
)
from costmodel.specs.serving import ReplicaLayout, ServingLoad, ServingSetup
from costmodel.specs.spec import ModelSpec, ModelSpecError, make_spec
from costmodel.specs.setup import Optimizer, Recompute, TrainingPrecision
from hardware_catalog import KINDS, PRICING_MODELS, Catalog, CatalogError

#: Errors that mean "the input is wrong": shown as a readable st.error, never as a traceback.
INPUT_ERRORS = (ScenarioError, ModelSpecError, AssumptionError, CatalogError, ValidationError,
                ValueError, KeyError, TypeError)

PERSIST = "session"
#: Processes a search uses here (costmodel.search.workers): the machine's cores, at most 4. The
#: workers start right after the first search of the process (starting them with it slowed it down:
#: they load the engine on the same cores), so the searches after it find them ready.
WORKERS = machine_workers()
DEFAULT_PRESET = "llama-3.1-8b"
DEFAULT_TRAIN_TOKENS = 1e12
DEFAULT_TOP = 50
REPORT_STEM = "costmodel_plans"

MODEL_SOURCES = ("Preset", "Hugging Face config.json", "Custom dimensions")
#: ModelSpec fields the "Custom dimensions" form edits (the rest come from the base preset).
CUSTOM_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size",
                 "n_experts", "experts_per_token", "d_ff_expert")
CUSTOM_LABELS = {
    "n_layers": "Layers",
    "d_model": "Hidden size d_model",
    "n_heads": "Attention heads",
    "n_kv_heads": "Key/value heads (empty = heads)",
    "d_ff": "MLP hidden size d_ff",
    "vocab_size": "Vocabulary size",
    "n_experts": "Routed experts (0 = dense)",
    "experts_per_token": "Experts per token (top-k)",
    "d_ff_expert": "Expert MLP hidden size",
}
_MOE_ONLY = {"experts_per_token": 0, "n_shared_experts": 0, "d_ff_expert": None,
             "n_dense_layers": 0, "router_bias": False}

_JOB = Job(train_tokens=DEFAULT_TRAIN_TOKENS)
_CONS = Constraints()
_SEARCH = SearchSpace()

#: Choices offered for each search dimension (always including the planner's defaults).
SEARCH_DIMENSIONS = ("device_counts", "tp", "pp", "vpp", "cp", "ep", "zero_stage", "recompute",
                     "micro_batch", "precision")
_EXTRA_CHOICES: dict[str, list[Any]] = {
    "device_counts": [1 << i for i in range(15)],
    "tp": [1, 2, 4, 8, 16, 32, 64],
    "pp": [1, 2, 4, 8, 16, 32, 64],
    "vpp": [1, 2, 3, 4, 6, 8],
    "cp": [1, 2, 4, 8, 16, 32],
    "ep": [1, 2, 4, 8, 16, 32, 64],
    "zero_stage": [0, 1, 2, 3],
    "recompute": list(typing.get_args(Recompute)),
    "micro_batch": [1, 2, 4, 8, 16, 32],
    "precision": list(typing.get_args(TrainingPrecision)),
}


def _choices(dim: str) -> list[Any]:
    default = list(getattr(_SEARCH, dim))
    extra = _EXTRA_CHOICES[dim]
    if dim in ("recompute", "precision"):
        return list(dict.fromkeys(extra + default))
    return sorted(set(extra) | set(default))


SEARCH_CHOICES = {d: _choices(d) for d in SEARCH_DIMENSIONS}
SEARCH_LABELS = {
    "device_counts": "Device counts",
    "tp": "Tensor parallel (tp)",
    "pp": "Pipeline parallel (pp)",
    "vpp": "Virtual pipeline stages (vpp)",
    "cp": "Context parallel (cp)",
    "ep": "Expert parallel (ep, MoE only)",
    "zero_stage": "ZeRO stage",
    "recompute": "Activation recompute",
    "micro_batch": "Micro-batch (sequences)",
    "precision": "Precision",
}
OPTIMIZERS = list(typing.get_args(Optimizer))
#: Rank placements the planner accepts (SearchSpace.rank_order), its default first.
RANK_ORDERS = list(dict.fromkeys([_SEARCH.rank_order,
                                  *("-".join(p) for p in itertools.permutations(RANK_DIMENSIONS))]))
JOB_KINDS = {"pretrain": "Pre-training", "finetune": "Fine-tuning", "serve": "Serving"}

# Serving ------------------------------------------------------------------------------------------
_LOAD_FIELDS = ServingLoad.model_fields
#: The search field that holds a serving plan's number format: ``quantization`` where the engine
#: has quantization schemes, else ``precision`` (serving precisions bf16, fp16, fp8).
SERVE_PRECISION_FIELD = "quantization" if "quantization" in SearchSpace.model_fields else "precision"


def _literal_choices(field: str) -> list[Any]:
    """The values a ``list[Literal[...]]`` field of SearchSpace allows, in their declared order."""
    (inner,) = typing.get_args(SearchSpace.model_fields[field].annotation)
    return list(typing.get_args(inner))


def _serve_choices() -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {
        "tp": SEARCH_CHOICES["tp"], "pp": SEARCH_CHOICES["pp"], "ep": SEARCH_CHOICES["ep"],
        "batch": sorted(set(_SEARCH.batch) | {1 << i for i in range(12)}),
        SERVE_PRECISION_FIELD: (_literal_choices("quantization") if SERVE_PRECISION_FIELD == "quantization"
                                else list(dict.fromkeys(["bf16", "fp16", "fp8", *_SEARCH.precision]))),
        "kv_bits": _literal_choices("kv_bits"),
    }
    if "sparsity" in SearchSpace.model_fields:
        out["sparsity"] = _literal_choices("sparsity")
    out["disaggregated"] = [False, True]
    return out


#: Serving search dimensions -> choices; tp, pp and ep share the training inputs (in_tp ...).
SERVE_CHOICES = _serve_choices()
SERVE_DIMENSIONS = tuple(SERVE_CHOICES)
SERVE_KEYS = {d: (f"in_{d}" if d in SEARCH_DIMENSIONS else f"in_serve_{d}") for d in SERVE_DIMENSIONS}
SERVE_LABELS = {
    "tp": "Tensor parallel per replica (tp)",
    "pp": "Pipeline stages per replica (pp)",
    "ep": "Expert parallel (ep = 1 or tp, MoE only)",
    "batch": "Batch: most sequences per replica",
    "precision": "Precision (weights and matmuls)",
    "quantization": "Precision / quantization scheme",
    "kv_bits": "KV-cache bits",
    "sparsity": "Weight sparsity",
    "disaggregated": "Prefill and decode",
}
SERVE_FORMAT = {"disaggregated": {False: "co-located", True: "disaggregated pools"}.get}


def _custom_values(spec: ModelSpec) -> dict[str, Any]:
    return {f"in_c_{f}": getattr(spec, f) for f in CUSTOM_FIELDS}


def _defaults() -> dict[str, Any]:
    base = costmodel.preset(DEFAULT_PRESET)
    d: dict[str, Any] = {
        # model
        "in_model_source": MODEL_SOURCES[0],
        "in_preset": DEFAULT_PRESET,
        "in_config_text": "",
        "in_config_name": "",
        "in_c_base": DEFAULT_PRESET,
        "in_c_name": "custom-model",
        **_custom_values(base),
        # job
        "in_job_kind": _JOB.kind,
        "in_train_tokens_b": DEFAULT_TRAIN_TOKENS / 1e9,
        "in_seq_len": _JOB.seq_len,
        "in_global_batch": None,
        "in_optimizer": _JOB.optimizer,
        "in_framework": _JOB.framework,
        "in_optimizer_state_bits": _JOB.optimizer_state_bits,
        "in_gradient_precision": _JOB.gradient_precision,
        "in_master_weights": "auto",
        "in_flash_attention": _JOB.flash_attention,
        "in_dropout": _JOB.dropout,
        "in_causal_discount": _JOB.causal_discount,
        "in_objective": "cost",
        "in_top": DEFAULT_TOP,
        # constraints
        "in_deadline_days": None,
        "in_budget_usd": None,
        "in_max_devices": None,
        "in_providers": list(_CONS.providers),
        "in_regions": list(_CONS.regions),
        "in_pricing": list(_CONS.pricing_models),
        "in_kinds": list(_CONS.kinds),
        "in_headroom": float(_CONS.min_memory_headroom),
        # search space
        "in_accelerators": list(_SEARCH.accelerators),
        "in_sp": bool(_SEARCH.sequence_parallel),
        "in_rank_order": _SEARCH.rank_order,
        # serving job (kind 'serve'): the load and its SLOs; defaults are ServingLoad's
        "in_serve_rps": 10.0,
        "in_serve_input_len": 1000,
        "in_serve_output_len": 250,
        "in_serve_peak_to_mean": float(_LOAD_FIELDS["peak_to_mean"].default),
        "in_serve_hourly": "",
        "in_serve_ttft": None,
        "in_serve_tpot": None,
        "in_serve_e2e": None,
        "in_serve_max_util": float(_LOAD_FIELDS["max_utilization"].default),
        # model page: one layout for the immediate memory footprint
        "in_m_tp": 1, "in_m_pp": 1, "in_m_dp": 8, "in_m_cp": 1, "in_m_ep": 1,
        "in_m_zero": 3, "in_m_sp": True, "in_m_precision": "bf16", "in_m_micro_batch": 1,
        "in_m_seq_len": 4096, "in_m_recompute": "selective", "in_m_framework": _JOB.framework,
        "in_m_accelerator": "h100-sxm5-80gb",
    }
    for dim in SEARCH_DIMENSIONS:
        d[f"in_{dim}"] = list(getattr(_SEARCH, dim))
    for dim in SERVE_DIMENSIONS:
        d.setdefault(SERVE_KEYS[dim], list(getattr(_SEARCH, dim)))
    return d


DEFAULTS = _defaults()


def empty_overrides() -> dict[str, Any]:
    return {"knobs": {}, "efficiency": [], "prices": []}


def init_state() -> None:
    """Give every input its default once per session (app.py calls this on every run)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = copy.deepcopy(value)
    if "overrides" not in st.session_state:
        st.session_state["overrides"] = empty_overrides()


def state(key: str) -> Any:
    return st.session_state.get(key, DEFAULTS.get(key))


def message(exc: BaseException) -> str:
    """One readable line for an input error (pydantic errors without the URL noise)."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(input)"
            parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
        return "; ".join(parts)
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


# Catalog ------------------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def catalog() -> Catalog:
    """The catalog the engine plans with (shipped data + calibration), loaded once per process."""
    return engine_catalog()


@st.cache_data(show_spinner=False)
def catalog_regions() -> list[str]:
    return sorted(set(catalog().offers_frame()["region"]))


# Model ----------------------------------------------------------------------------------------------

def preset_names() -> list[str]:
    return sorted(costmodel.presets())


def current_model() -> tuple[str | ModelSpec, ModelSpec]:
    """(what goes into the scenario, the resolved spec) for the model inputs.

    A preset stays a name in the scenario (readable YAML); an uploaded config or custom dimensions
    become a full ModelSpec. Raises ModelSpecError with a readable message.
    """
    source = state("in_model_source")
    if source == MODEL_SOURCES[0]:
        name = state("in_preset")
        return name, costmodel.preset(name)
    if source == MODEL_SOURCES[1]:
        text = (state("in_config_text") or "").strip()
        if not text:
            raise ModelSpecError("upload a Hugging Face config.json (or paste its contents) to use "
                                 "it as the model")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelSpecError(f"config.json is not valid JSON: {exc.msg} (line {exc.lineno}, "
                                 f"column {exc.colno})") from None
        name = (state("in_config_name") or "").strip() or None
        spec = costmodel.spec_from_hf_config(data, name=name)
        return spec, spec
    base = costmodel.preset(state("in_c_base"))
    fields = base.model_dump()
    fields.update({f: state(f"in_c_{f}") for f in CUSTOM_FIELDS})
    if not fields["n_experts"]:
        fields.update(_MOE_ONLY)  # a dense model carries no expert fields
    fields["name"] = (state("in_c_name") or "").strip() or "custom-model"
    fields["source"] = f"custom dimensions entered in the web UI (based on preset {base.name})"
    spec = make_spec(fields, where="custom model")
    return spec, spec


def _copy_custom_base() -> None:
    spec = costmodel.preset(st.session_state["in_c_base"])
    for key, value in _custom_values(spec).items():
        st.session_state[key] = value
    st.session_state["in_c_name"] = f"{spec.name}-custom"


def _take_upload() -> None:
    up = st.session_state.get("up_config")
    if up is None:
        return
    st.session_state["in_config_text"] = up.getvalue().decode("utf-8", errors="replace")
    if up.name != "config.json":
        st.session_state["in_config_name"] = Path(up.name).stem


def model_picker() -> ModelSpec | None:
    """Model inputs (call inside ``with st.sidebar``). Shows the parameter count right away, or
    the error; returns the spec or None."""
    st.radio("Model source", MODEL_SOURCES, key="in_model_source", persist_state=PERSIST)
    source = state("in_model_source")
    if source == MODEL_SOURCES[0]:
        st.selectbox("Preset", preset_names(), key="in_preset", persist_state=PERSIST,
                     help="Shipped architectures (data/models/*.yaml), each with its source.")
    elif source == MODEL_SOURCES[1]:
        st.file_uploader("Upload a Hugging Face config.json", type=["json"], key="up_config",
                         on_change=_take_upload,
                         help="Read locally, nothing is downloaded. Supported model_type values: "
                              + ", ".join(sorted(costmodel.specs.spec.HF_MODEL_TYPES)) + ".")
        st.text_area("config.json contents (upload above or paste here)", key="in_config_text",
                     height=140, persist_state=PERSIST)
        st.text_input("Model name (optional)", key="in_config_name", persist_state=PERSIST,
                      help="Default: the config's _name_or_path, else its model_type.")
    else:
        st.selectbox("Start from preset", preset_names(), key="in_c_base", persist_state=PERSIST,
                     on_change=_copy_custom_base,
                     help="Architecture flags (attention kind, norms, biases, MoE details) come "
                          "from this preset; the sizes below replace its sizes.")
        st.text_input("Name", key="in_c_name", persist_state=PERSIST)
        c1, c2 = st.columns(2)
        dense = [f for f in CUSTOM_FIELDS if f not in ("n_experts", "experts_per_token", "d_ff_expert")]
        for i, f in enumerate(dense):
            col = c1 if i % 2 == 0 else c2
            optional = f == "n_kv_heads"
            col.number_input(CUSTOM_LABELS[f], min_value=1, step=1, key=f"in_c_{f}",
                             persist_state=PERSIST, **({"value": None} if optional else {}))
        with st.expander("Mixture of experts"):
            st.number_input(CUSTOM_LABELS["n_experts"], min_value=0, step=1, key="in_c_n_experts",
                            persist_state=PERSIST)
            st.number_input(CUSTOM_LABELS["experts_per_token"], min_value=0, step=1,
                            key="in_c_experts_per_token", persist_state=PERSIST)
            st.number_input(CUSTOM_LABELS["d_ff_expert"], min_value=1, step=1, value=None,
                            key="in_c_d_ff_expert", persist_state=PERSIST)
    try:
        _, spec = current_model()
    except INPUT_ERRORS as exc:
        st.session_state["_model_error"] = message(exc)
        st.error(f"Model: {message(exc)}", icon=":material/error:")
        return None
    st.session_state.pop("_model_error", None)
    total = float(costmodel.parameter_count(spec).total)
    active = float(costmodel.active_parameter_count(spec).total)
    st.markdown(f"**{spec.name}**: {total / 1e9:,.2f} B parameters"
                + (f", {active / 1e9:,.2f} B active per token" if active != total else ""))
    return spec


# Scenario -------------------------------------------------------------------------------------------

def _ordered(values: list[Any], dim: str) -> list[Any]:
    """Canonical order (the choices' order) so equal inputs give the same scenario text."""
    return [v for v in SEARCH_CHOICES[dim] if v in values]


def parse_hourly_profile(text: str | None) -> list[float] | None:
    """The 24 hourly request rates typed as comma-separated numbers (empty = no profile); raises
    ScenarioError naming the field when the text is not 24 numbers."""
    text = (text or "").strip()
    if not text:
        return None
    parts = [p.strip() for p in text.replace(";", ",").replace("\n", ",").split(",")]
    parts = [p for p in parts if p]
    values = []
    for p in parts:
        try:
            values.append(float(p))
        except ValueError:
            raise ScenarioError(f"Hourly profile: {p!r} is not a number; give 24 comma-separated "
                                "numbers (hour 0 to 23), or leave it empty") from None
    if len(values) != 24:
        raise ScenarioError(f"Hourly profile: needs 24 comma-separated values (hour 0 to 23), got "
                            f"{len(values)}")
    return values


def serving_job_data() -> dict[str, Any]:
    """The ``job`` of a serving scenario (kind 'serve'): the load and its SLOs, no train_tokens."""
    def opt(key: str) -> float | None:
        v = state(key)
        return None if v is None else float(v)

    return {
        "kind": "serve",
        "load": {
            "requests_per_s": float(state("in_serve_rps")),
            "input_len": int(state("in_serve_input_len")),
            "output_len": int(state("in_serve_output_len")),
            "peak_to_mean": float(state("in_serve_peak_to_mean")),
            "hourly_profile": parse_hourly_profile(state("in_serve_hourly")),
            "ttft_p95_s": opt("in_serve_ttft"),
            "tpot_p95_s": opt("in_serve_tpot"),
            "e2e_p95_s": opt("in_serve_e2e"),
            "max_utilization": float(state("in_serve_max_util")),
        },
        "framework": state("in_framework"),
    }


def _serve_ordered(dim: str) -> list[Any]:
    values = state(SERVE_KEYS[dim]) or []
    return [v for v in SERVE_CHOICES[dim] if v in values]


def serving_search_data() -> dict[str, Any]:
    """The ``search`` of a serving scenario: accelerators and the serving dimensions only."""
    return {
        "accelerators": [a for a in catalog().accelerator_ids if a in state("in_accelerators")],
        **{dim: _serve_ordered(dim) for dim in SERVE_DIMENSIONS},
    }


def is_serving() -> bool:
    return state("in_job_kind") == "serve"


def scenario_data() -> dict[str, Any]:
    """The scenario as ``Scenario.from_dict`` takes it, from the inputs and the overrides."""
    model, _ = current_model()
    o = st.session_state.get("overrides") or empty_overrides()
    serve = is_serving()
    return {
        "model": model,
        "job": serving_job_data() if serve else {
            "kind": state("in_job_kind"),
            "train_tokens": float(state("in_train_tokens_b")) * 1e9,
            "seq_len": int(state("in_seq_len")),
            "global_batch": state("in_global_batch"),
            "optimizer": state("in_optimizer"),
            "framework": state("in_framework"),
            "optimizer_state_bits": int(state("in_optimizer_state_bits")),
            "gradient_precision": state("in_gradient_precision"),
            "master_weights": {"auto": None, "yes": True, "no": False}[state("in_master_weights")],
            "flash_attention": bool(state("in_flash_attention")),
            "dropout": bool(state("in_dropout")),
            "causal_discount": bool(state("in_causal_discount")),
        },
        "constraints": {
            # An empty deadline is the engine's default ("auto": 90 days pre-training, 14 fine-tuning).
            "deadline_days": "auto" if serve or state("in_deadline_days") is None else state("in_deadline_days"),
            "budget_usd": state("in_budget_usd"),
            "max_devices": state("in_max_devices"),
            "providers": sorted(state("in_providers")),
            "regions": sorted(state("in_regions")),
            "pricing_models": [p for p in PRICING_MODELS if p in state("in_pricing")],
            "kinds": [k for k in KINDS if k in state("in_kinds")],
            "min_memory_headroom": float(state("in_headroom")),
        },
        "search": serving_search_data() if serve else {
            "accelerators": [a for a in catalog().accelerator_ids if a in state("in_accelerators")],
            **{dim: _ordered(state(f"in_{dim}"), dim) for dim in SEARCH_DIMENSIONS},
            "sequence_parallel": bool(state("in_sp")),
            "rank_order": state("in_rank_order"),
        },
        "objective": state("in_objective"),
        "overrides": dict(o["knobs"]),
        "price_overrides": [dict(p) for p in o["prices"]],
        "efficiency_overrides": [dict(e) for e in o["efficiency"]],
    }


def current_scenario(with_overrides: bool = True) -> Scenario:
    """The scenario of the current inputs; raises ScenarioError / ModelSpecError (readable)."""
    data = scenario_data()
    if not with_overrides:
        data.update(overrides={}, price_overrides=[], efficiency_overrides=[])
    return Scenario.from_dict(data, where="scenario")


def _serving_summary(sc: Scenario, spec_name: str) -> str:
    load = sc.job.load
    slos = [f"{name} ≤ {v:,.4g} s" for name, v in (("TTFT", load.ttft_p95_s), ("TPOT", load.tpot_p95_s),
                                                    ("end-to-end", load.e2e_p95_s)) if v is not None]
    peak = ("24-hour profile, busiest hour" if load.hourly_profile else "peak") + \
        f" x{load.peak_factor:,.3g}"
    return (f"**{spec_name}** · serving {load.requests_per_s:,.4g} requests/s ({peak}) of "
            f"{load.input_len:,} input + {load.output_len:,} output tokens · p95 SLOs: "
            f"{', '.join(slos) if slos else 'none'} · utilisation ≤ {load.max_utilization:.0%} · "
            f"objective {sc.objective}")


def scenario_summary(sc: Scenario, spec_name: str) -> str:
    from costmodel.jobs.train import batch_sequences

    job = sc.job
    if job.kind == "serve":
        return _serving_summary(sc, spec_name)
    return (f"**{spec_name}** · {JOB_KINDS.get(job.kind, job.kind).lower()} on "
            f"{job.train_tokens:,.4g} tokens · {batch_sequences(sc):,} x {job.seq_len:,}-token "
            f"sequences per step · framework {job.framework} · objective {sc.objective}")


# Planning (cached) ------------------------------------------------------------------------------------

@st.cache_data(show_spinner="Searching every hardware x layout x precision configuration ...",
               max_entries=64)
def run_plan(scenario_yaml: str, top: int) -> dict[str, Any]:
    """``plan`` of the scenario (keyed on its YAML text), with the report files as bytes.

    The files come from ``costmodel.faces.report.report_bytes`` (what the CLI's writer writes), so the
    CSVs are byte-for-byte what ``costmodel plan <scenario.yaml> --top <top> --csv`` writes.
    """
    sc = Scenario.from_dict(yaml.safe_load(scenario_yaml), where="scenario")
    # The first search of the process runs alone; the workers start right after it and, in the
    # background, time their blocks of it (so the next search finds their memos warm).
    first = not started(WORKERS)
    result = plan(sc, top=top, workers=1 if first else WORKERS)
    if first:
        warm_up(WORKERS)
        prefetch(result, top, WORKERS)
    files = report_bytes(result)
    # What the details panel shows for any plan on screen (ranked or Pareto-only): metadata()
    # covers both frames.
    details = metadata(result)
    return {
        "plans": result.plans,
        "pareto": result.pareto,
        "infeasible": result.infeasible,
        "n_configurations": result.n_configurations,
        "n_plans": result.n_plans,
        "feasible": int(result.context.get("feasible", 0)),
        "seconds": result.seconds,
        "files": files,
        "details": {k: details[k] for k in ("prices", "hardware", "efficiency", "assumptions")},
        "scenario_yaml": sc.to_yaml(),
        "model_name": sc.model_spec().name,
        "job_kind": sc.job.kind,
        "top": top,
    }


@st.cache_data(show_spinner="Evaluating the replica at every batch ...", max_entries=64)
def serving_curve(scenario_yaml: str, plan: Mapping[str, Any]) -> pd.DataFrame:
    """``costmodel.batch_curve`` of one serving plan's replica (accelerator, system, layout,
    precision, KV bits) at the scenario's request shape, with the scenario's overrides; the
    plan's own batch is always among the points."""
    sc = Scenario.from_dict(yaml.safe_load(scenario_yaml), where="scenario")
    load = sc.job.load
    layout = ReplicaLayout(**{k: plan[k] for k in ReplicaLayout.model_fields if k in plan})
    fields = {k: plan[k] for k in ServingSetup.model_fields if k in plan and k != "batch"}
    setup = ServingSetup(**fields, input_len=load.input_len, output_len=load.output_len)
    args = dict(system=plan["system"], overrides=dict(sc.overrides),
                catalog=apply_overrides(engine_catalog(), sc))
    curve = costmodel.batch_curve(sc.model_spec(), plan["accelerator"], layout, setup, **args)
    if int(plan["batch_size"]) not in set(curve["batch"]):
        batches = sorted({*curve["batch"].astype(int), int(plan["batch_size"])})
        curve = costmodel.batch_curve(sc.model_spec(), plan["accelerator"], layout, setup,
                                      batches=batches, **args)
    return curve


def curve_inputs(row: pd.Series) -> dict[str, Any]:
    """What ``serving_curve`` needs of a serving plan row, as plain (hashable) values."""
    out: dict[str, Any] = {"accelerator": str(row["accelerator"]), "system": str(row["system"]),
                           "batch_size": int(row["batch_size"])}
    for k in ("tp", "pp", "ep", "kv_bits", "group_size"):
        if k in row and not pd.isna(row[k]):
            out[k] = int(row[k])
    for k in ("precision", "sparsity"):
        if k in row:
            out[k] = str(row[k])
    if "disaggregated" in row:
        out["disaggregated"] = bool(row["disaggregated"])
    return out


def plan_current(with_overrides: bool = True) -> tuple[Scenario, dict[str, Any]]:
    """Scenario and cached plan of the current inputs; shows a readable error and stops the page
    when the inputs cannot be planned."""
    try:
        sc = current_scenario(with_overrides)
    except INPUT_ERRORS as exc:
        st.error(f"Cannot build the scenario: {message(exc)}", icon=":material/error:")
        st.stop()
    try:
        view = run_plan(sc.to_yaml(), int(state("in_top")))
    except INPUT_ERRORS as exc:
        st.error(f"Cannot plan this scenario: {message(exc)}", icon=":material/error:")
        st.stop()
    return sc, view


def all_plans(view: Mapping[str, Any]) -> pd.DataFrame:
    """Ranked plans, then the Pareto plans that are not among them (rank empty)."""
    plans, pareto = view["plans"], view["pareto"]
    if pareto.empty:
        return plans
    extra = pareto if plans.empty else pareto[~pareto["plan_id"].isin(plans["plan_id"])]
    return pd.concat([plans, extra], ignore_index=True)


def plan_row(view: Mapping[str, Any], key: float) -> pd.Series | None:
    df = all_plans(view)
    if df.empty:
        return None
    hit = df[df["plan_id"] == key]
    return hit.iloc[0] if not hit.empty else None


# Display helpers (formatting only) ----------------------------------------------------------------
# Every page formats through these (and charts.usd_compact for the compact dollar form), so a
# figure reads the same everywhere: compact where space is short (metrics, chart labels), in full
# with thousands separators in tables, "—" where a value is unknown.

MISSING = "—"
GIB, TB, TERA = 2**30, 1e12, 1e12


def is_missing(x: Any) -> bool:
    """None, NaN, pandas NA or an empty string."""
    if x is None or (isinstance(x, str) and not x.strip()):
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def usd(x: Any) -> str:
    """Compact dollars for metrics and labels: $24.1M, $3.2k, $512, $5.12, $0.0123; "—" unknown."""
    return MISSING if is_missing(x) else charts.usd_compact(float(x))


def usd_full(x: Any) -> str:
    """Full dollars for tables and captions: $24,124,532 (no cents from $1,000), $512.40, $0.0123."""
    if is_missing(x):
        return MISSING
    x = float(x)
    if abs(x) >= 1000:
        return f"${x:,.0f}"
    return f"${x:,.2f}" if abs(x) >= 1 or x == 0 else f"${x:,.4g}"


def usd_rate(x: Any) -> str:
    """A small unit price (USD per device-hour, per 1M tokens): $2.49, $0.0123."""
    if is_missing(x):
        return MISSING
    x = float(x)
    return f"${x:,.2f}" if abs(x) >= 1 or x == 0 else f"${x:.3g}"


def count(x: Any) -> str:
    """A whole number with thousands separators: 12,345."""
    return MISSING if is_missing(x) else f"{int(round(float(x))):,}"


def number(x: Any, digits: int = 3) -> str:
    """A plain figure with separators and ``digits`` significant digits (4,125, 0.125)."""
    if is_missing(x):
        return MISSING
    x = float(x)
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    return f"{x:,.{digits}g}"


def duration(h: Any) -> str:
    """A duration given in hours: minutes under an hour, hours under three days, else days
    (``costmodel.faces.report.duration_text``, as the CLI prints it)."""
    if is_missing(h):
        return MISSING
    return duration_text(h)


def hours(h: Any) -> str:
    """Hours in full, with days beside them once the run is longer than a few days."""
    if is_missing(h):
        return MISSING
    h = float(h)
    return f"{h:,.1f} h" if h < 24 * HOURS_UNDER_DAYS else f"{h:,.0f} h ({h / 24:,.1f} days)"


def gib(x_bytes: Any) -> str:
    return MISSING if is_missing(x_bytes) else f"{float(x_bytes) / GIB:,.1f} GiB"


def tb_per_s(x: Any) -> str:
    return MISSING if is_missing(x) else f"{float(x) / TB:,.2f} TB/s"


def tflops(x: Any) -> str:
    return MISSING if is_missing(x) else f"{float(x) / TERA:,.1f} TFLOP/s"


def text(x: Any) -> str:
    return MISSING if is_missing(x) else str(x)


#: Knob units (Assumptions.as_records ``unit``) -> how a value in that unit reads.
UNIT_FORMATS: dict[str, Any] = {
    "bytes": gib, "bytes/s": tb_per_s, "flops/s": tflops, "fraction": lambda v: number(v, 4),
    "count": lambda v: count(v) if not is_missing(v) and float(v) == int(float(v)) else number(v),
    "s": lambda v: MISSING if is_missing(v) else f"{float(v):,.4g} s",
}


def in_unit(value: Any, unit: str | None) -> str:
    """``value`` in its unit, readable (bytes as GiB, bytes/s as TB/s, FLOP/s as TFLOP/s)."""
    fmt = UNIT_FORMATS.get(unit or "")
    if fmt is not None:
        return fmt(value)
    if is_missing(value):
        return MISSING
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{number(value, 4)} {unit}".strip() if unit else number(value, 4)
    return str(value)


_RANGE = re.compile(r"^\s*([\[(])\s*([^,]+?)\s*,\s*([^\])]+?)\s*([\])])(.*)$")


def _bound(v: str, unit: str | None) -> str:
    try:
        return in_unit(float(v), unit)
    except ValueError:
        return v  # "inf" and the like stay as written


def knob_range(record: Mapping[str, Any]) -> str:
    """A knob's allowed range in its unit: "[0, 64.0 GiB]", "(0, 2]", "[0, 10,000] integer"."""
    raw = str(record.get("range") or "")
    m = _RANGE.match(raw)
    unit = record.get("unit")
    if not m:
        if is_missing(record.get("min")) and is_missing(record.get("max")):
            return raw or MISSING
        return f"[{in_unit(record.get('min'), unit)}, {in_unit(record.get('max'), unit)}]"
    lo, hi = (_bound(v, unit) for v in (m.group(2), m.group(3)))
    return f"{m.group(1)}{lo}, {hi}{m.group(4)}{m.group(5)}"


def readable(df: pd.DataFrame, formats: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A read-only table with formatted cells: ``formats`` maps a column to its formatter; other
    numeric columns with gaps become text, and every missing value reads "—" (never "None")."""
    out = df.copy()
    formats = dict(formats or {})
    for col in out.columns:
        if col in formats:
            out[col] = [formats[col](v) for v in out[col]]
        elif out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = [text(v) if not isinstance(v, (dict, list)) else v for v in out[col]]
        elif out[col].isna().any():
            out[col] = [number(v, 4) if not isinstance(v, bool) else str(v) for v in out[col]]
    return out


def hardware_display(records: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Hardware records (``metadata()['hardware']``) in units: GiB, TB/s, TFLOP/s per precision."""
    rows = []
    for r in records:
        peaks = r.get("peak_flops_per_s") or {}
        rows.append({"accelerator": text(r.get("accelerator")), "memory": gib(r.get("memory_bytes")),
                     "memory bandwidth": tb_per_s(r.get("memory_bandwidth_bytes_per_s")),
                     **{f"peak {f}": tflops(v) for f, v in peaks.items()},
                     "TDP": MISSING if is_missing(r.get("tdp_w")) else f"{count(r['tdp_w'])} W",
                     "as of": text(r.get("as_of")), "source": text(r.get("source"))})
    return pd.DataFrame(rows)


def knob_display(records: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Knob records (``Assumptions.as_records``): value and allowed range in the knob's unit."""
    return pd.DataFrame([{"name": r["name"], "value": in_unit(r.get("value"), r.get("unit")),
                          "unit": text(r.get("unit")), "range": knob_range(r),
                          "description": text(r.get("description")), "source": text(r.get("source"))}
                         for r in records])


def price_caveats(row: Mapping[str, Any]) -> list[str]:
    """What a plan's price carries beyond the hourly rate: the spot range the catalog sampled and
    the provider's reclaim terms, or the minimum a committed price binds you to for its term.
    Empty for on-demand and capacity-block plans (and rows from before these columns existed)."""
    lines = []
    risk = row.get("preemption_risk")
    if isinstance(risk, str) and risk:
        low, high = row.get("usd_per_device_hour_low"), row.get("usd_per_device_hour_high")
        sampled = ("no range sampled" if is_missing(low) or is_missing(high) else
                   f"sampled range {usd_rate(low)}–{usd_rate(high)} per device-hour")
        lines.append(f"Spot price: ranked at the stored {usd_rate(row.get('usd_per_device_hour'))}, "
                     f"{sampled} ({text(row.get('price_sampling'))}). Preemption risk: {risk}.")
    term = row.get("commitment_term_hours")
    if not is_missing(term) and float(term) > 0:
        lines.append(f"Committed price: {float(term) / 8760:g}-year term; at least "
                     f"{usd_full(row.get('commitment_total_usd'))} is owed for the term "
                     f"({count(row.get('instances'))} instance(s) x {count(term)} h at the committed "
                     f"rate), whatever the run's length.")
    return lines


def price_display(records: list[Mapping[str, Any]]) -> pd.DataFrame:
    return readable(pd.DataFrame(records), {"usd_per_device_hour": usd_rate,
                                            "usd_per_device_hour_low": usd_rate,
                                            "usd_per_device_hour_high": usd_rate,
                                            "usd_per_instance_hour": usd_rate,
                                            "devices_per_instance": count})


def breakdown_display(row: Mapping[str, Any], kind: str) -> pd.DataFrame:
    """One plan's breakdown (``costmodel.search.result.plan_breakdown``, the Breakdown CSV's rows
    for it) with readable names, each value in its unit and its share of the quantity's total."""
    df = plan_breakdown(row, kind)
    fmt = {"GiB": lambda v: f"{v:,.2f} GiB", "s": lambda v: f"{v:,.4g} s", "USD": usd_full}
    return pd.DataFrame({
        "quantity": [charts.QUANTITY_LABELS.get(q, q) for q in df["quantity"]],
        "component": [charts.component_label(q, p) for q, p in zip(df["quantity"], df["component"])],
        "value": [fmt.get(u, lambda v: f"{v:,.4g}")(v) for v, u in zip(df["value"], df["unit"])],
        "share": [MISSING if is_missing(v) else f"{v:.1%}" for v in df["share"]],
    })


def usd_column(label: str, values: Any = None, **kw: Any) -> Any:
    """A NumberColumn of whole dollars with separators ($24,124,532); cents only when every value
    is under $1,000."""
    small = values is not None and len(values) and pd.Series(values).abs().max() < 1000
    return st.column_config.NumberColumn(label, format="$%,.2f" if small else "$%,.0f", **kw)


TABLE_COLUMNS = ("rank", "accelerator", "n_devices", "provider", "offer", "cost_total_usd",
                 "time_total_hours", "cost_per_million_tokens_usd", "memory_per_device_gib",
                 "memory_capacity_gib", "mfu", "efficiency_basis", "layout", "precision", "zero_stage",
                 "recompute", "micro_batch", "pricing_model", "region", "usd_per_device_hour", "pareto")


#: The ranked table of a serving job (``replica_layout`` is tp/pp/ep).
SERVE_TABLE_COLUMNS = ("rank", "accelerator", "n_devices", "replicas", "provider", "offer",
                       "cost_per_month_usd", "precision", "kv_bits", "sparsity", "quality_impact",
                       "quality_source", "usd_per_million_input_tokens",
                       "usd_per_million_output_tokens", "ttft_p95_s", "tpot_p95_s", "e2e_p95_s",
                       "output_tokens_per_s_per_replica", "api_usd_per_million_output_tokens",
                       "breakeven_requests_per_s", "cost_autoscaled_per_month_usd", "replica_layout",
                       "batch_size", "utilization", "memory_per_device_gib",
                       "memory_capacity_gib", "pricing_model", "region", "usd_per_device_hour", "pareto")


def _serving_table_config() -> dict[str, Any]:
    cc = st.column_config
    return {
        "replicas": cc.NumberColumn("Replicas", format="%,d", width="small"),
        "usd_per_million_input_tokens": cc.NumberColumn("USD per 1M input tokens", format="$%.4f"),
        "usd_per_million_output_tokens": cc.NumberColumn("USD per 1M output tokens", format="$%.4f"),
        "ttft_p95_s": cc.NumberColumn("p95 TTFT (s)", format="%.3f"),
        "tpot_p95_s": cc.NumberColumn("p95 TPOT (s)", format="%.4f"),
        "e2e_p95_s": cc.NumberColumn("p95 end-to-end (s)", format="%.2f"),
        "output_tokens_per_s_per_replica": cc.NumberColumn("Output tokens/s per replica", format="%,.0f"),
        "api_usd_per_million_output_tokens": cc.NumberColumn(
            "API USD per 1M output tokens", format="$%.4f",
            help="Cheapest published API price for this model (empty: none known)"),
        "breakeven_requests_per_s": cc.NumberColumn(
            "Break-even (requests/s)", format="%.3g",
            help="Mean load above which this plan costs less than the cheapest API (empty: never)"),
        "replica_layout": cc.TextColumn("Replica tp/pp/ep"),
        "kv_bits": cc.NumberColumn("KV bits", format="%d", width="small"),
        "batch_size": cc.NumberColumn("Batch", format="%d", width="small"),
        "utilization": cc.NumberColumn("Utilisation", format="percent"),
    }


def table_config(df: pd.DataFrame | None = None) -> dict[str, Any]:
    """Column config of the ranked table: dollars in full with separators (cents only when a
    column stays under $1,000), counts with separators; ``df`` (the table) picks the cents."""
    cc = st.column_config

    def dollars(col: str, label: str, **kw: Any) -> Any:
        return usd_column(label, df[col] if df is not None and col in df.columns else None, **kw)

    return {
        **_serving_table_config(),
        "cost_per_month_usd": dollars("cost_per_month_usd", "Cost per month (USD)"),
        "cost_autoscaled_per_month_usd": dollars(
            "cost_autoscaled_per_month_usd", "Cost per month, hourly scaling (USD)",
            help="With a 24-hour profile: the fleet follows the load hour by hour; else the fixed cost"),
        "rank": cc.NumberColumn("Rank", format="%d", width="small"),
        "accelerator": cc.TextColumn("Accelerator"),
        "provider": cc.TextColumn("Provider"),
        "offer": cc.TextColumn("Offer"),
        "pricing_model": cc.TextColumn("Pricing"),
        "region": cc.TextColumn("Region"),
        "n_devices": cc.NumberColumn("Devices", format="%,d"),
        "layout": cc.TextColumn("Layout tp/pp/vpp/dp/cp/ep"),
        "zero_stage": cc.NumberColumn("ZeRO", format="%d", width="small"),
        "recompute": cc.TextColumn("Recompute"),
        "micro_batch": cc.NumberColumn("Micro-batch", format="%d", width="small"),
        "precision": cc.TextColumn("Precision", width="small"),
        "time_total_hours": cc.NumberColumn("Time (hours)", format="%,.1f"),
        "cost_total_usd": dollars("cost_total_usd", "Cost (USD)", width="medium"),
        "cost_per_million_tokens_usd": cc.NumberColumn("USD per 1M tokens", format="$%.4f"),
        "usd_per_device_hour": cc.NumberColumn("USD per device-hour", format="$%.2f"),
        "memory_per_device_gib": cc.NumberColumn("Memory (GiB/device)", format="%.1f"),
        "memory_capacity_gib": cc.NumberColumn("Capacity (GiB)", format="%.0f"),
        "mfu": cc.NumberColumn("MFU", format="percent"),
        "efficiency_basis": cc.TextColumn(
            "GEMM efficiency basis", help="fitted on measured training runs of this part's die, or "
            "transferred from other parts (no measured run: expect a larger error; see README)"),
        "pareto": cc.CheckboxColumn("Pareto", help="On the cost-vs-time Pareto front"),
    }


def table_columns(serve: bool = False) -> tuple[str, ...]:
    return SERVE_TABLE_COLUMNS if serve else TABLE_COLUMNS


def plans_display(df: pd.DataFrame, pareto: pd.DataFrame, serve: bool = False) -> pd.DataFrame:
    """The ranked plans with the columns of the table (raw values; units go in the headers)."""
    columns = table_columns(serve)
    if df.empty:
        return pd.DataFrame(columns=[*columns, "plan_id"])
    out = df.copy()
    out["replica_layout" if serve else "layout"] = charts.layout_texts(df, serving=serve)
    out["pareto"] = df["plan_id"].isin(pareto["plan_id"]) if not pareto.empty else False
    return out[[*columns, "plan_id"]].reset_index(drop=True)


def overrides_count() -> int:
    o = st.session_state.get("overrides") or empty_overrides()
    return len(o["knobs"]) + len(o["efficiency"]) + len(o["prices"])


def knob_records(framework: str, overrides: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    return Assumptions(framework, dict(overrides or {})).as_records()


__all__ = [
    "DEFAULTS", "INPUT_ERRORS", "MODEL_SOURCES", "OBJECTIVES", "PERSIST", "SEARCH_CHOICES",
    "SEARCH_DIMENSIONS", "SEARCH_LABELS", "all_plans", "catalog", "current_model",
    "current_scenario", "frameworks", "init_state", "message", "model_picker", "plan_current",
    "plan_row", "plans_display", "run_plan", "serving_curve", "state", "table_config",
]
