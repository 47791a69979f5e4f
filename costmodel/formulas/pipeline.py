"""Pipeline partitioning: which stages can be the most loaded, what blocks and parameters a stage
holds, how many micro-batches it keeps in flight, the bubble, and "the slowest (or fullest) stage
sets the figure" selection. Every function broadcasts over numpy columns.

Sources:
- 1F1B and interleaved schedules: Narayanan et al. 2021 ('Efficient Large-Scale Language Model
  Training on GPU Clusters Using Megatron-LM'), Sec. 2.2: with p stages and v virtual stages per
  device the bubble is (p - 1)/v micro-batch times.
- In-flight micro-batches: the first 1F1B stage holds p; interleaving multiplies this by
  (1 + (p - 1)/(p v)) (Korthikanti et al. 2022, Sec. 4.2.3; Narayanan et al. 2021 Sec. 2.2.2).
- Uneven stages (``specs.layout.stage_split``): every stage runs the same schedule, so the stage
  with the most work per micro-batch sets the pace of all of them (the bubble is (p - 1)/v of *its*
  micro-batch time), and each stage's memory is its own blocks times its own in-flight count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from costmodel.formulas.params import frozen_linear_params
from costmodel.specs.columns import Array, ModelColumns, as_array
from costmodel.specs.layout import StageSplit, stage_split


@dataclass(frozen=True)
class Pipeline:
    """The stage split of every row with its stage count (``split`` from ``stage_split``)."""

    pp: Array
    split: StageSplit

    def blocks(self, stage: Array) -> Array:
        """Blocks stage ``stage`` holds (a middle stage: the most any middle stage holds)."""
        s = self.split
        return np.where(stage == 0, s.first, np.where(stage == self.pp - 1, s.last, s.middle))

    def start(self, stage: Array, n_layers: Array) -> Array:
        """Index of the first block of stage ``stage`` (stage 1 of a balanced split starts after
        the first stage; later middle stages are never candidates, see ``pipeline_stages``)."""
        s = self.split
        return np.where(stage == 0, 0.0, np.where(stage == self.pp - 1, n_layers - s.last,
                                                  s.first + (stage - 1) * s.middle))


def pipeline_of(m: ModelColumns, t) -> Pipeline:
    """The pipeline of training columns ``t`` over model ``m``."""
    return Pipeline(t.pp, stage_split(m.n_layers, t.pp, t.vpp, t.first_layers, t.last_layers))


def even_pipeline(m: ModelColumns, pp: Array) -> Pipeline:
    """Even stages (n_layers / pp blocks each): what callers without a split use."""
    per = m.n_layers / as_array(pp)
    return Pipeline(as_array(pp), StageSplit(per, per, per, np.ones_like(per, dtype=bool)))


def pipeline_stages(m: ModelColumns, pipe: Pipeline) -> list[Array]:
    """The pipeline stages that can be the most loaded: the first (embedding, most in-flight
    micro-batches) and the last (head, logits); the second as well when an MoE model starts with
    dense blocks (it may hold more expert blocks than the first) or when middle stages hold more
    blocks than the first (it is the fullest middle stage: the most blocks and, of the middle
    stages, the most in-flight micro-batches). Stage indices per row."""
    pp = pipe.pp
    last = pp - 1
    stages = [np.zeros_like(pp), last]
    if np.any((m.n_moe_layers > 0) & (m.n_dense_layers > 0)) or np.any(pipe.split.middle > pipe.split.first):
        stages.insert(1, np.minimum(1.0, last))
    return stages


def stage_parameters(m: ModelColumns, p, stage: Array, pipe: Pipeline, tp: Array, expert_shard: Array
                     ) -> tuple[Array, Array, Array, Array]:
    """Blocks and parameters one device of pipeline stage ``stage`` holds before ZeRO sharding.

    Returns (dense blocks, MoE blocks, non-expert parameters, expert parameters). Dense blocks
    come first in the model; the first stage also holds the embedding, the last the head (or,
    with pp > 1 and tied embeddings, Megatron's copy of the embedding), the final norm and the
    pooler. Matrices are split across tp; experts across ``expert_shard`` = etp x ep devices;
    norms and the pooler are replicated. ``p`` is ``params.layer_params(m)``.
    """
    pp = pipe.pp
    blocks = pipe.blocks(stage)
    dense_n = np.clip(m.n_dense_layers - pipe.start(stage, m.n_layers), 0.0, blocks)
    moe_n = blocks - dense_n
    is_first, is_last = stage == 0, stage == pp - 1
    dense_params = (
        dense_n * p.dense_block / tp
        + moe_n * (p.moe_nonexpert + m.n_shared_experts * p.expert) / tp
        + is_first * p.embedding / tp
        + is_last * (p.head + np.where(pp > 1, m.tied_embeddings * m.vocab_size * m.d_model, 0.0)) / tp
        + is_last * (p.final_norm + p.pooler)
    )
    expert_params = moe_n * m.n_experts * p.expert / expert_shard
    return dense_n, moe_n, dense_params, expert_params


def in_flight_microbatches(stage: Array, pp: Array, vpp: Array, n_micro: Array) -> Array:
    """Micro-batches whose activations pipeline stage ``stage`` holds at its peak.

    1F1B: stage k holds (p - k). Interleaved (Megatron schedule): stage k runs 2(p - k - 1) +
    (v - 1) p warm-up chunks plus one, each 1/v of a micro-batch; for k = 0 this is
    p (1 + (p - 1)/(p v)) (Korthikanti et al. 2022, Sec. 4.2.3). Never more than ``n_micro``.
    """
    k, p, v, n = (as_array(x) for x in (stage, pp, vpp, n_micro))
    one_f_one_b = p - k
    interleaved = (2 * (p - k - 1) + (v - 1) * p + 1) / v
    return np.minimum(np.where(v > 1, interleaved, one_f_one_b), n)


def bubble_microbatches(pp: Array, vpp: Array) -> Array:
    """Idle time of a pipeline step in micro-batch times: (p - 1)/v (Narayanan et al. 2021,
    Sec. 2.2.1 for 1F1B, Sec. 2.2.2 for the interleaved schedule with v chunks per device)."""
    return (pp - 1) / vpp


def pipeline_bubble(micro_batch_time: Array, pp: Array, vpp: Array) -> Array:
    """Bubble time of one step: (p - 1)/v times the time of one micro-batch on the slowest stage."""
    return bubble_microbatches(pp, vpp) * micro_batch_time


def select_stage(per_stage: Iterable[tuple[Array, Mapping[str, Array]]]) -> dict[str, Array]:
    """Row by row, the values of the stage with the largest ``key`` (the earliest stage on ties):
    the slowest stage sets the pace of a pipeline, the fullest its memory.

    ``per_stage`` yields (key, values) per candidate stage, e.g. from ``pipeline_stages``.
    """
    best: dict[str, Array] | None = None
    best_key = None
    for key, values in per_stage:
        if best is None:
            best, best_key = dict(values), key
        else:
            take = key > best_key
            best = {k: np.where(take, v, best[k]) for k, v in values.items()}
            best_key = np.where(take, key, best_key)
    assert best is not None, "no pipeline stage"
    return best


def stage_peft_parameters(m: ModelColumns, p, ap, stage: Array, pipe: Pipeline, tp: Array,
                          expert_shard: Array) -> tuple[Array, Array, Array]:
    """What one device of pipeline stage ``stage`` holds of a PEFT model before ZeRO sharding:
    (non-expert parameters in linear layers, non-expert adapters, expert adapters). Every routed
    expert parameter is in a linear layer (``stage_parameters``' expert count). Adapters are split
    like their layers (tp; experts ep x tp), an approximation: Megatron-style LoRA replicates one of
    A, B across tp, which the adapters' small size makes negligible. ``p``: ``params.layer_params``;
    ``ap``: ``params.adapter_params``."""
    blocks = pipe.blocks(stage)
    dense_n = np.clip(m.n_dense_layers - pipe.start(stage, m.n_layers), 0.0, blocks)
    moe_n = blocks - dense_n
    dense_linear, moe_linear = frozen_linear_params(m, p)
    linear = (dense_n * dense_linear + moe_n * moe_linear) / tp
    adapters = (dense_n * (ap.attention + ap.dense_mlp)
                + moe_n * (ap.attention + m.n_shared_experts * ap.expert)) / tp
    expert_adapters = moe_n * m.n_experts * ap.expert / expert_shard
    return linear, adapters, expert_adapters
