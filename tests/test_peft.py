"""Parameter-efficient fine-tuning (LoRA, QLoRA) as training modes of the one engine.

LoRA (Hu et al. 2021) freezes the base and trains r x (d_in + d_out) adapter parameters per adapted
matrix; QLoRA (Dettmers et al. 2023) also stores the frozen base in 4-bit NF4 with double
quantization, 4 + 8/64 + 32/(64 x 256) = 4.127 bits per weight. Each test states its hand
computation; the oracle at the end holds every face (scalar API, DataFrame API, planner, CLI) equal
on random PEFT configurations, as ``tests/test_engine_contract.py`` does for full training.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

import costmodel
from costmodel import Job, ParallelLayout, Scenario, SearchSpace, TrainingSetup
from costmodel.faces.api import lora_parameter_count
from costmodel.faces.cli import main as cli_main
from costmodel.specs.scenario import Constraints
from costmodel.specs.setup import BASE_STORED_BITS, build_training_columns, layout_codes, setup_codes
from costmodel.specs.spec import make_spec

GIB = 2**30
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)  # 4.126953125

# LLaMA-65B (Touvron et al. 2023, Table 2; HF config: 80 layers, hidden 8192, 64 heads,
# intermediate 22016, vocab 32000, SwiGLU, RMSNorm, untied head).
LLAMA_65B = make_spec({"name": "llama-65b", "n_layers": 80, "d_model": 8192, "n_heads": 64,
                       "d_ff": 22016, "vocab_size": 32000, "mlp_activation": "swiglu", "norm": "rmsnorm",
                       "tied_embeddings": False,
                       "source": "Touvron et al. 2023 (LLaMA) Table 2; HF huggyllama/llama-65b config.json"})


def _qlora_65b(peft="qlora", master_weights=False):
    """QLoRA's 65B recipe (Dettmers et al. 2023, Sec. 5 / App. B): rank 64 on every linear
    layer, paged AdamW with 32-bit states, micro-batch 1, 512-token sequences, gradient
    checkpointing (full recomputation); the adapters are trained in bf16 without an fp32 copy
    (qlora.py casts the LoRA modules to bf16)."""
    setup = TrainingSetup(precision="bf16", peft=peft, lora_rank=64, lora_targets="all",
                          optimizer="adamw", optimizer_state_bits=32, master_weights=master_weights,
                          micro_batch=1, seq_len=512, recompute="full")
    return costmodel.estimate_training(LLAMA_65B, "l40s-48gb", ParallelLayout(), setup, train_tokens=1e8)


def test_qlora_finetunes_a_65b_model_on_one_48gb_gpu():
    """The QLoRA paper's claim (abstract: 'finetune a 65B parameter model on a single 48GB GPU').

    Hand computation, LLaMA-65B:
      linear layers per block: q, k, v, o 4 h^2 = 268,435,456; gate, up, down 3 h d_ff =
        541,065,216; x 80 blocks = 64,760,053,760 parameters, stored in NF4 at 4.126953125 bits:
        64,760,053,760 x 4.127 / 8 = 33,407,713,280 bytes (the brief's 65.3e9 x 4.127 / 8 ~ 33.7 GB
        counts every parameter at 4 bits; bitsandbytes quantizes only the blocks' nn.Linear layers);
      embedding + LM head 2 x 32000 x 8192 and norms (2 x 80 + 1) x 8192 = 525,606,912 parameters
        kept in bf16: 1,051,213,824 bytes;
      adapters, rank 64 on all 7 matrices: 80 x 64 x (4 x (8192 + 8192) + 3 x (8192 + 22016)) =
        799,539,200 parameters, bf16: 1,599,078,400 bytes;
      weights = 33,407,713,280 + 1,051,213,824 + 1,599,078,400 = 36,058,005,504 bytes.
    Adapter gradients (bf16) 1.6 GB, AdamW states (2 x fp32) 6.4 GB, activations with full
    recomputation ~1.2 GB (80 block inputs of 512 x 8192 x 2 bytes = 0.67 GB, one block's working
    set, the transient bf16 copy of the largest matrix 8192 x 22016 x 2 = 0.36 GB), CUDA context
    1.4 GB: ~46.8 GB = 43.6 GiB < 48 GiB. 16-bit LoRA stores the base at 2 bytes: 130 GB alone.
    """
    est = _qlora_65b()
    linear = 80 * (4 * 8192**2 + 3 * 8192 * 22016)
    rest = 2 * 32000 * 8192 + (2 * 80 + 1) * 8192
    adapters = 80 * 64 * (4 * (8192 + 8192) + 3 * (8192 + 22016))
    assert (linear, rest, adapters) == (64_760_053_760, 525_606_912, 799_539_200)
    assert linear + rest == int(costmodel.parameter_count(LLAMA_65B).total)
    assert BASE_STORED_BITS[4] == NF4_BITS == 4.126953125
    mem = est.memory_breakdown_bytes
    assert mem["weights"] == pytest.approx(linear * NF4_BITS / 8 + rest * 2 + adapters * 2, rel=1e-3)
    quantized = mem["weights"] - rest * 2 - adapters * 2
    assert quantized == pytest.approx(33_407_713_280, rel=1e-3)
    assert mem["gradients"] == pytest.approx(adapters * 2, rel=1e-12)
    assert mem["master_weights"] == 0
    assert mem["optimizer_states"] == pytest.approx(adapters * 8, rel=1e-12)
    assert est.memory_per_device_bytes < 48 * GIB and est.fits_in_memory
    # Even with an fp32 master copy of the adapters (+3.2 GB) it still fits.
    assert _qlora_65b(master_weights=None).fits_in_memory
    # 16-bit LoRA of the same model: 65.3e9 x 2 bytes of frozen weights alone.
    lora = _qlora_65b(peft="lora")
    assert lora.memory_breakdown_bytes["weights"] > 130e9
    assert not lora.fits_in_memory and lora.memory_per_device_bytes > 48 * GIB


def test_lora_adapter_count_llama2_7b():
    """Hugging Face PEFT's LoRA example (Llama-2-7B, r = 8, q_proj and v_proj): 'trainable params:
    4,194,304' = 32 layers x 2 matrices x 8 x (4096 + 4096). q, k, v, o (MHA, all 4096 x 4096):
    32 x 4 x 8 x 8192 = 8,388,608. Every linear layer at r = 64 (QLoRA's setting): 32 x 64 x
    (4 x 8192 + 3 x (4096 + 11008)) = 159,907,840."""
    assert int(lora_parameter_count("llama-2-7b", rank=8, targets="qv").total) == 4_194_304
    assert int(lora_parameter_count("llama-2-7b", rank=8, targets="attention").total) == 8_388_608
    assert int(lora_parameter_count("llama-2-7b", rank=64, targets="all").total) == 159_907_840
    # GQA shrinks k and v: llama-3.1-8b (8 KV heads x 128), r = 16, all linear layers:
    # 32 x 16 x (2 x 8192 + 2 x (4096 + 1024) + 3 x (4096 + 14336)) = 41,943,040.
    assert int(lora_parameter_count("llama-3.1-8b", rank=16).total) == 41_943_040


def _step(peft, **setup):
    layout = ParallelLayout(dp=8, zero_stage=1)
    s = TrainingSetup(peft=peft, seq_len=4096, micro_batch=1, global_batch=64, **setup)
    return costmodel.estimate_training("llama-3.1-8b", "h100-sxm5-80gb", layout, s, train_tokens=1e10)


def test_lora_step_saves_the_weight_gradient_gemms():
    """llama-3.1-8b on 8 x H100, dp = 8, 4096-token sequences: compute-bound GEMMs dominate.
    Full fine-tuning runs every GEMM 3x (forward, input gradient, weight gradient); LoRA runs the
    frozen GEMMs 2x and adds the adapters' small GEMMs, so the step shrinks by about 3/2 on the
    GEMM share (~80% of compute here): 1 / (1 - 0.8/3) ~ 1.36, less the attention core and
    element-wise work that stay 3x -> between 1.2x and 1.6x (the engine says 1.28x).

    MFU convention: model FLOPs are what the step requires. Per token (forward, from the flops
    module): weight GEMMs G = 1.611e9 (qkv) + 1.074e9 (o) + 11.274e9 (MLP) + 1.051e9 (head) =
    15.010e9; attention core A = 2 x 0.537e9 = 1.074e9; adapters D = 2 x 41,943,040 x 3 / 32 x 32
    = 0.0839e9 (2 FLOPs per r (d_in + d_out) of each adapted matrix). Full: 3 (G + A) = 48.25e9;
    LoRA: 2 G + 3 A + 3 D = 30.02 + 3.22 + 0.25 = 33.49e9 (ratio 0.694)."""
    full, lora = _step("none"), _step("lora")
    speedup = full.step_time_s / lora.step_time_s
    assert 1.2 < speedup < 1.6, speedup
    fwd = costmodel.training_flops("llama-3.1-8b", TrainingSetup(seq_len=4096))["forward_per_token"]
    g = sum(float(fwd[k]) for k in ("qkv", "output_projection", "mlp", "lm_head"))
    a = float(fwd["attention_scores"] + fwd["attention_values"])
    d = 2 * 41_943_040
    flops = costmodel.training_flops("llama-3.1-8b", TrainingSetup(seq_len=4096, peft="lora"))
    assert float(flops["model_per_token"].total) == pytest.approx(2 * g + 3 * a + 3 * d, rel=1e-12)
    assert float(flops["model_per_token"]["adapters"]) == pytest.approx(3 * d, rel=1e-12)
    assert float(flops["backward_per_token"]["mlp"]) == pytest.approx(float(fwd["mlp"]), rel=1e-12)
    # MFU = model FLOPs per step / step time / devices / peak, with LoRA's model FLOPs.
    tokens = 64 * 4096
    peak = full.model_tflops_per_device / full.mfu
    assert lora.model_tflops_per_device * 1e12 == pytest.approx(
        (2 * g + 3 * a + 3 * d) * tokens / lora.step_time_s / 8, rel=1e-9)
    assert lora.mfu == pytest.approx(lora.model_tflops_per_device / peak, rel=1e-9)


def test_lora_data_parallel_traffic_and_optimizer_cover_the_adapters_only():
    """Gradient reduce-scatter of LoRA: 41,943,040 adapters x 2 bytes = 83.9 MB per call instead
    of 8.03e9 x 2 = 16.06 GB (0.5%); the optimizer step reads and writes the adapters' states only.
    Memory: gradients 2 bytes, master copy 4 bytes, Adam states 8 bytes per adapter parameter,
    sharded over dp = 8 by ZeRO-1 (master and states)."""
    full, lora = _step("none"), _step("lora")
    comm = {c["collective"]: c for c in lora.communication}
    full_comm = {c["collective"]: c for c in full.communication}
    assert comm["dp_grad_sync"]["bytes_per_call"] == pytest.approx(41_943_040 * 2, rel=1e-12)
    assert full_comm["dp_grad_sync"]["bytes_per_call"] == pytest.approx(8_030_261_248 * 2, rel=1e-12)
    assert comm["dp_grad_sync"]["time_per_step_s"] < 0.01 * full_comm["dp_grad_sync"]["time_per_step_s"]
    assert lora.step_breakdown_s["optimizer"] < 0.01 * full.step_breakdown_s["optimizer"]
    mem = lora.memory_breakdown_bytes
    assert mem["gradients"] == pytest.approx(41_943_040 * 2, rel=1e-12)
    assert mem["master_weights"] == pytest.approx(41_943_040 * 4 / 8, rel=1e-12)
    assert mem["optimizer_states"] == pytest.approx(41_943_040 * 8 / 8, rel=1e-12)
    assert mem["weights"] == pytest.approx((8_030_261_248 + 41_943_040) * 2, rel=1e-12)


def test_zero3_still_shards_the_frozen_base():
    """FSDP over 8 ranks shards the frozen 4-bit base like any weight: weights / 8."""
    setup = TrainingSetup(peft="qlora", seq_len=2048)
    one = costmodel.training_memory("llama-3.1-8b", ParallelLayout(), setup)
    eight = costmodel.training_memory("llama-3.1-8b", ParallelLayout(dp=8, zero_stage=3), setup)
    assert float(eight["weights"]) == pytest.approx(float(one["weights"]) / 8, rel=1e-12)
    assert float(eight["zero3_buffers"]) > 0


def test_quantized_base_pays_its_dequantization():
    """QLoRA dequantizes each base matrix before use (forward, backward): per pass it reads 4.127
    bits and writes 16 per weight, 2.52 bytes; the 8-bit base 3 bytes. So step time rises from
    LoRA (16-bit base, no pass) to 8-bit to 4-bit, while the weights shrink."""
    steps = {bits: _step("lora", base_weight_bits=bits) for bits in (16, 8, 4)}
    assert steps[16].step_time_s < steps[4].step_time_s < steps[8].step_time_s
    assert steps[4].step_time_s < 1.05 * steps[16].step_time_s  # 2 passes of 15 GB vs 2.5 s of GEMMs
    w = {bits: s.memory_breakdown_bytes["weights"] for bits, s in steps.items()}
    assert w[4] < w[8] < w[16]
    assert _step("qlora").step_time_s == steps[4].step_time_s  # qlora = lora on a 4-bit base


def test_setup_and_job_validate_the_peft_fields():
    with pytest.raises(ValidationError, match="base_weight_bits applies to a frozen base"):
        TrainingSetup(base_weight_bits=4)
    with pytest.raises(ValidationError, match="qlora"):
        TrainingSetup(peft="qlora", base_weight_bits=16)
    with pytest.raises(ValidationError):
        TrainingSetup(peft="lora", lora_rank=0)
    with pytest.raises(ValidationError):
        TrainingSetup(peft="lora", lora_rank=4097)
    with pytest.raises(ValidationError):
        Job(train_tokens=1e9, peft="dora")
    sc = Scenario(model="gpt2", job=Job(train_tokens=1e9, base_weight_bits=8))
    with pytest.raises(ValueError, match="base_weight_bits"):
        costmodel.plan(sc, top=1)


def test_peft_none_is_full_training_and_old_callers_need_no_peft_codes():
    """Coded inputs without the PEFT keys (callers that predate them) build the same columns as
    an explicit peft = none."""
    layout, setup = ParallelLayout(tp=2, dp=4, zero_stage=1), TrainingSetup(seq_len=2048)
    codes = {**layout_codes(layout), **setup_codes(setup), "n_micro": 1}
    old = {k: v for k, v in codes.items() if k not in ("peft", "lora_rank", "lora_targets", "base_weight_bits")}
    a, b = build_training_columns(codes), build_training_columns(old)
    for name in a.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert float(a.base_weight_bits) == float(a.weight_bits) == 16


def test_plan_report_carries_the_peft_columns():
    """A plan with Job(peft='qlora') reports the mode, rank, targets and nominal base bits; a
    full-training plan reports peft 'none', rank 0 and the weights' own bits."""
    def top(**job):
        sc = Scenario(model="llama-3.1-8b", job=Job(kind="finetune", train_tokens=1e9, seq_len=2048, **job),
                      search=SearchSpace(accelerators=["h100-sxm5-80gb"], device_counts=[8], tp=[1, 2],
                                         pp=[1], vpp=[1], cp=[1], zero_stage=[1], recompute=["none"],
                                         micro_batch=[1], precision=["bf16"]))
        return costmodel.plan(sc, top=3).report
    cols = ["peft", "lora_rank", "lora_targets", "base_weight_bits"]
    q = top(peft="qlora", lora_rank=32, lora_targets="attention")
    assert list(q[cols].iloc[0]) == ["qlora", 32, "attention", 4]
    assert list(top()[cols].iloc[0]) == ["none", 0, "", 16]


def test_cli_peft_flags(capsys):
    args = ["memory", "llama-3.1-8b", "--seq-len", "2048", "--format", "json"]
    assert cli_main(args + ["--peft", "qlora", "--lora-rank", "16", "--lora-targets", "all",
                            "--base-weight-bits", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["setup"]["peft"] == "qlora" and out["setup"]["base_weight_bits"] == 4
    mem = costmodel.training_memory("llama-3.1-8b", ParallelLayout(),
                                    TrainingSetup(seq_len=2048, peft="qlora", base_weight_bits=4))
    assert out["total_bytes"] == pytest.approx(float(mem.total), rel=1e-12)
    assert cli_main(args + ["--base-weight-bits", "4"]) == 2
    assert "base_weight_bits" in capsys.readouterr().err
    from costmodel.faces.cli import build_parser, scenario_from_args

    plan_args = build_parser().parse_args([
        "plan", "--model", "gpt2", "--train-tokens", "1e9", "--peft", "qlora", "--lora-rank", "8",
        "--lora-targets", "qv", "--base-weight-bits", "8"])
    job = scenario_from_args(plan_args).job
    assert (job.peft, job.lora_rank, job.lora_targets, job.base_weight_bits) == ("qlora", 8, "qv", 8)


# The oracle: every face agrees on random PEFT configurations ------------------------------------

REL = 1e-9
PRESETS = ["gpt2", "llama-2-7b", "llama-3.1-8b", "mistral-7b", "qwen2.5-7b", "mixtral-8x7b", "bert-base"]


def _draw(rng):
    spec = costmodel.preset(str(rng.choice(PRESETS)))
    tp, pp, dp = (int(rng.choice(v)) for v in ([1, 2, 4], [1, 2], [1, 2, 4, 8]))
    ep = int(rng.choice([e for e in (1, 2) if dp % e == 0])) if spec.is_moe else 1
    layout = ParallelLayout(tp=tp, pp=pp, vpp=int(rng.choice([1, 2])) if pp > 1 else 1, dp=dp, ep=ep,
                            sequence_parallel=True, zero_stage=int(rng.integers(4)))
    peft = str(rng.choice(["lora", "qlora"]))
    bits = [None, 16, 8, 4] if peft == "lora" else [None, 8, 4]
    mb = int(rng.choice([1, 2]))
    setup = TrainingSetup(
        precision=str(rng.choice(["bf16", "fp16", "fp8"])), peft=peft,
        lora_rank=int(rng.choice([4, 16, 64])), lora_targets=str(rng.choice(["attention", "all", "qv"])),
        base_weight_bits=bits[rng.integers(len(bits))],
        optimizer=str(rng.choice(["adamw", "sgd", "lion", "adafactor"])),
        optimizer_state_bits=int(rng.choice([32, 8])), recompute=str(rng.choice(["none", "selective", "full"])),
        micro_batch=mb, seq_len=int(rng.choice([512, 2048])), global_batch=mb * dp * int(rng.choice([1, 4])),
    )
    return spec, layout, setup, str(rng.choice(["h100-sxm5-80gb", "a100-sxm4-80gb", "l40s-48gb"]))


@pytest.fixture(scope="module")
def peft_configs():
    rng = np.random.default_rng(7)
    out = []
    while len(out) < 40:
        spec, layout, setup, acc = _draw(rng)
        if costmodel.specs.layout.layout_problems(spec, layout):
            continue
        try:
            est = costmodel.estimate_training(spec, acc, layout, setup, train_tokens=1e9)
        except ValueError:
            continue
        if est.cost_total_usd is None or not est.fits_in_memory:
            continue
        out.append((spec, layout, setup, acc, est))
    return out


def _close(a, b, what):
    assert math.isclose(float(a), float(b), rel_tol=REL, abs_tol=1e-12), (what, a, b)


def test_peft_oracle_scalar_api_equals_dataframe_api(peft_configs):
    assert {c[2].peft for c in peft_configs} == {"lora", "qlora"}
    frame = pd.DataFrame([{"model": spec, "accelerator": acc, **layout.model_dump(), **setup.model_dump(),
                           "train_tokens": 1e9} for spec, layout, setup, acc, _ in peft_configs])
    res = costmodel.evaluate_frame(frame)
    for i, (*_, est) in enumerate(peft_configs):
        row = res.iloc[i]
        _close(row["memory_per_device_gib"] * GIB, est.memory_per_device_bytes, f"memory {i}")
        _close(row["step_time_s"], est.step_time_s, f"step {i}")
        _close(row["mfu"], est.mfu, f"mfu {i}")
        _close(row["cost_total_usd"], est.cost_total_usd, f"cost {i}")


def test_peft_oracle_scalar_api_equals_one_configuration_plan(peft_configs):
    """A plan with Job(peft=...) equals estimate_training with the same setup."""
    for i, (spec, layout, setup, acc, est) in enumerate(peft_configs[:20]):
        job = Job(train_tokens=1e9, seq_len=setup.seq_len, global_batch=setup.global_batch,
                  optimizer=setup.optimizer, optimizer_state_bits=setup.optimizer_state_bits,
                  peft=setup.peft, lora_rank=setup.lora_rank, lora_targets=setup.lora_targets,
                  base_weight_bits=setup.base_weight_bits)
        sc = Scenario(model=spec, job=job, constraints=Constraints(pricing_models=["on-demand"]),
                      search=SearchSpace(accelerators=[acc], device_counts=[layout.n_devices], tp=[layout.tp],
                                         pp=[layout.pp], vpp=[layout.vpp], cp=[layout.cp], ep=[layout.ep],
                                         zero_stage=[layout.zero_stage], recompute=[setup.recompute],
                                         micro_batch=[setup.micro_batch], precision=[setup.precision]))
        plans = costmodel.plan(sc, top=500).plans
        best = plans[plans["system"] == est.system].iloc[0]
        assert best["peft"] == setup.peft and best["lora_rank"] == setup.lora_rank
        _close(best["memory_per_device_gib"] * GIB, est.memory_per_device_bytes, f"memory {i}")
        _close(best["step_time_s"], est.step_time_s, f"step {i}")
        _close(best["cost_total_usd"], est.cost_total_usd, f"cost {i}")


def test_peft_oracle_scalar_api_equals_cli(peft_configs, capsys):
    for i, (spec, layout, setup, acc, est) in enumerate(peft_configs[:20]):
        args = ["train", spec.name, "--accelerator", acc, "--train-tokens", "1e9",
                "--tp", str(layout.tp), "--pp", str(layout.pp), "--vpp", str(layout.vpp),
                "--dp", str(layout.dp), "--ep", str(layout.ep), "--sp", "--zero", str(layout.zero_stage),
                "--precision", setup.precision, "--optimizer", setup.optimizer,
                "--optimizer-state-bits", str(setup.optimizer_state_bits), "--recompute", setup.recompute,
                "--micro-batch", str(setup.micro_batch), "--seq-len", str(setup.seq_len),
                "--global-batch", str(setup.global_batch), "--peft", setup.peft,
                "--lora-rank", str(setup.lora_rank), "--lora-targets", setup.lora_targets, "--format", "json"]
        if setup.base_weight_bits is not None:
            args += ["--base-weight-bits", str(setup.base_weight_bits)]
        assert cli_main(args) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["setup"]["peft"] == setup.peft
        for key in ("memory_per_device_bytes", "step_time_s", "cost_total_usd"):
            _close(got[key], getattr(est, key), f"{key} {i}")
