"""Latent diffusion (a DDPM over the latents of a frozen autoencoder stage): its run
records the stage and holds none of its weights and generates through the frozen
decoder; the scale factor, conditioning dropout, guidance and the refusals. Stage
errors and changed stages in general: test_stages.py."""
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, restore_run, run_main
from jaxgen import build, data, errors, sharding, stages, train


def test_a_latent_diffusion_run_records_its_stage_and_holds_none_of_its_weights(
    tiny_runs):
  """The MLP latent diffusion (trained over the tiny VAE; resumed bitwise in
  test_conformance.py): its stage parameters are the VAE's EMA parameters, they are
  not in its state or checkpoints, which record the stage's path and digest, and
  generation decodes latents to images through the frozen decoder."""
  vae_stage = tiny_runs("vae_mnist")
  wd = tiny_runs("ldm_vae_mnist")
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


# ---------------------------------------------------------------------------------
# The text-conditional U-Net over the KL autoencoder (ldm_mnist:tiny).

@pytest.fixture(scope="module")
def ldm(tiny_runs):
  wd = tiny_runs("ldm_mnist")
  c = stages.run_config(wd)
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(c, mesh)
  state, _ = train.restore_latest(trainer, c, wd, mesh)
  return wd, c, trainer, state, train.frozen(trainer)


def _perturbed(params, rng):
  """Parameters with every leaf moved by noise: the zero-initialised proj_out layers
  of a 4-step run would hide the context."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(rng, len(leaves))
  return jax.tree.unflatten(tree, [x + 0.05 * jax.random.normal(k, x.shape)
                                   for x, k in zip(leaves, keys)])


def test_the_scale_factor_is_one_over_the_std_of_the_training_latents(ldm):
  wd, c, trainer, _, frozen = ldm
  source = data.get_source(c.data, "train")
  idx = np.unique(np.linspace(0, len(source) - 1, c.latent.scale_examples).astype(int))
  images = data.preprocess.process(source[idx], c.data, np.random.default_rng(0),
                                   train=False, indices=idx)["image"]
  stage = trainer.stages["autoencoder"]
  mean, _ = stage.trainer.posterior(stage.params, images)
  z = np.asarray(jax.jit(trainer.encode_latents)(frozen["autoencoder"], images))
  # The KL stage's latents are its posterior's mean (its mode).
  np.testing.assert_allclose(z, np.asarray(mean), rtol=1e-4, atol=2e-5)  # jit vs eager
  assert trainer.scale_factor == pytest.approx(1 / z.std(), rel=1e-5)
  meta = restore_run(wd, int(c.train.num_steps))[1]
  assert meta["family"] == {"latent.scale_factor": trainer.scale_factor}


def test_conditioning_is_dropped_to_the_empty_caption_at_its_rate(ldm):
  _, c, trainer, _, _ = ldm
  tokens = jnp.asarray(data.get_source(c.data, "train").arrays["text"][:4000])
  out = np.asarray(trainer.drop_conditioning({"text": tokens}, jax.random.key(5))["text"])
  null = trainer.tokenizer.encode([""], tokens.shape[1])[0]
  dropped = (out == null).all(1)
  assert dropped.mean() == pytest.approx(c.model.p_uncond, abs=0.015)  # sd 0.005
  np.testing.assert_array_equal(out[~dropped], np.asarray(tokens)[~dropped])
  assert trainer.tokenizer.decode_batch(null[None]) == [""]


def test_class_conditioning_drops_to_the_null_class():
  c = load_config("ldm_mnist", "tiny,class")
  labels = jnp.asarray(np.arange(4000) % 10)
  trainer = object.__new__(build.registry.family_class("ldm"))
  trainer.conditioning, trainer.num_classes, trainer.p_uncond = "class", 10, 0.25
  out = np.asarray(trainer.drop_conditioning({"label": labels}, jax.random.key(1))["label"])
  assert ((out == 10).mean()) == pytest.approx(0.25, abs=0.025)
  np.testing.assert_array_equal(out[out != 10], np.asarray(labels)[out != 10])
  assert c.model.conditioning == "class"


def test_guidance_mixes_the_two_predictions_and_scale_1_is_conditional(ldm):
  _, c, trainer, state, frozen = ldm
  params = _perturbed(state.ema_params, jax.random.key(2))
  tokens = jnp.asarray(data.get_source(c.data, "test").arrays["text"][:4])
  z = jax.random.normal(jax.random.key(3), (4, *trainer.example_shape))
  t = jnp.array([0, 10, 50, 99])
  cond = trainer.apply(params, z, t, {"text": tokens}, frozen)
  uncond = trainer.apply(params, z, t, trainer.null_conditioning({"text": tokens}), frozen)
  assert float(jnp.abs(cond - uncond).max()) > 1e-3  # the caption matters
  for scale in (1.0, 4.0, jnp.array([1.0, 2.0, 4.0, 8.0])):
    got = trainer.model_fn(params, frozen, {"text": tokens}, scale)(z, t)
    s = jnp.asarray(scale).reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(got, uncond + s * (cond - uncond), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(trainer.model_fn(params, frozen, {"text": tokens}, 1.0)(z, t),
                             cond, rtol=1e-6)


def test_the_run_evaluates_at_each_guidance_scale_and_draws(ldm):
  wd, c, _, _, _ = ldm
  import json
  with open(os.path.join(wd, "eval.json")) as f:
    result = json.load(f)
  for s in c.eval.guidance_scales:
    assert f"fid_guidance_{s:g}" in result
    assert f"caption_accuracy_digit_guidance_{s:g}" in result
  assert result["caption_accuracy_real_position"] == 1.0
  assert result["scale_factor"] > 0
  assert f"{c.diffusion.parameterization}_mse" in result  # named by the target
  step = c.train.num_steps
  for name in (f"step_{step}.png", f"captions_step_{step}.png",
               f"reconstructions_step_{step}.png"):
    assert os.path.isfile(os.path.join(wd, "samples", name))


def test_refusals(ldm, tiny_runs):
  _, c, trainer, _, _ = ldm

  def make(**changes):
    cfg = load_config("ldm_mnist", "tiny")
    cfg.stages.update(c.stages)  # the run's autoencoder and CLIP
    for path, value in changes.items():
      *parents, leaf = path.split(".")
      node = cfg
      for p in parents:
        node = node[p]
      node[leaf] = value
    return build.make_trainer(cfg)

  with pytest.raises(errors.ConfigError, match="trained without conditioning dropout"):
    make(**{"model.p_uncond": 0.0})
  with pytest.raises(errors.ConfigError, match="unet.context_dim=32, but the text "
                                               "states are 16 wide"):
    make(**{"model.unet.context_dim": 32})
  with pytest.raises(errors.StageError, match="a 'dvae' run, but the autoencoder stage "
                                              "needs the VectorAutoencoder protocol"):
    make(**{"stages.autoencoder": tiny_runs("dvae_mnist"), "data.name": "mnist5k",
            "data.scale": "unit"})


def test_a_resume_with_another_scale_factor_is_refused(ldm, tmp_path):
  wd = str(tmp_path / "run")
  shutil.copytree(ldm[0], wd)
  c = ldm[1]
  proc = run_main("--config=configs/ldm_mnist.py:tiny", f"--workdir={wd}",
                  f"--config.stages.autoencoder={c.stages.autoencoder}",
                  f"--config.stages.clip={c.stages.clip}",
                  "--config.latent.scale_factor=0.5", "--config.train.num_steps=6",
                  check=False)
  assert proc.returncode != 0
  assert "latent.scale_factor" in proc.stderr and "0.5" in proc.stderr


def test_sampling_does_not_clip_latents_to_the_image_range(ldm):
  """CompVis' U-Net starts with a zero output layer: eps = 0, so deterministic DDIM
  maps x_T to x_T / sqrt(alpha-bar_T), far outside [-1, 1]; clipping the predicted x0
  to the image range (as pixel-space DDPM does) would bound it by 1."""
  _, c, trainer, _, frozen = ldm
  params = trainer.init_params(jax.random.key(0))
  tokens = jnp.asarray(data.get_source(c.data, "test").arrays["text"][:2])
  z, _ = trainer.run_sampler(params, jax.random.key(1), 2, {"text": tokens}, 1.0, frozen)
  assert float(jnp.abs(z).max()) > 3.0
