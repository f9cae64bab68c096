"""The DDPM family end to end: training and sampling through the CLI, paper sizes\n(resumption and devices: test_conformance.py)."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from conftest import load_config, run_main
from jaxgen import build


@pytest.mark.parametrize("config,count", [("ddpm_cifar10.py:paper", 35_746_307),
                                          ("ddpm_celebahq.py:paper", 113_673_219)])
def test_paper_unet_parameter_counts(config, count):
  out = run_main(f"--config=configs/{config}", "--mode=summary")
  assert json.loads(out.stdout.strip().splitlines()[-1]) == {"unet": count}


@pytest.mark.parametrize("variant", ["tiny", "tiny,cond"])
def test_tiny_training_and_sampling_through_main(tiny_runs, tmp_path, variant):
  wd = tiny_runs("ddpm_mnist", variant)
  steps = int(load_config("ddpm_mnist", variant).train.num_steps)
  for name in (f"step_{steps}", f"forward_process_step_{steps}",
               f"reverse_process_step_{steps}"):
    assert os.path.getsize(os.path.join(wd, "samples", f"{name}.png")) > 0
  result = json.load(open(os.path.join(wd, "eval.json")))
  assert result["num_timesteps"] == 100 and np.isfinite(result["bits_per_dim"])
  assert result["prior_bits_per_dim"] < 1e-3  # L_T vanishes for the linear schedule
  assert result["feature_net"] == "mnist-classifier" and result["num_samples"] == 100
  assert np.isfinite(result["fid"]) and 1.0 <= result["inception_score"] <= 10.0
  if variant == "tiny,cond":
    assert result["class_accuracy"] >= 0.0
    return
  copy = str(tmp_path / "run")
  shutil.copytree(wd, copy)
  os.remove(os.path.join(copy, "samples", f"step_{steps}.png"))
  run_main(f"--config=configs/ddpm_mnist.py:{variant}", f"--workdir={copy}",
           "--mode=sample")
  assert os.path.exists(os.path.join(copy, "samples", f"step_{steps}.png"))


def test_ddpm_needs_symmetric_grey_levels():
  c = load_config("ddpm_mnist", "tiny")
  c.data.scale = "unit"
  with pytest.raises(ValueError, match="scale=symmetric"):
    build.make_trainer(c)


def test_fourier_time_embedding_sees_continuous_time():
  """Random Fourier features are made for t in [0, 1]: the trainer feeds t / T."""
  c = load_config("ddpm_mnist", "tiny")
  c.model.time_embedding = "fourier"
  trainer = build.make_trainer(c)
  params = jax.jit(trainer.init_state)(jax.random.key(0)).params  # jit: eager is slow
  # Random weights everywhere (the output layer starts at zero), so that the output
  # depends visibly on the time embedding.
  # (numpy's generator: jax.random.normal on each shape would compile once per shape)
  rng = np.random.default_rng(2)
  params = jax.tree.map(lambda p: (0.3 * rng.standard_normal(p.shape)).astype(np.float32),
                        params)
  x = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
  t = jax.numpy.array([3, 70])
  unet = jax.jit(lambda p, x, t: trainer.unet.apply({"params": p}, x, t, train=False))
  out = jax.jit(trainer.apply)(params, x, t)
  direct = unet(params, x, t / c.diffusion.num_steps)
  np.testing.assert_allclose(out, direct, rtol=1e-5, atol=1e-5)
  raw = unet(params, x, t.astype(jax.numpy.float32))  # the same program as ``direct``
  assert np.abs(np.asarray(out - raw)).max() > 1e-2 * np.abs(np.asarray(out)).max()
