"""benchmarks/gpu_check.sh, the run made whenever a GPU machine is lent, keeps working: here it runs on the CPU
with small sizes and must write every step's results."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu_with_small_sizes(tmp_path):
    pytest.importorskip("torch")
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path), "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "log").read_text()
    assert "every step passed" in log
    for name in ("label_attention_quick.json", "gcn_propagate.json", "dynamic_graph.json", "deep_epoch_quick.json"):
        assert (tmp_path / name).is_file(), name
    epoch = json.loads((tmp_path / "deep_epoch_quick.json").read_text())["results"]
    assert epoch[0]["device"] == "cpu" and epoch[0]["epoch_s"] > 0 and epoch[0]["docs_per_s"] > 0


def test_gpu_check_refuses_an_unknown_device(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path), "--device", "tpu"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "expected cuda or cpu" in proc.stderr
