"""What users rely on survives the engine rebuild: scenario files saved by the previous release
load unchanged and plan to the same answer."""

from pathlib import Path

import pytest

from costmodel import Scenario, plan

FIXTURE = Path(__file__).parent / "fixtures" / "scenario_schema_v1.yaml"


def test_scenario_saved_by_the_previous_schema_loads_and_plans_the_same():
    """tests/fixtures/scenario_schema_v1.yaml was written by ``Scenario.save`` of commit 8a864cc
    (before job kinds and format columns). Its top plans, as that release ranked them
    (`costmodel plan tests/fixtures/scenario_schema_v1.yaml --top 5` there), are reproduced."""
    sc = Scenario.load(FIXTURE)
    assert sc.job.kind == "finetune" and sc.job.optimizer_state_bits == 32  # new field, default
    # The old release had no goodput term (run time = steps x step time): set it to 1 to compare.
    sc = sc.model_copy(update={"overrides": {**sc.overrides, "goodput_fraction": 1.0}})
    r = plan(sc, top=5)
    expected = [  # (n_devices, dp, zero_stage, micro_batch, hours, usd, GiB) from the old release
        (32, 32, 3, 2, 4.142289, 186.503939, 30.110426),
        (32, 16, 3, 4, 4.142289, 186.503939, 30.110426),
        (32, 32, 1, 2, 4.142289, 186.503939, 57.810899),
        (32, 16, 1, 4, 4.142289, 186.503939, 57.810899),
        (32, 32, 3, 2, 4.142289, 292.125024, 30.110426),
    ]
    got = r.plans
    for i, (n, dp, z, mb, hours, usd, gib) in enumerate(expected):
        row = got.iloc[i]
        assert (row["n_devices"], row["dp"], row["zero_stage"], row["micro_batch"]) == (n, dp, z, mb)
        # Time and cost moved by 0.1% when GEMMs gained their size term (Calculon's curve,
        # gemm_half_efficiency_gflops) and the calibration was refitted; memory did not move.
        assert row["time_total_hours"] == pytest.approx(hours, rel=5e-3)
        assert row["cost_total_usd"] == pytest.approx(usd, rel=5e-3)
        assert row["memory_per_device_gib"] == pytest.approx(gib, rel=1e-6)
    # The same 6,048 configurations; plan rows are configurations x offers, and the December 2026
    # catalog audit added one offer the scenario searches (CoreWeave's H100 spot price: 16 offers
    # instead of 15), so the plan-row counts grew by 16/15 (the old release counted 12,960 plans,
    # 9,591 feasible; layout 3,240, batch 90, memory 39). The 2026-12 offers update added one more
    # (DigitalOcean's first-party MI300X price): 17 offers, counts x 17/16 again; out-of-memory
    # plans stay 42 (they are priced once per row).
    assert (r.n_configurations, r.n_plans, r.context["feasible"]) == (6048, 14688, 10872)
    assert dict(zip(r.infeasible["reason"], r.infeasible["plans"])) == {
        "layout does not divide the model": 3672, "batch does not divide": 102, "out of memory": 42}
