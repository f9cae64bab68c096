"""The latent DDPM (a DDPM over the latents of a frozen autoencoder stage): its run
records the stage and holds none of its weights, and it generates through the
frozen decoder. Stage errors and changed stages: test_stages.py."""
import os

import jax
import numpy as np

from conftest import restore_run
from jaxgen import build, sharding, stages, train


def test_a_latent_ddpm_run_records_its_stage_and_holds_none_of_its_weights(
    tiny_runs):
  """The latent DDPM (trained over the tiny VAE; resumed bitwise in
  test_conformance.py): its stage parameters are the VAE's EMA parameters, they are
  not in its state or checkpoints, which record the stage's path and digest, and
  generation decodes latents to images through the frozen decoder."""
  vae_stage = tiny_runs("vae_mnist")
  wd = tiny_runs("latent_ddpm_mnist")
  c = stages.run_config(wd)
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(c, mesh)
  vae_state, _ = restore_run(vae_stage, int(stages.run_config(vae_stage).train.num_steps))
  for a, b in zip(jax.tree.leaves(trainer.stages["autoencoder"].params),
                  jax.tree.leaves(vae_state.ema_params)):
    np.testing.assert_array_equal(a, b)
  state, meta = restore_run(wd, int(c.train.num_steps))
  leaves = {x.shape for x in jax.tree.leaves(state)}
  assert not any(s == (8, 8, 1) or len(s) == 4 for s in leaves)  # no conv kernels
  # The latents the DDPM trains on are the VAE's posterior means.
  assert trainer.example_shape == (16,) == trainer.autoencoder.latent_spec.shape
  assert meta["stages"]["autoencoder"]["path"] == os.path.abspath(vae_stage)
  assert meta["stages"]["autoencoder"]["digest"] == stages.digest(vae_state.ema_params)

  x = jax.jit(trainer.generate, static_argnums=2)(state, jax.random.key(0), 4, None,
                                                  train.frozen(trainer))
  assert x.shape == (4, 28, 28, 1) and 0 <= float(x.min()) <= float(x.max()) <= 1
  z = np.zeros((4, 16), np.float32)
  np.testing.assert_allclose(
      trainer.decode(train.frozen(trainer), z),
      trainer.autoencoder.decode(vae_state.ema_params, z), rtol=1e-6)
