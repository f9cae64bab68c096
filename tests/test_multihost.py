"""Two processes on this machine (JAX's distributed runtime, coordinator on
127.0.0.1, 2 CPU devices each) train as one process with 4 devices: the same
parameters and sample metrics, one set of checkpoints that both resume from, and
metrics.jsonl and the pictures written once, by process 0."""
import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, fake_devices, metric_lines, restore_run

# dcgan_mnist:tiny: BatchNorm in both players (statistics over the global batch), FID
# and IS through the feature network, and no random preprocessing (a process draws its
# rows' preprocessing randomness from its own stream, so random flips or binarisation
# would differ from a 1-process run). Not gan_mnist: its MLP generator has a bias
# before BatchNorm, whose gradient is rounding noise that Adam scales up to the
# learning rate, so that bias depends on the order of the cross-device sums.
CONFIG = ["--config=configs/dcgan_mnist.py:tiny", "--config.train.num_steps=4",
          "--config.train.checkpoint_every=2", "--config.train.log_every=1",
          "--config.eval.sample_batch_size=20"]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices):
  return {**os.environ, **fake_devices(devices)}


def _main(*args):
  return [sys.executable, "-m", "jaxgen.main", *CONFIG, *args]


def _two_processes(workdir):
  port = _free_port()
  procs = [subprocess.Popen(
      _main(f"--workdir={workdir}", "--distributed",
            f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
            f"--process_id={i}"),
      cwd=REPO, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = []
  for p in procs:
    try:
      outs.append(p.communicate(timeout=600))
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-4000:]


def _close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64),
                               rtol=1e-4, atol=1e-5)


def test_two_processes_train_resume_and_evaluate_as_one(tmp_path):
  single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
  proc = subprocess.run(_main(f"--workdir={single}"), cwd=REPO, env=_env(4),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  _two_processes(multi)

  a, meta_a = restore_run(single, 4)
  b, meta_b = restore_run(multi, 4)
  assert meta_a == meta_b
  _close(a, b)
  # One set of checkpoints, metric lines and pictures, written once.
  assert sorted(os.listdir(os.path.join(multi, "checkpoints"))) == ["2", "4"]
  lines = metric_lines(multi)
  assert [line["step"] for line in lines] == [1, 2, 3, 4]
  for x, y in zip(lines, metric_lines(single)):
    assert x.keys() == y.keys()
    for key in x:
      assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-5), key
  assert (sorted(os.listdir(os.path.join(multi, "samples"))) ==
          sorted(os.listdir(os.path.join(single, "samples"))))
  # Sample metrics through the feature network, gathered over both processes.
  ea = json.load(open(os.path.join(single, "eval.json")))
  eb = json.load(open(os.path.join(multi, "eval.json")))
  assert ea["num_samples"] == eb["num_samples"] == 100
  for key in ("fid", "inception_score", "d_real", "d_fake"):
    assert eb[key] == pytest.approx(ea[key], rel=1e-3), key

  # Both processes resume from the checkpoint at step 2 to the same state.
  shutil.rmtree(os.path.join(multi, "checkpoints", "4"))
  os.remove(os.path.join(multi, "eval.json"))
  _two_processes(multi)
  c, _ = restore_run(multi, 4)
  for x, y in zip(jax.tree.leaves(b), jax.tree.leaves(c)):
    np.testing.assert_array_equal(x, y)
