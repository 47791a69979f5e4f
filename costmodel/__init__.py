"""costmodel: analytical cost, time and memory estimates for training and serving transformers.

The same formulas evaluate one configuration or a grid of millions; see README.md.
"""

from .api import (
    TrainingEstimate,
    estimate_training,
    evaluate_frame,
    inference_memory,
    training_flops,
    training_memory,
)
from .assumptions import Assumptions, frameworks
from .columns import Breakdown, ModelColumns
from .flops import forward_flops_per_token, megatron_flops_per_iteration, training_flops_per_token
from .layout import ParallelLayout, layout_problems
from .memory import (
    activation_terms,
    inference_memory_per_device,
    kv_cache_bytes_per_token,
    layer_activation_bytes,
    model_state_bytes,
    training_memory_per_device,
)
from .params import active_parameter_count, layer_params, parameter_count
from .spec import ModelSpec, ModelSpecError, preset, presets, resolve_model, spec_from_hf_config
from .workload import TrainingColumns, TrainingSetup, training_columns
from .scenario import Constraints, Job, Scenario, ScenarioError, SearchSpace  # noqa: E402
from .planner import PlanResult, plan  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Constraints", "Job", "PlanResult", "Scenario", "ScenarioError", "SearchSpace",
    "TrainingEstimate", "estimate_training", "evaluate_frame", "plan",
    "Assumptions", "Breakdown", "ModelColumns", "ModelSpec", "ModelSpecError", "ParallelLayout",
    "TrainingColumns", "TrainingSetup", "activation_terms", "active_parameter_count",
    "forward_flops_per_token", "frameworks", "inference_memory", "inference_memory_per_device",
    "kv_cache_bytes_per_token", "layer_activation_bytes", "layer_params", "layout_problems",
    "megatron_flops_per_iteration", "model_state_bytes", "parameter_count", "preset", "presets",
    "resolve_model", "spec_from_hf_config", "training_columns", "training_flops",
    "training_flops_per_token", "training_memory", "training_memory_per_device", "__version__",
]
