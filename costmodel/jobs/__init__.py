"""Jobs: one module per job kind (train, serve; distillation plugs in the same way).

A job kind turns a scenario into grid dimensions, evaluates configurations with the formulas,
prices them, and names its reasons, objectives, Pareto axes and report rows (``base.JobKind``).
May import: specs, formulas, tables, hardware_catalog. Never search or faces.
"""

from __future__ import annotations

from costmodel.jobs.base import JobKind
from costmodel.jobs.serve import ServingJob
from costmodel.jobs.train import TrainingJob

JOB_KINDS: tuple[type[JobKind], ...] = (TrainingJob, ServingJob)


def job_kind(kind: str) -> JobKind:
    """The job kind that plans ``Job.kind`` values such as 'pretrain' or 'finetune'."""
    for cls in JOB_KINDS:
        if kind in cls.kinds:
            return cls()
    known = sorted(k for cls in JOB_KINDS for k in cls.kinds)
    raise ValueError(f"no job kind plans {kind!r}; known: {', '.join(known)}")
