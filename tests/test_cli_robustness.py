"""The command line behaves like a Unix tool: pipes, logs, spreadsheets and absurd search spaces."""

from __future__ import annotations

import subprocess
import sys

import pytest

import costmodel
from costmodel.faces.cli import main as cli_main
from costmodel.specs.scenario import ScenarioError

RUN = [sys.executable, "-m", "costmodel"]


def test_output_closed_early_is_not_a_traceback():
    """``costmodel validate | head -1``: the reader closes the pipe after one line."""
    proc = subprocess.run(" ".join(RUN + ["validate"]) + " | head -1", shell=True, capture_output=True,
                          text=True, timeout=300)
    assert proc.stdout.startswith("id")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_progress_writes_no_carriage_returns_into_a_log():
    """stderr is a file (not a terminal): the multi-chunk search stays silent on it."""
    proc = subprocess.run(RUN + ["plan", "--model", "llama-3.1-8b", "--train-tokens", "1e11", "--top", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr


def test_validate_csv_guards_formula_cells(tmp_path, capsys):
    from costmodel.validation.measurements import default_measurement_files

    src = default_measurement_files()[0].read_text().splitlines()
    header, first = src[0], src[1]
    evil = tmp_path / "evil.csv"
    evil.write_text(header + "\n" + "=HYPERLINK(1)" + first[first.index(","):] + "\n")
    assert cli_main(["validate", str(evil), "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("'=HYPERLINK(1)")


def test_a_search_space_over_the_limit_is_refused_up_front_with_its_size():
    sc = costmodel.Scenario(
        model="llama-3.1-8b", job=costmodel.Job(train_tokens=1e12),
        search=costmodel.SearchSpace(device_counts=list(range(1, 20001)), tp=[1, 2, 4, 8, 16, 32],
                                     pp=list(range(1, 17)), micro_batch=list(range(1, 9))))
    with pytest.raises(ScenarioError, match=r"search space of [\d,]+ configurations .* over the limit"):
        costmodel.plan(sc)
