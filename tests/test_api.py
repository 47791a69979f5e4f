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
    """No global batch given: the default of every face for GPT-2's size (124M parameters, under
    1B): 0.5M tokens (GPT-3 Table 2.1) = 2^19 / 1,024 = 512 sequences of 1,024 tokens (a multiple
    of micro_batch x dp = 16)."""
    f = costmodel.training_flops("gpt2", TrainingSetup(seq_len=1024, micro_batch=8), ParallelLayout(dp=2))
    fwd, bwd = float(f["forward_per_token"].total), float(f["backward_per_token"].total)
    assert bwd == pytest.approx(2 * fwd)
    assert float(f["model_per_token"].total) == pytest.approx(3 * fwd)
    assert float(f["model_per_step"].total) == pytest.approx(3 * fwd * 512 * 1024)


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
    from costmodel.specs.scenario import SearchSpace

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


def test_api_fixes_from_the_ui():
    """Formulas accept preset names; config.json text and bytes import; efficiency overrides must
    name a quantity the engine reads and, for matmul/attention, a number format; the metadata of a
    plan covers Pareto-only plans; report_bytes equals the written files."""
    import json as _json

    from costmodel.specs.scenario import EfficiencyOverride
    from costmodel.specs.spec import ModelSpecError

    assert int(costmodel.parameter_count("gpt2").total) == 124_439_808
    text = _json.dumps({"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12,
                        "n_positions": 1024, "vocab_size": 50257})
    assert int(costmodel.parameter_count(costmodel.spec_from_hf_config(text)).total) == 124_439_808
    assert costmodel.spec_from_hf_config(text.encode(), name="x").name == "x"
    with pytest.raises(ModelSpecError, match=r"not valid JSON: .*line 1, column"):
        costmodel.spec_from_hf_config('{"model_type": "gpt2",')
    with pytest.raises(ValueError, match="not used by the engine"):
        EfficiencyOverride(accelerator="h100-sxm5-80gb", quantity="scaleup_allgather", value=0.5)
    with pytest.raises(ValueError, match="precision is required"):
        EfficiencyOverride(accelerator="h100-sxm5-80gb", quantity="matmul", value=0.5)
    with pytest.raises(ValueError, match="has no precision"):
        EfficiencyOverride(accelerator="h100-sxm5-80gb", quantity="memory_bandwidth",
                           precision="bf16", value=0.5)


def test_metadata_covers_pareto_plans_and_report_bytes_match(tmp_path):
    from costmodel.faces.report import metadata, report_bytes, write_reports
    from costmodel.specs.scenario import Constraints, SearchSpace

    sc = costmodel.Scenario(model="llama-3.1-70b", job=costmodel.Job(train_tokens=1e11),
                            search=SearchSpace(accelerators=["h100-sxm5-80gb", "h200-sxm-141gb"],
                                               device_counts=[64, 256, 1024], tp=[8], pp=[1, 4],
                                               vpp=[1], cp=[1], zero_stage=[1], recompute=["full"],
                                               micro_batch=[1], precision=["bf16", "fp8"]),
                            constraints=Constraints(pricing_models=["on-demand", "spot"]))
    r = costmodel.plan(sc, top=1)
    meta = metadata(r)
    offers_meta = {(p["provider"], p["offer"]) for p in meta["prices"]}
    for _, row in r.pareto.iterrows():
        assert (row["provider"], row["offer"]) in offers_meta
    used = {(e["accelerator"], e["quantity"], e["precision"]) for e in meta["efficiency"]}
    for _, row in r.pareto.iterrows():
        fmt = {"bf16": "bf16", "fp8": "fp8"}[row["precision"]]
        assert (row["accelerator"], "matmul", fmt) in used
    files = report_bytes(r)
    paths = write_reports(r, tmp_path / "p.csv")
    assert paths["plans"].read_bytes() == files["plans"]
    assert paths["breakdown"].read_bytes() == files["breakdown"]
    assert r.plans["plan_id"].dtype.kind == "i"
    if len(r.pareto) > 1:
        assert r.pareto["rank"].isna().any()  # Pareto-only plans carry no rank
