"""experiments/device_perf.py and accumulate_cost.py, the prepared runs for a lent
accelerator, as CPU smoke runs of tiny configs: the rows they report, the bfloat16
probe, and the JSON left after each row."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "experiments"))
import device_perf  # noqa: E402


def test_peaks_by_device_kind():
  assert device_perf.peak("NVIDIA H200", "bfloat16") == 989e12
  assert device_perf.peak("NVIDIA H200", "float32") == 494e12
  assert device_perf.peak("TPU v4", "float32") == 275e12
  assert device_perf.peak("cpu", "float32") is None


def test_tiny_run_reports_the_training_rows(tmp_path):
  out = tmp_path / "device_perf.json"
  rows = "dcgan_train_bfloat16"  # the quickest
  proc = subprocess.run(
      [sys.executable, "experiments/device_perf.py", "--tiny", f"--rows={rows}",
       f"--json_out={out}"], cwd=REPO, capture_output=True, text=True, timeout=300,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  # The CPU sums bfloat16 in bfloat16 (a bias gradient 96% off); the loop's rewrite
  # brings it to float32's rounding.
  assert result["bias_gradient_error_bfloat16"] > 0.5
  assert result["bias_gradient_error_bfloat16_accumulated"] < 1e-3
  for name in rows.split(","):
    row = result[name]
    assert row["dtype"] == "bfloat16" and row["images_per_sec"] > 0
    assert row["compile_s"] > 0 and row["flops_per_call"] > 0
    assert row["fraction_of_peak"] is None  # no peak known for the CPU
  with pytest.raises(subprocess.CalledProcessError):
    subprocess.run([sys.executable, "experiments/device_perf.py", "--tiny",
                    "--rows=nonsense"], cwd=REPO, check=True, capture_output=True,
                   timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_accumulation_cost_times_the_three_ways():
  proc = subprocess.run(
      [sys.executable, "experiments/accumulate_cost.py",
       "--config=configs/dcgan_celeba.py:tiny", "--batch_size=4", "--rounds=2",
       "--iters=1"], cwd=REPO, capture_output=True, text=True, timeout=300,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert [line.split("  ")[0].strip() for line in lines] == [
      "sums+products", "sums only", "no rewrite"], lines
  assert all("img/s" in line and "rounds [" in line for line in lines)
