"""Serving: the decode step by hand, KV-cache sizes, continuous batching, capacity plans, faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

import costmodel
from costmodel.faces.cli import main as cli_main
from costmodel.faces.serving_api import estimate_serving
from costmodel.formulas.hardware import hardware_from_values
from costmodel.formulas.memory import kv_cache_bytes_per_token
from costmodel.formulas.serving import ServingKnobs, iteration_time, steady_state
from costmodel.specs.codes import PRECISION_CODES
from costmodel.specs.columns import ModelColumns
from costmodel.specs.scenario import Constraints, Job, Scenario, SearchSpace
from costmodel.specs.serving import ReplicaLayout, ServingLoad, ServingSetup, build_serving_columns


def _round_a100():
    """An A100-like part with round figures: 2.0e12 B/s achieved, 312 TFLOP/s achieved, no
    kernel overheads, an NVLink-like fabric (unused at tp = 1)."""
    return hardware_from_values(
        peak_matmul_flops_per_s=312e12, peak_attention_flops_per_s=312e12, matmul_efficiency=1.0,
        attention_efficiency=1.0, memory_bandwidth_bytes_per_s=2.0e12, memory_bandwidth_efficiency=1.0,
        memory_bytes=80 * 2**30, tdp_w=400.0, devices_per_node=8.0,
        scaleup_allreduce_bytes_per_s=240e9, scaleup_alltoall_bytes_per_s=200e9, scaleup_latency_s=5e-6,
        scaleup_domain=8.0, scaleout_allreduce_bytes_per_s=25e9, scaleout_alltoall_bytes_per_s=25e9,
        scaleout_latency_s=20e-6)


def _columns(batch, input_len=1, output_len=1, precision="fp16", tp=1, kv_bits=16):
    return build_serving_columns({"tp": tp, "pp": 1, "ep": 1, "batch": batch, "input_len": input_len,
                                  "output_len": output_len, "precision": PRECISION_CODES[precision],
                                  "kv_bits": kv_bits})


def test_llama2_7b_decode_step_at_batch_1_is_its_weights_over_bandwidth():
    """Llama-2-7B, one A100 (2.0 TB/s achieved), batch 1, 16-bit weights, context 1.

    Linear weights read per step: per layer 4 x 4096^2 (Q, K, V, O) + 3 x 4096 x 11008 (gate,
    up, down) = 67,108,864 + 135,266,304 = 202,375,168; x 32 layers = 6,476,005,376; plus the
    LM head 32,000 x 4,096 = 131,072,000 -> 6,607,077,376 parameters x 2 bytes = 13.214 GB.
    13.214e9 B / 2.0e12 B/s = 6.607 ms. Activations, norms and a 1-token KV cache add < 0.1%."""
    m = ModelColumns.from_spec(costmodel.preset("llama-2-7b"))
    k = ServingKnobs(gemm_kernel_overhead_s=0.0)
    it = iteration_time(m, _columns(1.0), _round_a100(), k, sequences=1.0, context=1.0)
    assert float(it["total"]) == pytest.approx(6_607_077_376 * 2 / 2.0e12, rel=1e-3)
    assert float(it["gemms_memory_bound_share"]) == 1.0  # every GEMM reads more than it computes


@pytest.mark.parametrize("name,expected", [
    # 2 (K and V) x layers x KV heads x head dim x 2 bytes
    ("llama-2-7b", 2 * 32 * 32 * 128 * 2),  # MHA: 524,288 B/token
    ("llama-3.1-8b", 2 * 32 * 8 * 128 * 2),  # GQA (8 KV heads): 131,072
    ("mixtral-8x7b", 2 * 32 * 8 * 128 * 2),  # GQA: 131,072
    ("deepseek-v3", 61 * (512 + 64) * 2),  # MLA: latent 512 + rotary key 64 per layer: 70,272
])
def test_kv_cache_bytes_per_token(name, expected):
    assert float(kv_cache_bytes_per_token(costmodel.preset(name), 16)) == expected
    assert float(kv_cache_bytes_per_token(costmodel.preset(name), 8)) == expected / 2


def test_throughput_rises_with_batch_until_memory_binds():
    est1 = estimate_serving("llama-3.1-8b", "h100-sxm5-80gb",
                            setup=ServingSetup(batch=1, input_len=512, output_len=256))
    batches = [1, 4, 16, 64, 128]
    tput = [estimate_serving("llama-3.1-8b", "h100-sxm5-80gb",
                             setup=ServingSetup(batch=b, input_len=512, output_len=256)
                             ).output_tokens_per_s_per_replica for b in batches]
    assert all(a < b for a, b in zip(tput, tput[1:])), tput
    assert est1.max_batch > 128
    too_big = estimate_serving("llama-3.1-8b", "h100-sxm5-80gb",
                               setup=ServingSetup(batch=est1.max_batch + 1, input_len=512, output_len=256))
    assert not too_big.fits_in_memory and est1.fits_in_memory


def test_littles_law_in_the_steady_state():
    """Concurrency = arrival rate x time in system: a replica with B busy slots completes
    B / service_time requests per second."""
    m = ModelColumns.from_spec(costmodel.preset("llama-3.1-8b"))
    s = _columns(np.array([8.0, 64.0]), 1000, 200)
    out = steady_state(m, s, _round_a100(), ServingKnobs())
    np.testing.assert_allclose(out["requests_per_s_per_replica"] * out["service_time_s"], [8.0, 64.0])
    np.testing.assert_allclose(out["output_tokens_per_s_per_replica"] * out["tpot_s"], [8.0, 64.0])


def test_moe_decode_reads_only_the_experts_it_touches():
    """Mixtral (8 experts, top-2) at batch 1 reads 2 experts per layer, at batch 64 nearly all 8:
    E (1 - (1 - k/E)^B) = 8 (1 - 0.75^64) = 7.99999."""
    from costmodel.formulas.blocks import expected_experts_touched

    m = ModelColumns.from_spec(costmodel.preset("mixtral-8x7b"))
    assert float(expected_experts_touched(m, 1)) == pytest.approx(2.0)
    assert float(expected_experts_touched(m, 64)) == pytest.approx(8 * (1 - 0.75**64))
    k = ServingKnobs(gemm_kernel_overhead_s=0.0)
    one = iteration_time(m, _columns(1.0), _round_a100(), k, sequences=1.0, context=1.0)["total"]
    many = iteration_time(m, _columns(64.0), _round_a100(), k, sequences=64.0, context=1.0)["total"]
    assert 2.5 < float(many / one) < 4.0  # ~13B active read at batch 1 vs ~47B at batch 64


SMALL = dict(accelerators=["h100-sxm5-80gb"], tp=[1, 2], pp=[1], ep=[1], batch=[8, 32, 128],
             quantization=["bf16", "fp8"], kv_bits=[16], disaggregated=[False])


def _serving_scenario(**load):
    base = dict(requests_per_s=5.0, input_len=1000, output_len=250, ttft_p95_s=2.0, tpot_p95_s=0.1)
    base.update(load)
    return Scenario(model="llama-3.1-8b", job=Job(kind="serve", load=ServingLoad(**base)),
                    search=SearchSpace(**SMALL))


def test_best_serving_plan_equals_brute_force_through_the_scalar_api():
    sc = _serving_scenario()
    result = costmodel.plan(sc, top=5)
    best = result.plans.iloc[0]
    from costmodel.tables.catalog import engine_catalog

    frame = engine_catalog().offers_frame()
    systems = sorted(set(frame[(frame["accelerator"] == "h100-sxm5-80gb")
                               & (frame["pricing_model"] == "on-demand")]["system"]))
    cands = []
    for system in systems:
        for tp in (1, 2):
            for b in (8, 32, 128):
                for prec in ("bf16", "fp8"):
                    est = estimate_serving("llama-3.1-8b", "h100-sxm5-80gb", ReplicaLayout(tp=tp),
                                           ServingSetup(precision=prec, batch=b, input_len=1000,
                                                        output_len=250),
                                           load=sc.job.load, system=system)
                    if est.fits_in_memory and est.slo_note is None and est.cost_per_month_usd is not None:
                        cands.append((est.cost_per_month_usd, est.e2e_p95_s, tp, b, prec, est))
    cands.sort(key=lambda c: (c[0], c[1]))
    cost, e2e, tp, b, prec, est = cands[0]
    assert best["cost_per_month_usd"] == pytest.approx(cost, rel=1e-9)
    assert best["e2e_p95_s"] == pytest.approx(e2e, rel=1e-9)
    assert (best["tp"], best["batch_size"], best["precision"]) == (tp, b, prec)
    assert best["replicas"] == est.replicas and best["ttft_p95_s"] <= 2.0 and best["tpot_p95_s"] <= 0.1


def test_serving_report_has_the_capacity_columns():
    result = costmodel.plan(_serving_scenario(), top=3)
    report = result.report
    for col in ("rank", "accelerator", "provider", "offer", "pricing_model", "devices_per_replica",
                "tp", "pp", "ep", "batch_size", "replicas", "n_devices", "ttft_p95_s", "tpot_p95_s",
                "output_tokens_per_s_per_replica", "cost_per_month_usd", "usd_per_million_input_tokens",
                "usd_per_million_output_tokens", "memory_per_device_gib",
                "api_usd_per_million_output_tokens"):
        assert col in report.columns, col
    row = report.iloc[0]
    assert row["cost_per_month_usd"] == pytest.approx(
        row["instances"] * row["devices_per_instance"] * row["usd_per_device_hour"] * 730, rel=1e-12)
    assert np.isfinite(report.select_dtypes("number").drop(columns=[
        "api_usd_per_million_input_tokens", "api_usd_per_million_output_tokens", "api_cost_per_month_usd",
        "breakeven_requests_per_s", "quality_loss_fraction",
        # a price range exists only where the catalog sampled one (spot rows); NaN = not sampled
        "usd_per_device_hour_low", "usd_per_device_hour_high"]).to_numpy(dtype=float)).all()
    # Unknown quality is said in words, never a number: fp8 has no published row for Llama 3.1.
    unknown = report["quality_loss_fraction"].isna()
    assert (report.loc[unknown, "quality_impact"].str.contains("unknown")).all()


def test_more_load_never_needs_fewer_replicas():
    a = costmodel.plan(_serving_scenario(requests_per_s=2.0), top=1).plans.iloc[0]
    b = costmodel.plan(_serving_scenario(requests_per_s=20.0), top=1).plans.iloc[0]
    assert b["n_devices"] >= a["n_devices"] and b["cost_per_month_usd"] >= a["cost_per_month_usd"]


def test_tight_tpot_objective_is_a_reason():
    result = costmodel.plan(_serving_scenario(tpot_p95_s=1e-4), top=3)
    assert result.plans.empty
    assert "misses TPOT SLO" in set(result.infeasible["reason"])


def test_cli_serve_json_uses_the_train_keys_and_a_model_that_does_not_fit_exits_0(capsys):
    args = ["serve", "llama-3.1-8b", "--accelerator", "h100-sxm5-80gb", "--input-len", "512",
            "--output-len", "128", "--batch", "16", "--format", "json"]
    assert cli_main(args) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["fits_in_memory"] is True and got["memory_per_device_bytes"] > 16e9
    assert cli_main(["serve", "llama-3.1-405b", "--accelerator", "h100-sxm5-80gb", "--input-len", "512",
                     "--output-len", "128", "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["fits_in_memory"] is False
    assert cli_main(["serve", "llama-3.1-8b", "--accelerator", "h100-sxm5-80gb", "--input-len", "512",
                     "--output-len", "128"]) == 0
    text = capsys.readouterr().out
    assert "TTFT" in text and "TPOT" in text and "prefill" in text


def test_cli_plan_serving_writes_the_csv(tmp_path, capsys):
    out = tmp_path / "serve.csv"
    assert cli_main(["plan", "--model", "llama-3.1-8b", "--serve-rps", "3", "--input-len", "800",
                     "--output-len", "200", "--ttft-p95-s", "2", "--tpot-p95-s", "0.1",
                     "--accelerators", "h100-sxm5-80gb", "--csv", str(out), "--no-progress"]) == 0
    import pandas as pd

    df = pd.read_csv(out)
    assert {"replicas", "cost_per_month_usd", "usd_per_million_output_tokens"} <= set(df.columns)
    assert (df["ttft_p95_s"] <= 2).all()


def test_serving_job_needs_a_load_and_rejects_a_deadline():
    from costmodel.specs.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="load"):
        Scenario.from_dict({"model": "gpt2", "job": {"kind": "serve"}})
    sc = Scenario(model="llama-3.1-8b", job=Job(kind="serve", load=ServingLoad(
        requests_per_s=1, input_len=10, output_len=10)), constraints=Constraints(deadline_days=3))
    with pytest.raises(ScenarioError, match="deadline_days"):
        costmodel.plan(sc)


def test_disaggregated_pools_remove_prefill_interference_from_tpot():
    """Long prompts (8,000 in, 200 out) at batch 64: co-located, every iteration carries
    64 x 8000/200 = 2,560 prompt tokens, so TPOT is several times the decode-only step; separate
    prefill and decode pools (DistServe/Splitwise) decode at the decode-only step and pay a KV
    transfer. Under a 50 ms TPOT objective only the disaggregated layout is feasible."""
    search = dict(SMALL, batch=[64], tp=[2], quantization=["bf16"], disaggregated=[False, True])
    load = ServingLoad(requests_per_s=4, input_len=8000, output_len=200, tpot_p95_s=0.05, ttft_p95_s=5.0)
    result = costmodel.plan(Scenario(model="llama-3.1-8b", job=Job(kind="serve", load=load),
                                     search=SearchSpace(**search)), top=20)
    assert not result.plans.empty and result.plans["disaggregated"].all()
    row = result.plans.iloc[0]
    assert row["prefill_replicas"] >= 1 and row["decode_replicas"] >= 1
    assert row["replicas"] == row["prefill_replicas"] + row["decode_replicas"]
    assert row["tpot_p95_s"] <= 0.05 and row["kv_transfer_s"] > 0
    assert "misses TPOT SLO" in set(result.infeasible["reason"])  # the co-located rows


# Compression --------------------------------------------------------------------------------------

def test_llama2_70b_int4_g128_weights_by_hand():
    """Llama-2-70B at int4 with group size 128 (w4a16): 4 bits per weight plus a 16-bit scale and
    a 4-bit zero point per 128 weights = 4 + 20/128 = 4.15625 bits. The linear layers hold
    80 x (8192 x (8192 + 2 x 1024 + 8192) + 3 x 8192 x 28672) = 68,451,041,280 weights; the
    embedding and head (2 x 32,000 x 8,192 = 524,288,000) and norms stay 16-bit in practice, but
    the memory model stores every parameter at the scheme's bits: 68,976,648,192 x 4.15625 / 8
    = 35.84 GB, i.e. 35.0 GB of int4 plus 0.84 GB of scales."""
    est = estimate_serving("llama-2-70b", "h100-sxm5-80gb", ReplicaLayout(tp=1),
                           ServingSetup(precision="w4a16", batch=1, input_len=128, output_len=128))
    assert est.memory_breakdown_bytes["weights"] == pytest.approx(68_976_648_192 * 4.15625 / 8, rel=1e-9)


def test_two_four_speeds_gemms_on_a100_and_h100_not_on_v100():
    def gemms(acc, sparsity):
        est = estimate_serving("llama-2-7b", acc, setup=ServingSetup(
            precision="fp16", sparsity=sparsity, batch=512, input_len=512, output_len=64))
        return est.decode_breakdown_s["weights_and_gemms"]
    for acc in ("a100-sxm4-80gb", "h100-sxm5-80gb"):
        assert gemms(acc, "2:4") < 0.75 * gemms(acc, "none")
    assert gemms("v100-sxm2-32gb", "2:4") == pytest.approx(gemms("v100-sxm2-32gb", "none"), rel=1e-12)


def test_int4_weight_only_decode_is_faster_when_bandwidth_bound_not_when_compute_bound():
    """At batch 1 the decode step reads the weights (4.16 vs 16 bits): faster. At a compute-bound
    batch the dequantized GEMMs run on the 16-bit tensor cores plus the dequantization overhead."""
    def tpot(prec, batch):
        return estimate_serving("llama-2-7b", "a100-sxm4-80gb", setup=ServingSetup(
            precision=prec, batch=batch, input_len=64, output_len=64)).tpot_s
    assert tpot("w4a16", 1) < 0.5 * tpot("fp16", 1)
    assert tpot("w4a16", 256) > tpot("fp16", 256)


def test_quantized_kv_cache_raises_the_largest_batch_by_the_ratio_of_bits():
    def most(kv):
        return estimate_serving("llama-3.1-8b", "h100-sxm5-80gb", setup=ServingSetup(
            kv_bits=kv, input_len=4000, output_len=1000)).max_batch
    assert most(8) / most(16) == pytest.approx(2.0, rel=0.03)
    assert most(4) / most(16) == pytest.approx(4.0, rel=0.06)


def test_fp4_is_a_reason_on_a_part_without_fp4_never_treated_as_16_bit():
    with pytest.raises(ValueError, match="format unsupported on hardware"):
        estimate_serving("llama-3.1-8b", "h100-sxm5-80gb", setup=ServingSetup(
            precision="nvfp4", input_len=100, output_len=100))
    b200 = estimate_serving("llama-3.1-8b", "b200-sxm-180gb", setup=ServingSetup(
        precision="nvfp4", batch=1, input_len=100, output_len=100))
    assert b200.memory_breakdown_bytes["weights"] == pytest.approx(8_030_261_248 * 4.5 / 8, rel=1e-9)


def test_max_quality_loss_excludes_unknown_and_large_degradations():
    sc = _serving_scenario()
    search = dict(SMALL, quantization=["bf16", "fp8", "w4a16"])
    free = costmodel.plan(sc.model_copy(update={"search": SearchSpace(**search)}), top=50).plans
    assert {"bf16", "w4a16"} <= set(free["precision"])
    strict = costmodel.plan(sc.model_copy(update={
        "search": SearchSpace(**search),
        "constraints": Constraints(max_quality_loss=0.01)}), top=50)
    assert set(strict.plans["precision"]) == {"bf16"}  # fp8: unknown; w4a16: +6.6% ppl (Llama 3.1)
    assert "quality impact above max_quality_loss or unknown" in set(strict.infeasible["reason"])


# The planner's pruned evaluation ----------------------------------------------------------------

@pytest.mark.parametrize("share", [None, "grid order", "shuffled"])
@pytest.mark.parametrize("model", ["llama-3.1-70b", "mixtral-8x7b"])
def test_pruned_evaluation_matches_the_full_one(model, share):
    """``evaluate_serving(prune=True)`` (the planner's search) drops rows once memory or the TPOT
    objective decides them, and with a ``share_key`` evaluates rows that differ only in
    'disaggregated' once; the reason of every row and the outputs of the rows it keeps equal the
    full evaluation's, and it keeps exactly the full evaluation's rows that pass memory and TPOT."""
    from costmodel.jobs.serve import MEMORY, TPOT_SLO, evaluate_serving
    from costmodel.specs.serving import SCHEME_CODES
    from costmodel.tables.catalog import engine_catalog, hardware_table
    from costmodel.tables.knobs import knob_columns

    table = hardware_table(engine_catalog())
    systems = [table.system_code(s) for s in ("hgx-h100-8", "hgx-a100-80gb-8", "gb200-nvl72-rack")]
    grid = np.meshgrid(systems, [1, 2, 4, 8], [1, 2], [1, 4, 32, 256, 1024],
                       [SCHEME_CODES[q] for q in ("bf16", "fp8", "w4a16")], [16, 8], [0.0, 1.0], indexing="ij")
    sys_code, tp, pp, batch, prec, kv, dis = (g.ravel() for g in grid)
    key = np.arange(tp.size) // 2  # 'disaggregated' is the innermost dimension
    if share == "shuffled":
        order = np.random.default_rng(0).permutation(tp.size)
        sys_code, tp, pp, batch, prec, kv, dis, key = (x[order] for x in (sys_code, tp, pp, batch, prec, kv, dis, key))
    coded = {"tp": tp.astype(float), "pp": pp.astype(float), "ep": np.ones(tp.size), "batch": batch.astype(float),
             "precision": prec.astype(float), "kv_bits": kv.astype(float), "disaggregated": dis,
             "input_len": 2000.0, "output_len": 300.0}
    load = ServingLoad(requests_per_s=10, input_len=2000, output_len=300, ttft_p95_s=2.0, tpot_p95_s=0.05)
    m = ModelColumns.from_spec(costmodel.preset(model))
    knobs = knob_columns("nemo")
    full = evaluate_serving(m, coded, sys_code, table, knobs, load)
    pruned = evaluate_serving(m, coded, sys_code, table, knobs, load, prune=True,
                              share_key=None if share is None else key)
    np.testing.assert_array_equal(pruned.reason, full.reason)
    assert {MEMORY, TPOT_SLO} <= set(np.unique(full.reason))  # both pruning stages were exercised
    kept = ~np.isin(full.reason[full.live], [MEMORY, TPOT_SLO])
    np.testing.assert_array_equal(pruned.live, full.live[kept])
    assert set(pruned.out) == set(full.out)
    for name, v in pruned.out.items():
        np.testing.assert_array_equal(np.broadcast_to(v, pruned.live.shape),
                                      np.broadcast_to(full.out[name], full.live.shape)[kept], err_msg=name)


def test_gemm_size_knob_reaches_serving():
    """The training GEMM-size knob (``gemm_half_efficiency_gflops``, blocks docstring) sets the
    serving roofline too: serving_knobs carries it, a decode iteration pays G0 of extra work per
    GEMM at the achieved rate, and a scenario override moves the serving plan (not ignored)."""
    from costmodel.formulas.serving import serving_roofline
    from costmodel.jobs.serve import serving_knobs
    from costmodel.tables.knobs import knob_columns

    k = serving_knobs(knob_columns("nemo"))
    assert float(k.gemm_half_efficiency_gflops) == 0.6  # data/assumptions.yaml
    k0 = serving_knobs(knob_columns("nemo", {"gemm_half_efficiency_gflops": 0.0}))
    m = ModelColumns.from_spec(costmodel.preset("llama-3.1-8b"))
    s = _columns(64.0, input_len=1000, output_len=200)
    assert float(serving_roofline(_round_a100(), k, s).gemm_half_flops) == pytest.approx(0.6e9)
    step = lambda kn: float(iteration_time(m, s, _round_a100(), kn, sequences=64.0, context=1100.0,  # noqa: E731
                                           prefill_tokens=320.0)["total"])
    assert step(k) > step(k0)
    # Compute-bound GEMM: 4096 x 4096 x 4096 at 312 TFLOP/s; with G0 = 0.6 GFLOP it takes
    # (2 x 4096^3 + 0.6e9) / 312e12 s, the training formula's time.
    roof = serving_roofline(_round_a100(), ServingKnobs(gemm_kernel_overhead_s=0.0, gemm_half_efficiency_gflops=0.6),
                            _columns(1.0))
    t, _ = roof.gemm(4096.0, 4096.0, 4096.0, 2.0)
    assert float(t) == pytest.approx((2 * 4096.0**3 + 0.6e9) / 312e12, rel=1e-12)

    def best(override):
        sc = _serving_scenario()
        sc = sc.model_copy(update={"overrides": {"gemm_half_efficiency_gflops": override}})
        return costmodel.plan(sc, top=1).plans.iloc[0]

    assert best(100.0)["tpot_p95_s"] > best(0.0)["tpot_p95_s"]


def test_expert_gemm_knob_reaches_serving():
    """``expert_gemm_efficiency_scale`` is a knob of the one engine: serving_knobs carries it into
    the serving roofline, and a prefill-heavy Mixtral iteration (routed experts compute-bound)
    takes longer at half the expert rate; a dense model's does not move."""
    from costmodel.formulas.serving import serving_roofline
    from costmodel.jobs.serve import serving_knobs
    from costmodel.tables.knobs import knob_columns

    k = serving_knobs(knob_columns("nemo"))
    k_half = serving_knobs(knob_columns("nemo", {"expert_gemm_efficiency_scale": 0.5}))
    s = _columns(64.0, input_len=1000, output_len=200)
    assert float(serving_roofline(_round_a100(), k_half, s).expert_compute_scale) == 2.0
    for name, moves in (("mixtral-8x7b", True), ("llama-3.1-8b", False)):
        m = ModelColumns.from_spec(costmodel.preset(name))
        step = lambda kn: float(iteration_time(m, s, _round_a100(), kn, sequences=64.0,  # noqa: E731
                                               context=1100.0, prefill_tokens=4096.0)["total"])
        assert (step(k_half) > step(k)) is moves, name


def test_layout_rules_looked_up_per_combination_equal_the_rules():
    """The planner evaluates the replica layout rules once per (tp, pp, ep) combination of a
    chunk and looks rows up; the result equals ``replica_violations`` row by row."""
    from costmodel.jobs.serve import _replica_violations
    from costmodel.specs.serving import replica_violations

    rng = np.random.default_rng(0)
    for name in ("llama-3.1-70b", "mixtral-8x7b", "deepseek-v3", "gpt2"):
        m = ModelColumns.from_spec(costmodel.preset(name))
        tp = rng.choice([1, 2, 3, 4, 8, 16, 64], 5000).astype(float)
        pp = rng.choice([1, 2, 4, 5, 7, 8, 16], 5000).astype(float)
        ep = rng.choice([1, 2, 4, 8, 16, 64], 5000).astype(float)
        np.testing.assert_array_equal(_replica_violations(m, tp, pp, ep), replica_violations(m, tp, pp, ep))
