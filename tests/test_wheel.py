"""A wheel install (not only an editable one) finds the shipped data."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def test_wheel_carries_the_data_and_runs_outside_the_source_tree(tmp_path):
    wheel_dir = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheel_dir), str(REPO)], check=True)
    (wheel,) = wheel_dir.glob("costmodel-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for required in ("hardware_catalog/data/models/llama-3.1-8b.yaml",
                     "hardware_catalog/data/hardware/accelerators.csv",
                     "hardware_catalog/data/calibration/fitted.csv",
                     "hardware_catalog/data/validation/public.csv",
                     "hardware_catalog/data/frameworks.yaml",
                     "costmodel/faces/cli.py", "costmodel/jobs/train.py"):
        assert required in names, required
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("COSTMODEL_DATA_DIR", None)
    code = ("import costmodel, hardware_catalog.paths as p; "
            "print(p.data_dir()); "
            "print(int(costmodel.parameter_count(costmodel.preset('llama-3.1-8b')).total)); "
            "from costmodel.validation.measurements import validate; print(len(validate()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert out[0] == str(target / "hardware_catalog" / "data")
    assert out[1] == "8030261248"
    # Every measurement file of the source tree travels in the wheel (public.csv and the vendor
    # files: 182 + 27 + 27 rows on 2026-12-01).
    import csv as _csv

    shipped = sum(len(list(_csv.DictReader(f.open()))) for f in
                  sorted((Path(__file__).parents[1] / "data" / "validation").glob("*.csv")))
    assert shipped >= 236 and out[2] == str(shipped)
