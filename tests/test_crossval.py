"""Leave-one-source-out cross-validation and the data-driven calibration (costmodel.validation.calibration)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.faces.cli import main
from costmodel.validation.calibration import (MIN_FIT_ROWS, RATIO_GRID, _base_batch, _fit, _grid_search,
                                              _rows, cross_validate, source_key)
from hardware_catalog.paths import data_dir


@pytest.mark.parametrize("source, key", [
    ("NVIDIA/dgxc-benchmarking @35a9aec (release v24.11.1) llama3.1/README_70b.md", "NVIDIA/dgxc-benchmarking @35a9aec"),
    ("AI-Hypercomputer/tpu-recipes @c8cfe2f6 training/trillium/Llama2-70B-MaxText/README.md", "AI-Hypercomputer/tpu-recipes @c8cfe2f6"),
    ("mosaicml/llm-foundry scripts/train/benchmarking/README.md @49521837 (2024-04-22)", "mosaicml/llm-foundry @49521837"),
    ("pytorch/torchtitan benchmarks/llama3_h100_202412_torchtitan.md (Table 1)", "pytorch/torchtitan benchmarks/llama3_h100_202412_torchtitan.md"),
    ("Korthikanti et al. 2022 'Reducing Activation Recomputation' (arXiv 2205.05198) Table 4", "Korthikanti et al. 2022"),
    ("NeMo Framework user guide 'Performance' page (docs.nvidia.com/...)", "NeMo Framework user guide"),
])
def test_source_key_names_the_publication(source, key):
    """Two releases of one repository are two sources; one repository's tables at one commit are one."""
    assert source_key(source) == key


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(list(RATIO_GRID)), min_size=1, max_size=4),
       st.integers(min_value=2, max_value=6))
def test_grid_search_finds_each_parameters_optimum(optima, coarse_every):
    """Rows depend on one parameter each; the loss |log(v / optimum_j)| of parameter j's rows is
    minimised exactly at optimum_j, which the coarse-then-fine search must return for every j."""
    n = len(optima)
    param = np.repeat(np.arange(n), 3)
    target = np.array(optima)[param]

    def abs_log_ratio(v):
        return np.abs(np.log(v / target))

    masks = [param == j for j in range(n)]
    assert _grid_search(abs_log_ratio, param, masks, RATIO_GRID, coarse_every) == pytest.approx(optima)


@pytest.fixture(scope="module")
def cv():
    return cross_validate()


def test_cross_validation_columns_and_untouched_rows(cv):
    """Rows whose source sets no parameter (memory, serving, the H100 variant rows) are predicted by
    a fit that never saw them: held-out = in-sample. Rows of fitted sources are refitted."""
    ok = cv["status"] == "ok"
    assert {"source", "cv_predicted", "cv_rel_error"} <= set(cv.columns)
    untouched = ok & cv["category"].isin(["train_memory", "infer_throughput", "infer_latency"])
    assert np.allclose(cv.loc[untouched, "cv_predicted"], cv.loc[untouched, "predicted"].astype(float))
    tpu = cv[cv["source"] == "AI-Hypercomputer/tpu-recipes @c8cfe2f6"]
    assert len(tpu) == 15 and (tpu["cv_predicted"] != tpu["predicted"]).all()


def test_cross_validated_error_is_reported_and_bounded(cv):
    """Achieved (README): exact-hardware training throughput 6.2% in-sample, 9.6% cross-validated
    (119 rows); memory 5.3% both (nothing fitted to memory). Bounds slightly looser."""
    ok = cv["status"] == "ok"
    thr = ok & (cv["category"] == "train_throughput") & ~cv["hardware_variant"].astype(bool)
    assert thr.sum() == 119
    assert (cv.loc[thr, "rel_error"].abs().median() * 100) <= 6.8
    assert (cv.loc[thr, "cv_rel_error"].abs().median() * 100) <= 10.5
    mem = ok & (cv["category"] == "train_memory")
    assert (cv.loc[mem, "cv_rel_error"].abs().median() * 100) <= 6.0


def test_a_part_left_without_rows_transfers_from_its_kind():
    """Leaving out tpu-recipes @c8cfe2f6 removes every TPU v6e row: v6e then takes the TPU kind's
    ratio (v5p, still fitted on the rows of other tpu-recipes commits); trn1 with its Neuron table
    of December 2024 left out keeps 2 rows, fewer than MIN_FIT_ROWS, and takes the ASIC kind's
    ratio, which no other ASIC sets, so the mean of every fitted die."""
    base, batch = _base_batch()
    rows = _rows(batch, base)
    full = _fit(batch, rows)
    assert full.ratio("tpu-v6e", "tpu", "16-bit")[1] == "fit"
    assert full.ratio("tpu-v5e", "tpu", "16-bit") == (
        pytest.approx(np.mean([full.ratios[("tpu-v6e", "16-bit")], full.ratios[("tpu-v5p", "16-bit")]])),
        "transfer tpu 16-bit")
    held = _fit(batch, rows, exclude={"AI-Hypercomputer/tpu-recipes @c8cfe2f6"})
    assert held.ratio("tpu-v6e", "tpu", "16-bit") == (held.ratios[("tpu-v5p", "16-bit")], "transfer tpu 16-bit")
    held = _fit(batch, rows, exclude={"aws-neuron/aws-neuron-sdk @752349fd"})
    value, how = held.ratio("trn1", "asic", "16-bit")
    assert how == "transfer any 16-bit"
    assert value == pytest.approx(np.mean([v for (d, g), v in held.ratios.items() if g == "16-bit"]))
    # Every fitted ratio rests on at least MIN_FIT_ROWS rows.
    assert all(len(ids) >= MIN_FIT_ROWS for ids in held.ratio_rows.values())


def test_cli_validate_cv_json(capsys):
    """`costmodel validate --cv --format json` adds source and the held-out prediction per row."""
    path = data_dir() / "validation" / "vendor_other.csv"
    assert main(["validate", "--cv", "--format", "json", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 36
    assert all({"source", "cv_predicted", "cv_rel_error"} <= set(r) for r in data)
    assert main(["validate", "--cv", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cv_median_ape" in out and "neuronx" in out and "tpu-v6e" in out


def test_plans_say_what_their_gemm_efficiency_rests_on():
    """The plan column efficiency_basis: A100 bf16 and H100 fp8 are fitted on measured runs of their
    dies; MI300X (no public training row) is transferred; the CLI prints it for the shown parts."""
    from costmodel.jobs.train import PLAN_COLUMNS, efficiency_basis
    from costmodel.tables.catalog import engine_catalog

    basis = efficiency_basis(engine_catalog(), ["a100-sxm4-80gb", "h100-sxm5-80gb", "mi300x-192gb", "tpu-v5e"],
                             ["bf16", "fp8", "bf16", "bf16"])
    assert basis[0].startswith("fitted") and basis[1].startswith("fitted")
    assert basis[2].startswith("transferred") and basis[3].startswith("transferred")
    assert "efficiency_basis" in PLAN_COLUMNS


def test_cv_and_calibrate_on_files_with_nothing_to_fit(tmp_path, capsys):
    """A user file without training rows (one serving row) cross-validates to its in-sample
    figures; `calibrate` on a file with no fittable rows exits 2 naming the rule and writes nothing."""
    public = (data_dir() / "validation" / "public.csv").read_text().splitlines()
    header = public[0]
    serving = tmp_path / "serving.csv"
    serving.write_text("\n".join([header, next(l for l in public if l.startswith("IT-001,"))]) + "\n")
    one = tmp_path / "one.csv"
    one.write_text("\n".join([header, next(l for l in public if l.startswith("TT-010,"))]) + "\n")
    cv = cross_validate([serving])
    assert len(cv) == 1 and cv["cv_rel_error"].iloc[0] == pytest.approx(cv["rel_error"].iloc[0])
    for path in (serving, one):
        out = tmp_path / "fit" / "fitted.csv"
        assert main(["calibrate", "--write", str(out), str(path)]) == 2
        assert "nothing to fit" in capsys.readouterr().err and not out.exists()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_source_key_of_any_text_is_deterministic_and_nonempty(text):
    """Any source text (a user's file) gives a key: deterministic, non-empty unless the text is blank."""
    key = source_key(text)
    assert isinstance(key, str) and key == source_key(text)
    assert bool(key) == bool(text.strip())


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True),
       st.from_regex(r"[0-9a-f]{7,12}", fullmatch=True), st.text(max_size=60))
def test_rows_of_one_repository_commit_share_a_source(owner, repo, commit, tail):
    """Whatever follows the commit (path, table, date), rows of one repository at one commit are one
    source, and another commit is another source."""
    key = source_key(f"{owner}/{repo} @{commit} {tail}")
    assert key == f"{owner}/{repo} @{commit}"
    assert source_key(f"{owner}/{repo} @{commit}0 {tail}") != key


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_framework_cell_is_a_profile_or_an_error_naming_the_column(cell):
    """Any framework cell: a profile of data/frameworks.yaml (listed among the defaults when read
    from a stack's name), or a ValueError that names the column; never another exception."""
    from costmodel.specs.assumptions import frameworks
    from costmodel.validation.measurements import Row, row_framework

    row = Row("f.csv", 2, {"accelerator": "h100-sxm5-80gb", "source": "blog", "framework": cell})
    try:
        name = row_framework(row)
    except ValueError as exc:
        assert "framework" in str(exc)
    else:
        assert name in frameworks()
