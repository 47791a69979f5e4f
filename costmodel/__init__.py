"""costmodel: analytical cost, time and memory estimates for training and serving transformers.

The same formulas evaluate one configuration or a grid of millions; see README.md.
"""

from costmodel.faces.api import (
    TrainingEstimate,
    estimate_training,
    evaluate_frame,
    inference_memory,
    training_flops,
    training_memory,
)
from costmodel.specs.assumptions import Assumptions, frameworks
from costmodel.specs.columns import Breakdown, ModelColumns
from costmodel.formulas.flops import forward_flops_per_token, megatron_flops_per_iteration, training_flops_per_token
from costmodel.specs.layout import ParallelLayout, layout_problems
from costmodel.formulas.memory import (
    activation_terms,
    inference_memory_per_device,
    kv_cache_bytes_per_token,
    layer_activation_bytes,
    model_state_bytes,
    training_memory_per_device,
)
from costmodel.formulas.params import active_parameter_count, layer_params, parameter_count
from costmodel.specs.spec import ModelSpec, ModelSpecError, preset, presets, resolve_model, spec_from_hf_config
from costmodel.specs.setup import TrainingColumns, TrainingSetup, build_training_columns, training_columns
from costmodel.specs import __version__
from costmodel.tables.catalog import engine_catalog  # noqa: E402
from costmodel.specs.scenario import Constraints, Job, Scenario, ScenarioError, SearchSpace  # noqa: E402
from costmodel.search.grid import PlanResult, plan  # noqa: E402
from costmodel.faces.serving_api import ServingEstimate, batch_curve, estimate_serving  # noqa: E402
from costmodel.specs.serving import ReplicaLayout, ServingLoad, ServingSetup  # noqa: E402


__all__ = [
    "Constraints", "Job", "PlanResult", "engine_catalog", "ReplicaLayout", "ServingEstimate", "ServingLoad",
    "ServingSetup", "batch_curve", "estimate_serving", "Scenario", "ScenarioError", "SearchSpace",
    "TrainingEstimate", "estimate_training", "evaluate_frame", "plan",
    "Assumptions", "Breakdown", "ModelColumns", "ModelSpec", "ModelSpecError", "ParallelLayout",
    "TrainingColumns", "TrainingSetup", "build_training_columns", "activation_terms", "active_parameter_count",
    "forward_flops_per_token", "frameworks", "inference_memory", "inference_memory_per_device",
    "kv_cache_bytes_per_token", "layer_activation_bytes", "layer_params", "layout_problems",
    "megatron_flops_per_iteration", "model_state_bytes", "parameter_count", "preset", "presets",
    "resolve_model", "spec_from_hf_config", "training_columns", "training_flops",
    "training_flops_per_token", "training_memory", "training_memory_per_device", "__version__",
]
