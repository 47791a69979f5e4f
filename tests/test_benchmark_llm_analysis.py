"""benchmarks/compare_llm_analysis.py: the llm-analysis configuration built from concrete rows, and
its predictions, checked against values worked out by hand from the rows and llm-analysis's source."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("llm_analysis")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "compare_llm_analysis.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("compare_llm_analysis", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_llm_analysis"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows():
    from costmodel.validation.measurements import read_measurements

    return {r.text("id"): r for r in read_measurements()}


def test_tt020_configuration(bench, rows):
    """GPT 22B, 8x A100 80GB, tp=8, full recompute, no SP (Korthikanti et al. 2022 Table 5)."""
    from llm_analysis.analysis import ActivationRecomputation, DSZeRO

    inp = bench.build_inputs(rows["TT-020"])
    assert inp.expressible and inp.call == "training"
    g, m, p, d = inp.gpu, inp.model, inp.parallelism, inp.dtype
    # catalog a100-sxm4-80gb: bf16 peak 312e12, 80 GiB, 2039 GB/s, NVLink 300 GB/s one way
    assert g.peak_fp16_TFLOPS * 1e12 == pytest.approx(312e12)
    assert g.mem_per_GPU_in_GB == pytest.approx(80.0)  # llm-analysis multiplies by 1024**3
    assert g.hbm_bandwidth_in_GB_per_sec == pytest.approx(2039.0)
    assert g.intra_node_bandwidth_in_GB_per_sec == pytest.approx(300.0)
    assert (p.tp_size, p.pp_size, p.dp_size, p.ep_size) == (8, 1, 1, 1)
    assert p.sp_size == 1  # row: sequence_parallel=false (llm-analysis would default sp to tp)
    assert (m.num_layers, m.hidden_dim, m.n_head, m.num_key_value_heads) == (48, 6144, 64, 64)
    assert (m.ffn_embed_dim, m.vocab_size, m.max_seq_len) == (24576, 51200, 2048)
    assert (d.weight_bits, d.activation_bits) == (16, 16)
    kw = inp.kwargs
    assert (kw["batch_size_per_gpu"], kw["global_batch_size"], kw["seq_len"]) == (4, 4, 2048)
    assert kw["activation_recomputation"] is ActivationRecomputation.FULL
    assert kw["ds_zero"] is DSZeRO.NONE
    assert kw["flash_attn"] is False and kw["softmax_dropout"] is True  # row extra: flash off, dropout on


def test_tt021_sequence_parallel_and_selective(bench, rows):
    from llm_analysis.analysis import ActivationRecomputation

    inp = bench.build_inputs(rows["TT-021"])
    assert inp.expressible
    assert inp.parallelism.sp_size == 8 == inp.parallelism.tp_size
    assert inp.kwargs["activation_recomputation"] is ActivationRecomputation.SELECTIVE


def test_tt031_context_parallel_not_expressible(bench, rows):
    """Llama 3.1 8B on 8x H100, cp=2: the configs are still built, but the row is not run."""
    inp = bench.build_inputs(rows["TT-031"])
    assert not inp.expressible
    assert any("context parallelism cp=2" in b for b in inp.blockers)
    assert inp.gpu.peak_fp16_TFLOPS == pytest.approx(989.0)  # h100-sxm5-80gb bf16
    assert inp.gpu.hbm_bandwidth_in_GB_per_sec == pytest.approx(3350.0)
    m = inp.model
    assert (m.num_layers, m.hidden_dim, m.n_head, m.num_key_value_heads, m.vocab_size) == (32, 4096, 32, 8, 128256)
    assert m.ffn_embed_dim == pytest.approx(1.5 * 14336)  # SwiGLU as iso-parameter 2-matrix MLP
    # 3 * h * d_ff parameters per layer's MLP, exactly
    assert 2 * m.hidden_dim * m.ffn_embed_dim == 3 * 4096 * 14336
    assert (inp.parallelism.tp_size, inp.parallelism.pp_size, inp.parallelism.dp_size) == (1, 1, 4)
    res = bench.evaluate_row(rows["TT-031"])
    assert res["llm_analysis_status"].startswith("not expressible: context parallelism")
    assert math.isnan(res["llm_analysis_predicted"])


def test_other_blockers(bench, rows):
    assert any("fp8" in b for b in bench.build_inputs(rows["TT-033"]).blockers)
    assert any("vpp=3" in b for b in bench.build_inputs(rows["TT-022"]).blockers)
    assert any("fp32" in b for b in bench.build_inputs(rows["TM-021"]).blockers)
    assert any("architecture not published" in b for b in bench.build_inputs(rows["TM-030"]).blockers)


def test_compare_tt020_tt021_predictions(bench):
    frame = bench.compare(ids=["TT-020", "TT-021", "TT-031"]).set_index("id")
    assert list(frame.index) == ["TT-020", "TT-021", "TT-031"]
    # llm-analysis step time = FLOPs per micro-batch / (tp * pp * peak * flops_efficiency) * GA,
    # default flops_efficiency 1, GA = 4 / (4 * 1) = 1. Forward FLOPs (MHA, MLP 16bsh^2):
    # 24 b L s h^2 (1 + s/6h + V/12Lh); backward 2x; full recompute +1 forward.
    b, L, s, h, V, tp, peak = 4, 48, 2048, 6144, 51200, 8, 312e12
    fwd = 24 * b * L * s * h * h * (1 + s / (6 * h) + V / (12 * L * h))
    tt020 = frame.loc["TT-020"]
    assert tt020["llm_analysis_status"] == "ok"
    assert tt020["llm_analysis_flops_efficiency"] == 1.0
    assert tt020["llm_analysis_predicted"] == pytest.approx(4 * fwd / (tp * peak), rel=1e-9)
    assert tt020["llm_analysis_rel_error"] == pytest.approx((4 * fwd / (tp * peak) - 1.42) / 1.42, rel=1e-9)
    # selective recompute adds 4 b s^2 h L instead of a whole forward
    tt021 = frame.loc["TT-021"]
    expected = (3 * fwd + 4 * b * s * s * h * L) / (tp * peak)
    assert tt021["llm_analysis_predicted"] == pytest.approx(expected, rel=1e-9)
    # costmodel's side is validate()'s own prediction
    from costmodel.validation.measurements import validate

    ours = validate().set_index("id")
    assert tt020["costmodel_predicted"] == pytest.approx(ours.loc["TT-020", "predicted"])
    assert tt020["measured"] == 1.42
    assert math.isnan(frame.loc["TT-031", "llm_analysis_predicted"])


def test_throughput_row_finite(bench):
    """A tokens/s row (torchtitan Llama 3.1 8B FSDP) gets a finite positive prediction, in its metric."""
    frame = bench.compare(ids=["TT-101"]).set_index("id")
    r = frame.loc["TT-101"]
    assert r["category"] == "train_throughput" and r["metric"] == "tokens_per_s_per_device"
    assert r["llm_analysis_status"] == "ok"
    assert math.isfinite(r["llm_analysis_predicted"]) and r["llm_analysis_predicted"] > 0
    # at 100 % of the 989 TFLOP/s peak, tokens/s/device * FLOPs/token = peak, FLOPs/token > 6 * params
    assert r["llm_analysis_predicted"] * 6 * 7.5e9 < 989e12


def test_sc21_convention_uses_row_formula(bench, rows):
    """model_tflops_per_device of SC21 rows: the paper's FLOP count / llm-analysis's step time."""
    frame = bench.compare(ids=["TT-010"]).set_index("id")
    r = frame.loc["TT-010"]
    B, s, L, h, V = 512, 2048, 24, 2304, 51200
    sc21 = 96 * B * s * L * h * h * (1 + s / (6 * h) + V / (16 * L * h))
    fwd_per_seq = 24 * s * L * h * h * (1 + s / (6 * h) + V / (12 * L * h))
    step = 4 * fwd_per_seq * 16 * 1 / (1 * 312e12)  # micro 16, GA = 512 / (16 * 32) = 1, tp = pp = 1
    assert r["llm_analysis_predicted"] == pytest.approx(sc21 / step / 32 / 1e12, rel=1e-9)


def test_summary_counts(bench):
    frame = bench.compare(ids=["TT-020", "TT-031", "TM-001", "TM-030"])
    summary = bench.summarize(frame).set_index("category")
    assert summary.loc["train_throughput", "rows"] == 2
    assert summary.loc["train_throughput", "llm_analysis_evaluated"] == 1
    assert summary.loc["train_throughput", "both_evaluated"] == 1
    assert summary.loc["train_memory", "costmodel_evaluated"] == 2
    assert summary.loc["train_memory", "llm_analysis_evaluated"] == 1
