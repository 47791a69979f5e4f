"""Public API: estimate_training, evaluate_frame, per-collective communication, rank placement."""

import pandas as pd
import pytest

import costmodel
from costmodel import ParallelLayout, TrainingSetup, estimate_training, evaluate_frame


def test_top_level_api_exports():
    for name in ("plan", "Scenario", "Job", "estimate_training", "evaluate_frame", "preset",
                 "parameter_count", "training_memory", "training_flops", "ModelSpec"):
        assert hasattr(costmodel, name), name


def test_forward_backward_and_step_flops():
    f = costmodel.training_flops("gpt2", TrainingSetup(seq_len=1024, micro_batch=8), ParallelLayout(dp=2))
    fwd, bwd = float(f["forward_per_token"].total), float(f["backward_per_token"].total)
    assert bwd == pytest.approx(2 * fwd)
    assert float(f["model_per_token"].total) == pytest.approx(3 * fwd)
    assert float(f["model_per_step"].total) == pytest.approx(3 * fwd * 8 * 2 * 1024)


def test_communication_report_of_a_megatron_layout():
    """Llama-3.1-70B, tp=4 pp=4 dp=2 cp=2 on 8-GPU H100 nodes (Megatron order tp-cp-dp-pp):
    the TP group (stride 1) and the CP group (stride 4) stay in a node; pipeline neighbours are
    tp*cp*dp = 16 ranks apart, across nodes. TP all-reduce message = b*s/cp*h*2 bytes
    = 1*4096*8192*2 = 67,108,864 bytes, 4 per block per micro-batch, 20 blocks per stage,
    128/2 = 64 micro-batches: 5,120 calls per step."""
    e = estimate_training("llama-3.1-70b", "h100-sxm5-80gb",
                          ParallelLayout(tp=4, pp=4, vpp=5, dp=2, cp=2, sequence_parallel=True, zero_stage=1),
                          TrainingSetup(micro_batch=1, global_batch=128, seq_len=8192), train_tokens=1e12)
    comm = {c["collective"]: c for c in e.communication}
    assert comm["tp_allreduce"]["bytes_per_call"] == 4096 * 8192 * 2
    assert comm["tp_allreduce"]["calls_per_step"] == 64 * 20 * 4
    assert comm["tp_allreduce"]["fabric"] == "scale-up" and comm["tp_allreduce"]["group_size"] == 4
    assert comm["cp_kv_exchange"]["fabric"] == "scale-up"
    assert comm["pp_send_recv"]["fabric"] == "scale-out"
    assert comm["dp_grad_sync"]["group_size"] == 4  # dp x cp
    moved = estimate_training("llama-3.1-70b", "h100-sxm5-80gb",
                              ParallelLayout(tp=4, pp=4, vpp=5, dp=2, cp=2, sequence_parallel=True,
                                             zero_stage=1, rank_order="dp-tp-cp-pp"),
                              TrainingSetup(micro_batch=1, global_batch=128, seq_len=8192), train_tokens=1e12)
    moved_comm = {c["collective"]: c for c in moved.communication}
    assert moved_comm["cp_kv_exchange"]["fabric"] == "scale-out"  # cp now 8 ranks apart
    assert moved_comm["dp_grad_sync"]["fabric"] == "scale-up"
    assert moved.step_time_upper_s > e.step_time_upper_s


def test_bad_rank_order_names_the_field():
    with pytest.raises(ValueError, match="rank_order"):
        ParallelLayout(rank_order="tp-dp-pp")


def test_evaluate_frame_matches_estimate_training():
    configs = [
        (dict(model="llama-3.1-8b", accelerator="h100-sxm5-80gb"),
         ParallelLayout(dp=8, zero_stage=3),
         TrainingSetup(micro_batch=2, seq_len=8192, recompute="selective"), 3.0),
        (dict(model="llama-2-70b", accelerator="a100-sxm4-80gb"),
         ParallelLayout(tp=8, pp=4, dp=2, zero_stage=1, sequence_parallel=True),
         TrainingSetup(micro_batch=1, global_batch=64, seq_len=4096), 2.0),
    ]
    rows = []
    for base, layout, setup, price in configs:
        rows.append({**base, **layout.model_dump(exclude={"rank_order"}),
                     **setup.model_dump(include={"micro_batch", "global_batch", "seq_len", "recompute"}),
                     "train_tokens": 1e12, "usd_per_device_hour": price})
    res = evaluate_frame(pd.DataFrame(rows))
    for i, (base, layout, setup, price) in enumerate(configs):
        e = estimate_training(base["model"], base["accelerator"], layout, setup, train_tokens=1e12)
        assert res.loc[i, "step_time_s"] == pytest.approx(e.step_time_s, rel=1e-12)
        assert res.loc[i, "memory_per_device_gib"] * 2**30 == pytest.approx(e.memory_per_device_bytes, rel=1e-12)
        assert res.loc[i, "time_total_hours"] == pytest.approx(e.time_total_hours, rel=1e-12)
        assert res.loc[i, "cost_compute_usd"] == pytest.approx(e.device_hours * price, rel=1e-12)


def test_evaluate_frame_errors_name_row_and_field():
    with pytest.raises(ValueError, match="row 1: .*n_heads"):
        evaluate_frame(pd.DataFrame([dict(model="gpt2", accelerator="h100-sxm5-80gb"),
                                     dict(model="gpt2", accelerator="h100-sxm5-80gb", tp=5)]))
    with pytest.raises(ValueError, match="row 0: precision"):
        evaluate_frame(pd.DataFrame([dict(model="gpt2", accelerator="h100-sxm5-80gb", precision="fp7")]))
    with pytest.raises(ValueError, match="accelerator"):
        evaluate_frame(pd.DataFrame([dict(model="gpt2")]))


def test_plan_result_views_for_notebooks():
    from costmodel.scenario import SearchSpace

    sc = costmodel.Scenario(model="gpt2", job=costmodel.Job(train_tokens=1e10, seq_len=1024),
                            search=SearchSpace(accelerators=["a100-sxm4-80gb"], device_counts=[1, 8],
                                               tp=[1], pp=[1], vpp=[1], cp=[1], zero_stage=[1],
                                               recompute=["none"], micro_batch=[8],
                                               precision=["bf16"]))
    r = costmodel.plan(sc, top=3)
    assert list(r.report["rank"]) == [1, 2, 3]
    assert r.report.columns[:3].tolist() == ["rank", "accelerator", "kind"]
    assert set(r.breakdown["quantity"]) == {"memory_per_device", "step_time", "cost"}
    assert r.metadata["scenario"]["model"] == "gpt2"
