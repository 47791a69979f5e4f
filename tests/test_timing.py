"""Communication, step time and cost: hand-worked examples and structural properties."""

import numpy as np
import pytest

from costmodel import ModelColumns, ParallelLayout, TrainingSetup, preset, training_columns
from costmodel.tables.catalog import engine_catalog, hardware_table
from costmodel.formulas.comms import Fabric, all_gather_time, all_reduce_time, all_to_all_time, group, p2p_time
from costmodel.formulas.cost import training_run_cost
from costmodel.jobs.train import evaluate_training, knob_columns
from costmodel.formulas.hardware import hardware_from_values
from costmodel.formulas.timing import STEP_COMPONENTS, TimingKnobs, _gemm_time, training_step_time
from costmodel.specs.setup import TrainingColumns

FAB = Fabric(scaleup_allreduce_bytes_per_s=360e9, scaleup_alltoall_bytes_per_s=300e9,
             scaleup_latency_s=5e-6, scaleup_domain=8.0, scaleout_allreduce_bytes_per_s=45e9,
             scaleout_alltoall_bytes_per_s=40e9, scaleout_latency_s=20e-6)


def test_ring_all_reduce_inside_a_node():
    """1 GB over 8 ranks in one NVLink domain at 360 GB/s bus bandwidth:
    ring 2*(7/8)*1e9/360e9 + 2*7*5us; tree has the same transfer term and 2*log2(8)*5us latency,
    so the tree wins: 4.8611 ms + 30 us = 4.8911 ms."""
    g = group(8, 1, FAB)
    assert not g.spans_domains and float(g.per_domain) == 8
    t = float(all_reduce_time(1e9, g, FAB))
    assert t == pytest.approx(2 * 7 / 8 * 1e9 / 360e9 + 2 * 3 * 5e-6, rel=1e-12)


def test_group_spanning_nodes_uses_the_nics_of_its_members():
    """A 32-rank data-parallel group with tp=1 has 8 members per 8-GPU node: the ring leaves each
    node over 8 NICs, B = min(360, 8 * 45) = 360 GB/s. With tp=8 (stride 8) each node holds one
    member: B = 45 GB/s."""
    dense = group(32, 1, FAB)
    assert bool(dense.spans_domains) and float(dense.per_domain) == 8
    strided = group(32, 8, FAB)
    assert float(strided.per_domain) == 1
    m = 1e9
    assert float(all_gather_time(m, dense, FAB)) == pytest.approx(31 / 32 * m / 360e9 + 31 * 20e-6)
    assert float(all_gather_time(m, strided, FAB)) == pytest.approx(31 / 32 * m / 45e9 + 31 * 20e-6)
    assert float(all_to_all_time(m, group(1, 1, FAB), FAB)) == 0.0
    assert float(p2p_time(1e6, True, FAB)) == pytest.approx(1e6 / 45e9 + 20e-6)


def test_gemm_roofline_reproduces_the_h100_reference_point():
    """H100 SXM: an 8192^3 BF16 GEMM ran at about 798 TFLOP/s of 989 (issue 3's reference point,
    0.807 in the catalog). The roofline with that efficiency and no launch overhead gives 798."""
    from hardware_catalog import default_catalog

    cat = default_catalog()  # the shipped measurements, before calibration replaces them
    eff = [p for p in cat.efficiency if p.accelerator == "h100-sxm5-80gb" and p.quantity == "matmul"
           and p.precision == "bf16" and p.size == 8192][0].value
    n = 8192.0
    t = float(_gemm_time(n, n, n, 989e12 * eff, 3.0e12, 0.0, 2.0))
    assert 2 * n**3 / t / 1e12 == pytest.approx(798, rel=0.002)
    # A matrix-vector product is memory bound: time = bytes / achieved bandwidth.
    t = float(_gemm_time(1.0, n, n, 989e12 * eff, 3.0e12, 0.0, 2.0))
    assert t == pytest.approx(2 * (n + n * n + n) / 3.0e12)


def _h100(**over):
    values = dict(peak_matmul_flops_per_s=989e12, peak_attention_flops_per_s=989e12,
                  matmul_efficiency=0.55, attention_efficiency=0.545,
                  memory_bandwidth_bytes_per_s=3.35e12, memory_bandwidth_efficiency=0.896,
                  memory_bytes=80 * 2**30, tdp_w=700.0,
                  devices_per_node=8.0, scaleup_allreduce_bytes_per_s=450e9,
                  scaleup_alltoall_bytes_per_s=344e9, scaleup_latency_s=5e-6, scaleup_domain=8.0,
                  scaleout_allreduce_bytes_per_s=42.5e9, scaleout_alltoall_bytes_per_s=43e9,
                  scaleout_latency_s=20e-6)
    values.update(over)
    return hardware_from_values(**values)


def test_pipeline_bubble_is_p_minus_1_over_v_micro_batches():
    """Narayanan et al. 2021: bubble = (p - 1)/v micro-batch times."""
    m = ModelColumns.from_spec(preset("llama-2-13b"))
    for pp, vpp, n_micro in ((4, 1, 16), (4, 2, 16), (8, 5, 40)):
        t = training_columns(ParallelLayout(pp=pp, vpp=vpp),
                             TrainingSetup(micro_batch=1, seq_len=4096, global_batch=n_micro))
        r = training_step_time(m, t, _h100())
        micro = (float(r["compute_s"]) + float(r["tp_comm_s"]) + float(r["pp_comm_s"])
                 + float(r["cp_comm_s"]) + float(r["ep_comm_s"])) / n_micro
        assert float(r["bubble_s"]) == pytest.approx((pp - 1) / vpp * micro, rel=1e-9)


def test_bounds_bracket_the_point_estimate_and_components_sum():
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(200):
        tp, pp, dp = (int(rng.choice(v)) for v in ([1, 2, 4, 8], [1, 2, 4], [1, 2, 8, 64]))
        vpp = int(rng.choice([1, 2])) if pp > 1 else 1
        mb = int(rng.choice([1, 2]))
        rows.append(training_columns(
            ParallelLayout(tp=tp, pp=pp, vpp=vpp, dp=dp, sequence_parallel=tp > 1,
                           zero_stage=int(rng.integers(4))),
            TrainingSetup(micro_batch=mb, seq_len=4096, global_batch=mb * dp * 8,
                          recompute=str(rng.choice(["none", "selective", "full"])))))
    t = TrainingColumns.stack(rows)
    r = training_step_time(ModelColumns.from_spec(preset("llama-3.1-70b")), t, _h100(),
                           TimingKnobs(tp_comm_overlap=0.5))
    parts = sum(r[f"{c}_s"] for c in STEP_COMPONENTS)
    assert np.allclose(parts, r["step_time_s"], rtol=1e-12)
    assert np.all(r["step_time_lower_s"] <= r["step_time_s"] * (1 + 1e-12))
    assert np.all(r["step_time_s"] <= r["step_time_upper_s"] * (1 + 1e-12))
    communicates = (t.tp > 1) | (t.pp > 1) | (t.dp > 1)
    assert np.all(r["step_time_lower_s"][communicates] < r["step_time_upper_s"][communicates])
    n = t.n_devices
    assert np.allclose(r["mfu"], r["model_flops_per_step"] / r["step_time_s"] / n / 989e12)
    assert np.all(r["hfu"] >= r["mfu"] * (1 - 1e-12))


def test_overlap_knobs_only_remove_exposed_communication():
    m = ModelColumns.from_spec(preset("llama-3.1-70b"))
    t = training_columns(ParallelLayout(tp=8, dp=4, sequence_parallel=True, zero_stage=1),
                         TrainingSetup(micro_batch=1, seq_len=8192, global_batch=32))
    hidden = training_step_time(m, t, _h100(), TimingKnobs(tp_comm_overlap=1.0))
    exposed = training_step_time(m, t, _h100(), TimingKnobs(tp_comm_overlap=0.0))
    assert float(hidden["tp_comm_s"]) == 0.0 and float(exposed["tp_comm_s"]) > 0
    assert float(hidden["compute_s"]) == float(exposed["compute_s"])
    assert float(exposed["step_time_s"]) - float(hidden["step_time_s"]) == pytest.approx(
        float(exposed["tp_comm_s"]) - float(hidden["tp_comm_s"]), rel=1e-9)


def test_faster_links_and_peaks_never_slow_a_step():
    m = ModelColumns.from_spec(preset("mixtral-8x7b"))
    t = training_columns(ParallelLayout(tp=2, pp=2, dp=8, ep=8, sequence_parallel=True),
                         TrainingSetup(micro_batch=1, seq_len=4096, global_batch=64))
    base = float(training_step_time(m, t, _h100())["step_time_s"])
    assert float(training_step_time(m, t, _h100(scaleout_allreduce_bytes_per_s=400e9,
                                                 scaleout_alltoall_bytes_per_s=400e9))["step_time_s"]) <= base
    assert float(training_step_time(m, t, _h100(matmul_efficiency=0.7))["step_time_s"]) < base


def test_cost_by_hand():
    """1,000 steps of 10 s = 2.7778 h. 12 devices on 8-device instances bill 2 instances = 16
    devices at $2/device-hour: $88.89. Checkpoints: 2 x 100 GB at $0.023/GB-month for 2.7778/730
    months: $0.0175. Energy: 12 x 700 W x 0.8 x 2.7778 h x 1.2 PUE = 22.4 kWh."""
    c = training_run_cost(step_time_s=10.0, step_time_lower_s=9.0, step_time_upper_s=11.0,
                          tokens_per_step=1e6, train_tokens=1e9, n_devices=12,
                          devices_per_instance=8, usd_per_device_hour=2.0, checkpoint_bytes=100e9,
                          checkpoints_retained=2, storage_usd_per_gb_month=0.023, tdp_w=700,
                          power_utilization_fraction=0.8, pue=1.2)
    hours = 1000 * 10 / 3600
    assert float(c["time_total_hours"]) == pytest.approx(hours)
    assert float(c["cost_compute_usd"]) == pytest.approx(16 * hours * 2.0)
    assert float(c["device_hours"]) == pytest.approx(12 * hours)
    assert float(c["cost_storage_usd"]) == pytest.approx(100 * 2 * 0.023 * hours / 730)
    assert float(c["energy_kwh"]) == pytest.approx(12 * 0.7 * 0.8 * hours * 1.2)
    assert float(c["cost_energy_usd"]) == 0.0  # cloud prices include power
    assert float(c["cost_total_usd"]) == pytest.approx(float(c["cost_compute_usd"] + c["cost_storage_usd"]))
    unknown_tdp = training_run_cost(step_time_s=10.0, step_time_lower_s=9.0, step_time_upper_s=11.0,
                                    tokens_per_step=1e6, train_tokens=1e9, n_devices=8,
                                    devices_per_instance=8, usd_per_device_hour=2.0,
                                    checkpoint_bytes=0.0, checkpoints_retained=2,
                                    storage_usd_per_gb_month=0.023, tdp_w=float("nan"),
                                    power_utilization_fraction=0.8, pue=1.2)
    assert np.isnan(float(unknown_tdp["energy_kwh"])) and np.isfinite(float(unknown_tdp["cost_total_usd"]))


def test_engine_marks_configurations_that_do_not_fit():
    table = hardware_table(engine_catalog())
    m = ModelColumns.from_spec(preset("llama-3.1-70b"))
    t = TrainingColumns.stack([
        training_columns(ParallelLayout(dp=8), TrainingSetup(seq_len=4096)),
        training_columns(ParallelLayout(tp=8, pp=4, dp=2, sequence_parallel=True, zero_stage=1),
                         TrainingSetup(seq_len=4096, global_batch=32)),
    ])
    hw = table.columns([table.system_code("hgx-h100-8")] * 2, t.matmul_format, t.attention_format)
    out = evaluate_training(m, t, hw, knob_columns("nemo"))
    assert out["memory_fits"].tolist() == [False, True]
    assert out["memory_capacity_bytes"][0] == 80 * 2**30
