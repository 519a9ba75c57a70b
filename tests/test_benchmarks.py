"""Every benchmark script runs end to end on tiny shapes and writes the JSON it promises."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_sqrtm_benchmark_quick_run_writes_rows(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "sqrtm.py"),
            "--quick",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads((tmp_path / "sqrtm-cpu.json").read_text())
    methods = {row["method"] for row in result["rows"]}
    assert {
        "NS autograd",
        "NS memory-efficient",
        "eigh",
        "covariance",
        "centring matrix",
    } <= methods
    assert all(row["fwd_bwd_ms"] > 0 for row in result["rows"])
    assert result["machine"]["torch"]
    assert "| NS memory-efficient |" in out.stdout
