"""Run published measurements through the engine and report the error of each prediction.

Input: CSV files in the schema of ``MEASUREMENTS_SCHEMA.md`` (v1), optionally with four extension
columns (documented in ``data/validation/README.md``): ``framework`` (a profile of
``data/frameworks.yaml``), ``flop_convention`` (how the source counted model FLOPs),
``memory_measure`` (what the source's memory figure includes) and ``extra`` (``key=value`` pairs:
training-setup fields or assumption knobs stated in the row's notes).

Every evaluable training row goes through ``engine.evaluate_training`` in one vectorised pass with
exactly the row's configuration; blank configuration cells take the documented ``DEFAULTS`` and the
output lists which defaults each row used. Rows that cannot be evaluated carry the reason.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hardware_catalog.paths import data_dir

from costmodel.specs.columns import ModelColumns
from costmodel.specs.layout import ParallelLayout, layout_problems
from costmodel.formulas.memory import inference_memory_per_device, model_state_bytes
from costmodel.specs.spec import ModelSpec, ModelSpecError, make_spec
from costmodel.formulas.params import parameter_count
from costmodel.specs.setup import (PRECISION_TABLE, TrainingColumns, TrainingSetup, default_batch_note,
                                   default_global_batch, training_columns)

GIB = 2.0**30

SCHEMA_COLUMNS = (
    "id", "category", "model", "params_b", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff",
    "mlp", "vocab_size", "tied_embeddings", "n_experts", "experts_per_token", "n_shared_experts",
    "d_ff_expert", "n_dense_layers", "accelerator", "n_devices", "precision", "tp", "pp", "dp",
    "cp", "ep", "vpp", "sequence_parallel", "zero_stage", "recompute", "micro_batch",
    "global_batch", "seq_len", "optimizer", "train_tokens", "batch_size", "input_len",
    "output_len", "weight_bits", "kv_bits", "metric", "value", "tier", "source", "notes",
)
EXTENSION_COLUMNS = ("framework", "flop_convention", "memory_measure", "extra")
CATEGORIES = ("train_throughput", "train_memory", "train_total_cost", "infer_throughput",
              "infer_latency", "infer_memory")
METRICS = ("step_time_s", "tokens_per_s_per_device", "tokens_per_s_total",
           "model_tflops_per_device", "peak_memory_gib", "device_hours",
           "output_tokens_per_s_total", "ttft_s", "tpot_s", "fits")
SERVING_METRICS = ("output_tokens_per_s_total", "ttft_s", "tpot_s")
MEMORY_MEASURES = ("nvidia_smi", "allocator_reserved", "model_states", "weights")
FLOP_CONVENTIONS = ("model", "sc21_hfu")

#: What a blank configuration cell means. Reported per row in the ``defaults`` column.
DEFAULTS: dict[str, Any] = {
    "precision": "bf16",
    "tp": 1, "pp": 1, "cp": 1, "ep": 1, "vpp": 1,
    "dp": "n_devices / (tp * pp * cp)",
    "sequence_parallel": False,
    "zero_stage": 0,
    "recompute": "none",
    "micro_batch": 1,
    "global_batch": "by model size, a multiple of micro_batch * dp, >= 4 pp micro-batches "
                    "(specs.setup.default_global_batch)",
    "optimizer": "adamw",
    "n_kv_heads": "n_heads",
    "tied_embeddings": False,
    "framework": "nemo",
    "flop_convention": "model",
    "memory_measure": "nvidia_smi",
}



class MeasurementFileError(ValueError):
    """A malformed measurement file: names the file, line and column."""


@dataclass
class Row:
    """One parsed measurement with where it came from."""

    file: str
    line: int
    cells: dict[str, str]
    defaults: list[str] = field(default_factory=list)
    error: str | None = None  # a bad cell: reported as this row's status, the others still run

    def where(self, column: str) -> str:
        return f"{self.file}:{self.line}: column {column!r}"

    def text(self, column: str) -> str:
        return (self.cells.get(column) or "").strip()

    def number(self, column: str, kind: type = float, default: Any = None, note: bool = True):
        raw = self.text(column)
        if raw == "":
            if default is not None and note:
                self.defaults.append(f"{column}={default}")
            return default
        try:
            value = float(raw)
        except ValueError:
            raise MeasurementFileError(f"{self.where(column)}: {raw!r} is not a number") from None
        if kind is int:
            if not value.is_integer():
                raise MeasurementFileError(f"{self.where(column)}: {raw!r} is not an integer")
            return int(value)
        return value

    def flag(self, column: str, default: bool | None = None) -> bool | None:
        raw = self.text(column).lower()
        if raw == "":
            if default is not None:
                self.defaults.append(f"{column}={str(default).lower()}")
            return default
        if raw in ("true", "1", "yes"):
            return True
        if raw in ("false", "0", "no"):
            return False
        raise MeasurementFileError(f"{self.where(column)}: {raw!r} is not true/false")

    def choice(self, column: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
        raw = self.text(column)
        if raw == "":
            if default is not None:
                self.defaults.append(f"{column}={default}")
            return default
        if raw not in allowed:
            raise MeasurementFileError(
                f"{self.where(column)}: {raw!r} is not one of {', '.join(allowed)}")
        return raw


def default_measurement_files() -> list[Path]:
    return sorted((data_dir() / "validation").glob("*.csv"))


def read_measurements(paths: list[str | Path] | None = None) -> list[Row]:
    """Parse measurement CSVs; a missing required column or a bad cell is an error naming it."""
    rows: list[Row] = []
    seen: dict[str, str] = {}
    for path in paths or default_measurement_files():
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise MeasurementFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
        reader = csv.DictReader(text.splitlines())
        header = reader.fieldnames or []
        missing = [c for c in SCHEMA_COLUMNS if c not in header]
        if missing:
            raise MeasurementFileError(f"{path}: missing column(s) {', '.join(missing)}")
        unknown = [c for c in header if c not in SCHEMA_COLUMNS and c not in EXTENSION_COLUMNS]
        if unknown:
            raise MeasurementFileError(
                f"{path}: unknown column(s) {', '.join(unknown)}; allowed extension columns: "
                f"{', '.join(EXTENSION_COLUMNS)}")
        for line, cells in enumerate(reader, start=2):
            rows.append(_checked_row(Row(str(path), line, cells), seen, path))
    return rows


def _checked_row(row: Row, seen: dict[str, str], path: Path) -> Row:
    """A row with its identity and required cells checked; a problem becomes ``row.error`` (the
    row's reported status) instead of stopping the whole file."""
    rid = row.text("id")
    if not rid:
        row.cells["id"] = f"{path.name}:{row.line}"
        row.error = f"{row.where('id')}: empty id"
        return row
    if rid in seen:
        row.cells["id"] = f"{rid} ({path.name}:{row.line})"
        row.error = f"{row.where('id')}: duplicate id {rid!r} (first in {seen[rid]})"
        return row
    seen[rid] = f"{path}:{row.line}"
    try:
        row.choice("category", CATEGORIES)
        row.choice("metric", METRICS)
        row.number("value")
    except MeasurementFileError as exc:
        row.error = str(exc)
    return row


def _measured(row: Row) -> float:
    try:
        value = row.number("value")
    except MeasurementFileError:
        return math.nan
    return math.nan if value is None else value


# Row -> engine inputs -------------------------------------------------------------------------------

def _model_from_row(row: Row) -> ModelSpec:
    mlp = row.choice("mlp", ("gelu", "swiglu"))
    n_heads = row.number("n_heads", int, note=False)
    n_experts = row.number("n_experts", int, default=0, note=False) or 0
    fields_ = {
        "name": row.text("model") or row.text("id"),
        "n_layers": row.number("n_layers", int, note=False),
        "d_model": row.number("d_model", int, note=False),
        "n_heads": n_heads,
        "n_kv_heads": row.number("n_kv_heads", int, default=n_heads),
        "d_ff": row.number("d_ff", int, note=False),
        "vocab_size": row.number("vocab_size", int, note=False),
        "tied_embeddings": row.flag("tied_embeddings", default=False),
    }
    missing = [k for k, v in fields_.items() if v is None]
    if missing or mlp is None:
        raise ModelSpecError("architecture incomplete: " + ", ".join(missing + ([] if mlp else ["mlp"])))
    # Documented defaults for what the schema does not carry: GELU models are GPT-style (LayerNorm,
    # biases, learned positions), SwiGLU models Llama-style (RMSNorm, no biases, rotary).
    if mlp == "gelu":
        fields_.update(mlp_activation="gelu", norm="layernorm", qkv_bias=True, attn_out_bias=True,
                       mlp_bias=True, position_embedding="learned",
                       max_position_embeddings=row.number("seq_len", int, default=2048, note=False))
    else:
        fields_.update(mlp_activation="swiglu", norm="rmsnorm", position_embedding="rotary")
    fields_.update(_extra_model_fields(row))
    if n_experts:
        fields_.update(
            n_experts=n_experts,
            experts_per_token=row.number("experts_per_token", int, note=False),
            n_shared_experts=row.number("n_shared_experts", int, default=0, note=False) or 0,
            d_ff_expert=row.number("d_ff_expert", int, default=fields_["d_ff"], note=False),
            n_dense_layers=row.number("n_dense_layers", int, default=0, note=False) or 0,
        )
    return make_spec(fields_, where=f"{row.file}:{row.line}")


#: Layout fields the v1 schema has no column for, accepted in the ``extra`` cell (integers).
EXTRA_LAYOUT_FIELDS = ("etp", "first_stage_layers", "last_stage_layers")
#: Architecture fields the v1 schema has no column for, accepted in the ``extra`` cell: a head
#: size other than d_model / n_heads, and multi-head latent attention (DeepSeek-V2/V3).
EXTRA_MODEL_FIELDS = ("head_dim", "attention", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim",
                      "qk_nope_head_dim", "v_head_dim", "router_bias")


def _extra_model_fields(row: Row) -> dict[str, Any]:
    """The ``EXTRA_MODEL_FIELDS`` of the row's ``extra`` cell (validated by ``ModelSpec``)."""
    out: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in row.text("extra").split(";"))):
        key, _, value = (x.strip() for x in item.partition("="))
        if key in EXTRA_MODEL_FIELDS:
            low = value.lower()
            out[key] = {"true": True, "false": False}.get(low, int(value) if value.isdigit() else value)
    return out


def _extra(row: Row) -> tuple[dict[str, Any], dict[str, float]]:
    """Split the ``extra`` cell into training-setup fields (and the layout fields of
    ``EXTRA_LAYOUT_FIELDS``, as integers) and assumption-knob overrides."""
    setup, knobs = {}, {}
    setup_fields = set(TrainingSetup.model_fields)
    for item in filter(None, (p.strip() for p in row.text("extra").split(";"))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise MeasurementFileError(f"{row.where('extra')}: {item!r} is not key=value")
        if key in EXTRA_MODEL_FIELDS:
            continue  # read by _model_from_row
        if key in EXTRA_LAYOUT_FIELDS:
            try:
                setup[key] = int(value)
            except ValueError:
                raise MeasurementFileError(f"{row.where('extra')}: {key}={value!r} is not an integer") from None
        elif key in setup_fields:
            low = value.lower()
            setup[key] = {"true": True, "false": False}.get(low, value)
        else:
            try:
                knobs[key] = float(value)
            except ValueError:
                raise MeasurementFileError(f"{row.where('extra')}: {key}={value!r} is not a number") from None
    return setup, knobs


@dataclass
class Prepared:
    row: Row
    spec: ModelSpec
    layout: ParallelLayout
    setup: TrainingSetup
    framework: str
    knobs: dict[str, float]
    system: str


def _prepare_training(row: Row, catalog) -> Prepared:
    spec = _model_from_row(row)
    n = row.number("n_devices", int)
    if n is None:
        raise ValueError("n_devices not published: device count and parallel layout unknown")
    tp = row.number("tp", int, default=1)
    pp = row.number("pp", int, default=1)
    cp = row.number("cp", int, default=1)
    ep = row.number("ep", int, default=1)
    vpp = row.number("vpp", int, default=1)
    dp = row.number("dp", int, note=False)
    if dp is None:
        if n % (tp * pp * cp):
            raise ValueError(f"n_devices ({n}) is not a multiple of tp*pp*cp ({tp * pp * cp})")
        dp = n // (tp * pp * cp)
        row.defaults.append(f"dp={dp}")
    if tp * pp * cp * dp != n:
        raise ValueError(f"tp*pp*cp*dp = {tp * pp * cp * dp} differs from n_devices = {n}")
    extra_setup, knobs = _extra(row)
    split = {k: extra_setup.pop(k) for k in EXTRA_LAYOUT_FIELDS if k in extra_setup}
    if "etp" not in split and (dp * cp) % ep and (tp * dp * cp) % ep == 0:
        split["etp"] = _folded_etp(tp, dp, cp, ep)
        row.defaults.append(f"etp={split['etp']} (ep > dp*cp: expert TP folded, Megatron-core)")
    layout = ParallelLayout(
        tp=tp, pp=pp, vpp=vpp, dp=dp, cp=cp, ep=ep,
        sequence_parallel=row.flag("sequence_parallel", default=False),
        zero_stage=row.number("zero_stage", int, default=0), **split,
    )
    problems = layout_problems(spec, layout)
    if problems:
        raise ValueError("; ".join(problems))
    seq_len = row.number("seq_len", int)
    if seq_len is None:
        raise ValueError("seq_len missing")
    micro = row.number("micro_batch", int, default=1)
    gb = row.number("global_batch", int, note=False)
    if gb is None:  # the one blank-batch rule of every face (specs.setup.default_global_batch)
        size = float(parameter_count(spec).total)
        gb = default_global_batch(seq_len, multiple=micro * dp, n_params=size, pp=pp)
        row.defaults.append(default_batch_note(seq_len, multiple=micro * dp, n_params=size, pp=pp))
    setup = TrainingSetup(
        precision=row.choice("precision", tuple(PRECISION_TABLE), default="bf16"),
        optimizer=row.choice("optimizer", ("adam", "adamw", "sgd", "momentum", "adagrad", "lion",
                                           "adafactor"), default="adamw"),
        recompute=row.choice("recompute", ("none", "selective", "full"), default="none"),
        micro_batch=micro, seq_len=seq_len, global_batch=gb, **extra_setup,
    )
    framework = row_framework(row)
    acc = row.text("accelerator")
    if not acc:
        raise ValueError("accelerator missing")
    system = catalog.default_system(acc).id
    return Prepared(row, spec, layout, setup, framework, knobs, system)


def _folded_etp(tp: int, dp: int, cp: int, ep: int) -> int:
    """Expert TP of a run whose ep exceeds what dp x cp holds: the largest divisor of tp with
    etp x ep dividing tp x dp x cp (Megatron-core parallel folding lets the expert groups span
    tensor-parallel ranks; the published runs that do so state ep but rarely etp)."""
    return max(d for d in range(1, tp + 1) if tp % d == 0 and (tp * dp * cp) % (d * ep) == 0)


#: How a row without a ``framework`` cell gets one: the first keyword found in its ``source``
#: (then its ``notes``) names the stack that ran it; a TPU row without one ran on JAX (XLA is the
#: TPU training stack: MaxText, Paxml); anything else takes ``DEFAULTS['framework']``. Profiles
#: missing from data/frameworks.yaml are skipped.
FRAMEWORK_KEYWORDS = (
    ("torchtitan", "torchtitan"), ("maxtext", "jax"), ("paxml", "jax"), ("praxis", "jax"),
    ("t5x", "jax"), ("levanter", "jax"), ("jax", "jax"),
    ("pytorch fsdp", "fsdp"), ("fully sharded data parallel", "fsdp"),
    ("llm-foundry", "fsdp"), ("llm foundry", "fsdp"), ("composer", "fsdp"), ("mosaicml", "fsdp"),
    ("megatron-deepspeed", "megatron_deepspeed"), ("deepspeed", "deepspeed"),
    ("neuronx", "neuronx"), ("aws neuron", "neuronx"), ("optimum-habana", "gaudi"),
    ("nemo", "nemo"), ("dgxc-benchmarking", "nemo"), ("megatron", "megatron"),
    ("hugging face", "huggingface"), ("huggingface", "huggingface"), ("transformers", "huggingface"),
)


def row_framework(row: Row) -> str:
    """The row's framework profile: its ``framework`` cell, or the one ``FRAMEWORK_KEYWORDS``
    infers (listed among the row's defaults with the keyword that decided it)."""
    from costmodel.specs.assumptions import frameworks as framework_names

    names = tuple(framework_names())
    cell = row.text("framework")
    if cell and cell not in names:
        # A stack's own name (MaxText, Megatron-LM, llm-foundry, ...) is read as its profile.
        for keyword, name in FRAMEWORK_KEYWORDS:
            if name in names and keyword in cell.lower().replace("_", "-"):
                row.defaults.append(f"framework={name} (from framework: {cell!r})")
                return name
    if cell:
        return row.choice("framework", names)
    for column in ("source", "notes"):
        text = row.text(column).lower()
        for keyword, name in FRAMEWORK_KEYWORDS:
            if name in names and keyword in text:
                row.defaults.append(f"framework={name} (from {column}: {keyword!r})")
                return name
    if row.text("accelerator").startswith("tpu") and "jax" in names:
        row.defaults.append("framework=jax (TPU)")
        return "jax"
    return row.choice("framework", names, default=DEFAULTS["framework"])


#: Layout cells a whole-run row may publish without a device count: they fix that dimension of
#: the search (grid name, row column, kind).
_SEARCH_CELLS = (("tp", "tp", int), ("pp", "pp", int), ("cp", "cp", int), ("ep", "ep", int),
                 ("vpp", "vpp", int), ("zero_stage", "zero_stage", int), ("micro_batch", "micro_batch", int))


def _whole_run(row: Row, catalog) -> tuple[Prepared | None, float]:
    """A row whose device count or layout is unpublished, through the whole-run estimate
    (``search.choose``): the layout the planner would choose (the fastest at the row's device
    count, else the fewest device-hours within the default deadline), over the planner's search
    space narrowed to the layout cells the row does publish. ``device_hours`` rows are predicted
    here as n_devices x train_tokens / tokens per second (returns (None, device-hours)); other
    metrics return the chosen configuration for the vectorised pass. The chosen layout and the
    batch default are listed in the row's defaults."""
    from costmodel.search.choose import choose_training_layout
    from costmodel.specs.scenario import SearchSpace

    spec = _model_from_row(row)
    acc = row.text("accelerator")
    if not acc:
        raise ValueError("accelerator missing")
    seq_len = row.number("seq_len", int)
    if seq_len is None:
        raise ValueError("seq_len missing")
    tokens = row.number("train_tokens", note=False)
    if row.text("metric") == "device_hours" and not tokens:
        raise ValueError("train_tokens missing: a device-hours row needs the run's token count")
    fixed = {name: row.number(col, kind, note=False) for name, col, kind in _SEARCH_CELLS}
    search = SearchSpace(**{k: [v] for k, v in fixed.items() if v is not None})
    recompute = row.choice("recompute", ("none", "selective", "full"))
    if recompute is not None:
        search = search.model_copy(update={"recompute": [recompute]})
    extra_setup, knobs = _extra(row)
    layout_extra = sorted(k for k in EXTRA_LAYOUT_FIELDS if k in extra_setup)
    if layout_extra:
        raise ValueError(f"whole-run estimate: {', '.join(layout_extra)} in extra need a published "
                         "device count and layout (the layout search does not vary them)")
    setup = TrainingSetup(
        precision=row.choice("precision", tuple(PRECISION_TABLE), default="bf16"),
        optimizer=row.choice("optimizer", ("adam", "adamw", "sgd", "momentum", "adagrad", "lion",
                                           "adafactor"), default="adamw"),
        seq_len=seq_len, global_batch=row.number("global_batch", int, note=False), **extra_setup)
    framework = row_framework(row)
    choice = choose_training_layout(
        spec, acc, setup, train_tokens=tokens or 1e12, n_devices=row.number("n_devices", int, note=False),
        framework=framework, overrides=knobs, search=search, catalog=catalog)
    if choice.plan is None:
        raise ValueError(f"whole-run estimate: {choice.reason}")
    row.defaults.append(f"chosen layout: {choice.summary()}")
    if choice.batch_note:
        row.defaults.append(choice.batch_note)
    p = choice.plan
    if row.text("metric") == "device_hours":
        # The plan's device-hours: n x T / (n x tokens per second per device) over the run's
        # goodput (knob goodput_fraction: restarts, checkpoints), as every plan counts them.
        return None, float(p["device_hours"])
    layout = ParallelLayout(tp=p["tp"], pp=p["pp"], vpp=p["vpp"], dp=p["dp"], cp=p["cp"], ep=p["ep"],
                            sequence_parallel=bool(p["sequence_parallel"]), zero_stage=p["zero_stage"])
    setup = setup.model_copy(update={"micro_batch": p["micro_batch"], "recompute": p["recompute"],
                                     "global_batch": p["global_batch"]})
    return Prepared(row, spec, layout, setup, framework, knobs, catalog.default_system(acc).id), math.nan


def _sc21_flops(row: Row) -> float:
    """Narayanan et al. 2021 (SC21) eq. 3: 96 B s l h^2 (1 + s/6h + V/16lh), counting the
    recomputed forward pass of full activation recomputation."""
    B = row.number("global_batch", note=False)
    s, L, h, V = (row.number(c, note=False) for c in ("seq_len", "n_layers", "d_model", "vocab_size"))
    return 96 * B * s * L * h * h * (1 + s / (6 * h) + V / (16 * L * h))


# Running ------------------------------------------------------------------------------------------

RESULT_COLUMNS = ("id", "category", "metric", "measured", "predicted", "rel_error", "status",
                  "defaults", "model", "accelerator", "framework", "tier", "hardware_variant")


@dataclass
class ValidationBatch:
    """Parsed rows and the engine inputs of the evaluable training rows (for re-evaluation)."""

    results: dict[str, dict[str, Any]]
    train: list[Prepared]
    model: ModelColumns | None = None
    columns: TrainingColumns | None = None
    hardware: Any = None
    knobs: dict[str, np.ndarray] | None = None


def prepare_validation(paths: list[str | Path] | None = None, catalog=None) -> ValidationBatch:
    """Parse every row, evaluate the ones that need no engine, and stack the training rows."""
    from costmodel.tables.catalog import engine_catalog, hardware_table
    from costmodel.tables.knobs import knob_columns

    catalog = catalog or engine_catalog()
    table = hardware_table(catalog)
    rows = read_measurements(paths)
    results: dict[str, dict[str, Any]] = {}
    train: list[Prepared] = []
    for row in rows:
        rid, cat, metric = row.text("id"), row.text("category"), row.text("metric")
        base = {"id": rid, "category": cat, "metric": metric, "measured": _measured(row),
                "predicted": math.nan, "rel_error": math.nan, "status": "ok",
                "model": row.text("model"), "accelerator": row.text("accelerator"),
                "tier": row.text("tier"), "framework": row.text("framework"),
                "hardware_variant": "HARDWARE VARIANT" in row.text("notes")}
        results[rid] = base
        try:
            if row.error:
                raise MeasurementFileError(row.error)
            if metric in SERVING_METRICS or cat in ("infer_throughput", "infer_latency"):
                base["predicted"] = _serving_prediction(row, catalog, table)
                continue
            if cat == "train_total_cost" or (cat.startswith("train") and not row.text("n_devices")
                                             and not (metric == "peak_memory_gib" and row.text("dp"))):
                prepared, predicted = _whole_run(row, catalog)
                if prepared is None:
                    base["predicted"] = predicted
                else:
                    train.append(prepared)
                continue
            measure = row.choice("memory_measure", MEMORY_MEASURES,
                                 default=DEFAULTS["memory_measure"]) if metric == "peak_memory_gib" else None
            if measure == "model_states" and not row.text("n_layers"):
                base["predicted"] = _model_states_only(row)
            elif cat == "infer_memory":
                base["predicted"] = _inference_weights(row)
            else:
                train.append(_prepare_training(row, catalog))
        except (ValueError, ModelSpecError) as exc:  # MeasurementFileError (a bad cell) included
            base["status"] = str(exc)
        finally:
            base["defaults"] = ", ".join(row.defaults)
    batch = ValidationBatch(results, train)
    if train:
        batch.model = ModelColumns.from_specs([p.spec for p in train])
        batch.columns = TrainingColumns.stack([training_columns(p.layout, p.setup) for p in train])
        batch.hardware = table.columns([table.system_code(p.system) for p in train],
                                       batch.columns.matmul_format, batch.columns.attention_format)
        batch.knobs = knob_columns([p.framework for p in train], [p.knobs for p in train])
    return batch


def evaluate_validation(batch: ValidationBatch, hardware=None) -> pd.DataFrame:
    """Predictions for a prepared batch (``hardware`` replaces the batch's, e.g. during a fit)."""
    from costmodel.jobs.train import evaluate_training

    results = {k: dict(v) for k, v in batch.results.items()}
    if batch.train:
        out = evaluate_training(batch.model, batch.columns, hardware or batch.hardware, batch.knobs)
        for i, p in enumerate(batch.train):
            res = results[p.row.text("id")]
            res["defaults"] = ", ".join(p.row.defaults)
            try:
                res["predicted"] = _metric(p, i, out, batch.columns, batch.model)
            except ValueError as exc:
                res["status"] = str(exc)
    frame = pd.DataFrame(list(results.values()), columns=list(RESULT_COLUMNS))
    ok = frame["status"] == "ok"
    frame.loc[ok, "rel_error"] = (frame.loc[ok, "predicted"] - frame.loc[ok, "measured"]) / frame.loc[ok, "measured"]
    bad = ok & ~np.isfinite(frame["predicted"].astype(float))
    frame.loc[bad, "status"] = "no prediction: missing hardware or efficiency data"
    return frame


def validate(paths: list[str | Path] | None = None, catalog=None) -> pd.DataFrame:
    """One result row per measurement: measured, predicted, relative error and status."""
    return evaluate_validation(prepare_validation(paths, catalog))


def _metric(p: Prepared, i: int, out: dict[str, np.ndarray], t: TrainingColumns, m: ModelColumns) -> float:
    row = p.row
    metric = row.text("metric")
    step = float(out["step_time_s"][i])
    n = p.layout.n_devices
    tokens = float(out["tokens_per_step"][i])
    if metric == "step_time_s":
        return step
    if metric == "tokens_per_s_per_device":
        return tokens / step / n
    if metric == "tokens_per_s_total":
        return tokens / step
    if metric == "model_tflops_per_device":
        conv = row.choice("flop_convention", FLOP_CONVENTIONS, default=DEFAULTS["flop_convention"])
        flops = _sc21_flops(row) if conv == "sc21_hfu" else float(out["model_flops_per_step"][i])
        return flops / step / n / 1e12
    if metric == "peak_memory_gib":
        measure = row.choice("memory_measure", MEMORY_MEASURES, default=DEFAULTS["memory_measure"])
        parts = {k[len("memory_"):-len("_bytes")]: float(v[i]) for k, v in out.items()
                 if k.startswith("memory_") and k.endswith("_bytes") and k not in
                 ("memory_total_bytes", "memory_capacity_bytes")}
        if measure == "model_states":
            total = sum(parts[k] for k in ("weights", "gradients", "master_weights", "optimizer_states"))
        elif measure == "weights":
            total = parts["weights"]
        elif measure == "allocator_reserved":
            total = sum(v for k, v in parts.items() if k != "framework")
        else:
            total = sum(parts.values())
        return total / GIB
    if metric == "fits":
        return float(bool(out["memory_fits"][i]))
    raise ValueError(f"metric {metric!r} is not a training metric")


def _model_states_only(row: Row) -> float:
    """Rows that give only a parameter count (the ZeRO paper's analytic example)."""
    psi = row.number("params_b") * 1e9
    n = row.number("n_devices", int)
    dp = row.number("dp", int, default=n)
    precision = row.choice("precision", tuple(PRECISION_TABLE), default="bf16")
    optimizer = row.choice("optimizer", ("adam", "adamw", "sgd", "momentum", "adagrad", "lion",
                                         "adafactor"), default="adamw")
    setup = TrainingSetup(precision=precision, optimizer=optimizer)
    t = training_columns(ParallelLayout(dp=dp, zero_stage=row.number("zero_stage", int, default=0)), setup)
    states = model_state_bytes(psi, zero_stage=t.zero_stage, shard_degree=dp,
                               weight_bytes=t.weight_bytes, grad_bytes=t.grad_bytes,
                               master_bytes=t.master_bytes, optimizer_state_bytes=t.optimizer_state_bytes)
    return float(states.total) / GIB


def _inference_weights(row: Row) -> float:
    spec = _model_from_row(row)
    bits = row.number("weight_bits", note=False)
    if bits is None:
        precision = row.choice("precision", tuple(PRECISION_TABLE), default="bf16")
        bits = PRECISION_TABLE[precision][0] * 8
        row.defaults.append(f"weight_bits={bits:g} (from precision)")
    mem = inference_memory_per_device(ModelColumns.from_spec(spec), batch=1, context_len=1,
                                      weight_bits=bits)
    return float(mem["weights"]) / GIB


def _error_summary(grp: pd.DataFrame) -> dict[str, Any]:
    g = grp[grp["status"] == "ok"]
    ape = g["rel_error"].astype(float).abs() * 100
    worst = ape.idxmax() if len(g) else None
    out = {"rows": len(grp), "evaluated": len(g),
           "median_ape_pct": float(ape.median()) if len(g) else math.nan,
           "mean_ape_pct": float(ape.mean()) if len(g) else math.nan,
           "worst_id": g.loc[worst, "id"] if worst is not None else "",
           "worst_ape_pct": float(ape[worst]) if worst is not None else math.nan}
    if "cv_rel_error" in grp:
        out["cv_median_ape_pct"] = float((g["cv_rel_error"].astype(float).abs() * 100).median()) if len(g) else math.nan
    return out


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per category: rows evaluated, median and mean absolute percentage error, worst row (and the
    cross-validated median when ``results`` has ``cv_rel_error``)."""
    return summarize_by(results, ("category",))


def summarize_by(results: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """``summarize`` per group of ``keys`` (e.g. category, framework, accelerator)."""
    frame = results.copy()
    for k in keys:
        frame[k] = frame[k].fillna("").astype(str)
    out = [{**dict(zip(keys, key if isinstance(key, tuple) else (key,))), **_error_summary(grp)}
           for key, grp in frame.groupby(list(keys), sort=False)]
    return pd.DataFrame(out)


# Serving rows -------------------------------------------------------------------------------------

def _serving_prediction(row: Row, catalog, table) -> float:
    """A static-batch serving benchmark row (TensorRT-LLM style: prefill a batch of prompts, then
    decode): output tokens/s of the replica, or time to first token, through the serving job's
    evaluation (layout, formats, memory) and ``formulas.serving.static_batch``. A blank batch takes
    the largest batch that fits (throughput rises with the batch until memory binds)."""
    from costmodel.formulas.serving import static_batch
    from costmodel.jobs.serve import evaluate_serving, serving_knobs
    from costmodel.specs.serving import SCHEME_CODES
    from costmodel.tables.knobs import knob_columns

    spec = _model_from_row(row)
    acc = row.text("accelerator")
    if not acc:
        raise ValueError("accelerator missing")
    tp = row.number("tp", int, default=1)
    pp = row.number("pp", int, default=1)
    precision = row.choice("precision", ("fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4"),
                           default="bf16")
    scheme = _serving_scheme(row, precision)
    kv_bits = row.number("kv_bits", default=8 if precision == "fp8" else 16)
    coded = {"tp": tp, "pp": pp, "ep": 1, "input_len": row.number("input_len", int),
             "output_len": row.number("output_len", int), "precision": SCHEME_CODES[scheme],
             "kv_bits": kv_bits}
    if coded["input_len"] is None or coded["output_len"] is None:
        raise ValueError("input_len and output_len are needed for a serving row")
    _, knob_values = _extra(row)
    knobs = knob_columns(row_framework(row), knob_values)
    m = ModelColumns.from_spec(spec)
    system = table.system_code(catalog.default_system(acc).id)
    batch = row.number("batch_size", int, note=False)
    if batch is None:
        probe = evaluate_serving(m, {**coded, "batch": 1}, system, table, knobs)
        batch = max(1, int(probe.out["max_batch"][0])) if probe.live.size else 1
        row.defaults.append(f"batch_size={batch} (largest that fits)")
    ev = evaluate_serving(m, {**coded, "batch": batch}, system, table, knobs)
    if ev.live.size == 0:
        from costmodel.jobs.serve import REASONS

        raise ValueError(REASONS[int(ev.reason[0])])
    r = static_batch(ev.model, ev.s, ev.hw, serving_knobs(knobs))
    key = {"ttft_s": "ttft_s", "tpot_s": "tpot_s"}.get(row.text("metric"), "output_tokens_per_s")
    return float(np.asarray(r[key]).reshape(-1)[0])


def _serving_scheme(row: Row, precision: str) -> str:
    """The quantization scheme of a serving row: the compute precision, or a weight-only scheme
    where ``weight_bits`` is below it (fp16/bf16 with 8: w8a16, with 4: w4a16). ``fp4`` compute is
    NVFP4 (E2M1 with an E4M3 scale per 16, the Blackwell format TensorRT-LLM's FP4 checkpoints
    use). Schemes the engine does not model are refused by name rather than mapped to a
    neighbour: 4-bit weights with 8-bit activations (W4A8: QServe, TensorRT-LLM int4-fp8 AWQ) and
    4-bit integer activations (W4A4)."""
    weight_bits = row.number("weight_bits", note=False)
    if precision == "int4":
        raise ValueError("W4A4 (int4 weights and activations) is not modelled")
    if precision == "fp4":
        if weight_bits not in (None, 4):
            raise ValueError(f"weight_bits {weight_bits:g} with precision fp4: no such scheme")
        return "nvfp4"
    full = {"fp8": 8, "int8": 8, "fp32": 32}.get(precision, 16)
    if weight_bits is None or weight_bits == full:
        return precision
    if precision in ("fp16", "bf16") and weight_bits in (8, 4):
        return "w8a16" if weight_bits == 8 else "w4a16"
    if precision in ("int8", "fp8") and weight_bits == 4:
        raise ValueError(f"W4A8 (4-bit weights, {precision} activations) is not modelled")
    raise ValueError(f"weight_bits {weight_bits:g} with precision {precision}: no such scheme "
                     "(w8a16, w4a16 or the precision's own bits)")
