"""The autoencoder_kl family and CompVis' first-stage networks, beyond the
conformance suite: paper counts, parity with CompVis' own AutoencoderKL, the
posterior's clamp, the first-stage loss against a direct computation, the stage
protocol, the run's evaluation and pictures.

tests/fixtures/autoencoder_kl_parity.npz comes from
tests/fixtures/make_autoencoder_kl_fixture.py (CompVis/latent-diffusion a506df5's
``AutoencoderKL`` in torch, on the seeded weights of
tests/fixtures/first_stage_random_weights.py, regenerated here with numpy).
"""
from __future__ import annotations

import json
import os
import pathlib

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, load_module
from jaxgen import build, data
from jaxgen.families.adversarial import STATS
from jaxgen.families.autoencoder_kl import losses as kl_losses
from jaxgen.families.base import count_params
from jaxgen.models import autoencoder_kl as aekl

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


rw = load_module("tests/fixtures/first_stage_random_weights.py")


def test_paper_counts_are_exact():
  """REFERENCE.md: kl-f8 83,653,863; VQ-f4 (LDM-VQ-4 CelebA-HQ's) 55,322,782; and the
  paper config builds the kl-f8 network."""
  x = jnp.zeros((1, 256, 256, 3))
  assert count_params(aekl.AutoencoderKL(aekl.KL_F8), x) == 83_653_863
  assert count_params(aekl.VQModel(aekl.VQ_F4), x) == 55_322_782
  trainer = build.make_trainer(load_config("autoencoder_kl_f8", "paper"))
  assert trainer.cfg == aekl.KL_F8
  module, args, kwargs = trainer.networks()["autoencoder"]
  assert count_params(module, *args, **kwargs) == 83_653_863


def test_matches_compvis_autoencoder_kl():
  """Every parameter maps to a CompVis key of the right shape (compvis_key,
  to_compvis), and the posterior and the decoded image agree with CompVis' own."""
  f = np.load(FIXTURES / "autoencoder_kl_parity.npz")
  layout = [(k, tuple(int(s) for s in shape.split(","))) for k, shape in
            zip(f["keys"], f["shapes"])]
  state = rw.state_dict(layout)
  cfg = aekl.FirstStageConfig(**rw.AE_DDCONFIG, embed_dim=rw.AE_EMBED_DIM)
  model = aekl.AutoencoderKL(cfg)
  x = rw.ae_images()
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.asarray(x))["params"]
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
    names = tuple(p.key for p in path)
    torch_value = state[aekl.compvis_key(names)]
    assert aekl.to_compvis(names, np.zeros(leaf.shape)).shape == torch_value.shape
    if names[-1] == "kernel":  # the inverse of to_compvis
      torch_value = (torch_value.transpose(2, 3, 1, 0) if leaf.ndim == 4
                     else torch_value[:, :, 0, 0].T)
    flat[names] = jnp.asarray(torch_value)
  assert sorted(aekl.compvis_key(k) for k in flat) == sorted(state)
  params = flax.traverse_util.unflatten_dict(flat)
  with jax.default_matmul_precision("highest"):
    mean, logvar = aekl.posterior(model.apply({"params": params}, x, method="encode"))
    decoded = model.apply({"params": params}, mean, method="decode")
  np.testing.assert_allclose(mean, f["mean"], rtol=1e-4, atol=2e-5)
  np.testing.assert_allclose(logvar, f["logvar"], rtol=1e-4, atol=2e-5)
  np.testing.assert_allclose(decoded, f["decoded"], rtol=1e-4, atol=5e-5)


def test_posterior_clamps_the_log_variance_and_its_kl():
  moments = jnp.asarray([[[[0.5, -2.0, -50.0, 30.0]]]])  # mean (0.5, -2), logvar
  mean, logvar = aekl.posterior(moments)
  np.testing.assert_array_equal(logvar, [[[[-30.0, 20.0]]]])
  kl = 0.5 * np.sum(np.square([0.5, -2.0]) + np.exp([-30.0, 20.0]) - 1 - np.array(
      [-30.0, 20.0]))
  assert float(kl_losses.kl_loss(mean, logvar)) == pytest.approx(kl, rel=1e-6)


@pytest.fixture(scope="module")
def tiny():
  c = load_config("autoencoder_kl_mnist", "tiny")
  c.loss.update(disc_start=3, learn_logvar=True)
  trainer = build.make_trainer(c)
  state = jax.jit(trainer.init_state)(jax.random.key(0))
  # a non-zero logvar, so that its place in the nll is tested
  state = state.replace(params={**state.params, "logvar": {"logvar": jnp.asarray(-0.7)}})
  batch = data.spread_batch(data.get_source(c.data, "train"), c.data, 8, 0)
  return c, trainer, state, jnp.asarray(batch["image"])


def _direct(trainer, state, images, rng, step):
  """The first-stage loss, computed here without the trainer's functions: the
  autoencoder's loss, its gradient, and the discriminator's loss."""
  lc, ae_net, disc = trainer.loss_cfg, trainer.autoencoder, trainer.discriminator
  x = 2.0 * images - 1.0
  k_ae, k_d = jax.random.split(rng)
  k_sample, _ = jax.random.split(k_ae)
  stats = state.extra[STATS]["discriminator"]
  lv = state.params["logvar"]["logvar"]

  def forward(p, key):
    moments = ae_net.apply({"params": p}, x, method="encode")
    mean, logvar = jnp.split(moments, 2, -1)
    logvar = jnp.clip(logvar, -30, 20)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
    return ae_net.apply({"params": p}, z, method="decode"), mean, logvar

  def d_logits(p_d, s, img):
    return disc.apply({"params": p_d, STATS: s}, img, train=True, mutable=[STATS])

  def nll(p, logvar):
    x_rec = forward(p, k_sample)[0]
    return jnp.sum(jnp.abs(x - x_rec) / jnp.exp(logvar) + logvar) / x.shape[0]

  def kl(p):
    _, mean, logvar = forward(p, k_sample)
    return jnp.mean(0.5 * jnp.sum(mean ** 2 + jnp.exp(logvar) - 1 - logvar, (1, 2, 3)))

  def g(p):
    logits, _ = d_logits(state.params["discriminator"], stats, forward(p, k_sample)[0])
    return -jnp.mean(logits)

  p = state.params["autoencoder"]
  last = lambda grads: grads["decoder"]["conv_out"]["kernel"]
  g_nll, g_g = last(jax.grad(nll)(p, lv)), last(jax.grad(g)(p))
  d_weight = jnp.linalg.norm(g_nll) / (jnp.linalg.norm(g_g) + 1e-4)
  d_weight = jnp.clip(d_weight, 0, 1e4) * lc.disc_weight
  factor = jnp.where(step < lc.disc_start, 0.0, lc.disc_factor)
  total = lambda p, lv: nll(p, lv) + lc.kl_weight * kl(p) + d_weight * factor * g(p)
  loss, (grad, grad_lv) = jax.value_and_grad(total, argnums=(0, 1))(p, lv)

  # The discriminator's step: the hinge loss on x and a new reconstruction by the
  # autoencoder it is given, times the factor.
  k_sample, _ = jax.random.split(k_d)
  x_rec = forward(p, k_sample)[0]
  real, s = d_logits(state.params["discriminator"], stats, x)
  fake, _ = d_logits(state.params["discriminator"], s[STATS], x_rec)
  hinge = 0.5 * (jnp.mean(jax.nn.relu(1 - real)) + jnp.mean(jax.nn.relu(1 + fake)))
  return loss, grad, grad_lv, d_weight, factor, factor * hinge


def test_the_first_stage_loss_is_lpips_with_discriminator(tiny):
  """nll with the learned logvar, KL weight 1e-6, the hinge terms, the adaptive weight
  from explicit gradient norms at the decoder's last layer (without a gradient of its
  own), and disc_start switching both players' GAN terms: at step 2, before
  disc_start = 3, and at step 3."""
  c, trainer, state, images = tiny
  rng = jax.random.key(5)
  k_ae, k_d = jax.random.split(rng)
  direct = jax.jit(lambda state: _direct(trainer, state, images, rng, state.step))

  @jax.jit
  def mine(state):
    players = {p: state.params[p] for p in ("autoencoder", "logvar")}
    stats = state.extra[STATS]["discriminator"]
    (loss, (metrics, _)), grads = jax.value_and_grad(
        trainer.autoencoder_loss, has_aux=True)(
            players, 2.0 * images - 1.0, k_ae, state.step,
            state.params["discriminator"], stats, {})
    d_grads, _, d_metrics = trainer.discriminator_step(
        state.params["autoencoder"], state.params["discriminator"], stats,
        2.0 * images - 1.0, k_d, state.step)
    return loss, metrics, grads, d_grads, d_metrics

  flat = lambda t: np.concatenate([np.ravel(v) for v in jax.tree.leaves(t)])
  for step in (2, 3):
    at = state.replace(step=jnp.asarray(step))
    loss, grad, grad_lv, d_weight, factor, d_loss = direct(at)
    my_loss, metrics, grads, d_grads, d_metrics = mine(at)
    assert float(factor) == (0.0 if step < c.loss.disc_start else 1.0)
    assert float(my_loss) == pytest.approx(float(loss), rel=1e-5)
    assert float(metrics["d_weight"]) == pytest.approx(float(d_weight), rel=1e-4)
    assert float(metrics["disc_factor"]) == float(factor)
    np.testing.assert_allclose(flat(grads["autoencoder"]), flat(grad), rtol=2e-3,
                               atol=1e-3 * np.abs(flat(grad)).max())
    assert float(grads["logvar"]["logvar"]) == pytest.approx(float(grad_lv), rel=1e-4)
    assert float(d_metrics["d_loss"]) == pytest.approx(float(d_loss), rel=1e-5,
                                                       abs=1e-7)
    d_norm = np.linalg.norm(flat(d_grads))
    assert (d_norm == 0.0) if step < c.loss.disc_start else (d_norm > 0.0)


def test_a_frozen_logvar_gets_no_gradient(tiny):
  c, trainer, state, images = tiny
  trainer.loss_cfg.learn_logvar = False
  try:
    players = {p: state.params[p] for p in ("autoencoder", "logvar")}
    grad = jax.jit(jax.grad(lambda players: trainer.autoencoder_loss(
        players, 2.0 * images - 1.0, jax.random.key(0), state.step,
        state.params["discriminator"], state.extra[STATS]["discriminator"], {})[0]))
    assert float(grad(players)["logvar"]["logvar"]) == 0.0
  finally:
    trainer.loss_cfg.learn_logvar = True


def test_the_stage_protocol(tiny):
  """encode: the posterior mean, of latent_spec's shape; decode: images in [0, 1];
  generate with images reconstructs them; wrong shapes are refused."""
  c, trainer, state, images = tiny
  params = trainer.stage_params(state)
  assert trainer.num_codes == 0 and trainer.latent_spec.shape == (16, 16, 4)

  @jax.jit
  def protocol(params, images):
    z = trainer.encode(params, images)
    return (z, trainer.posterior(params, images)[0], trainer.decode(params, z),
            trainer.generate(state, jax.random.key(0), 4, {"image": images}))

  z, mean, x, recon = protocol(params, images)
  np.testing.assert_array_equal(z, mean)
  assert z.shape == (len(images), *trainer.latent_spec.shape)
  assert x.shape == images.shape and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0
  np.testing.assert_allclose(recon, x[:4], rtol=1e-6)
  with pytest.raises(ValueError, match="trained on 32x32x1"):
    trainer.encode(params, jnp.zeros((1, 28, 28, 1)))
  with pytest.raises(ValueError, match="decodes latents of shape"):
    trainer.decode(params, jnp.zeros((1, 8, 8, 4)))


@pytest.mark.parametrize("field,value,message", [
    ("resolution", 64, "resolution=64, but the images are 32x32"),
    ("in_channels", 3, "the images have 1 channels"),
    ("ch", 24, "GroupNorm's 32 groups"),
])
def test_bad_model_fields_are_refused(field, value, message):
  c = load_config("autoencoder_kl_mnist", "tiny")
  c.model[field] = value
  with pytest.raises(ValueError, match=message):
    build.make_trainer(c)


def test_the_tiny_run_evaluates_reconstructions(tiny_runs):
  """eval.json has the reconstruction metrics, rFID and the scale factor; the run
  leaves a reconstructions picture (shared with the conformance suite's run)."""
  workdir = tiny_runs("autoencoder_kl_mnist")
  result = json.load(open(os.path.join(workdir, "eval.json")))
  for key in ("l1", "psnr", "ssim", "kl", "fid", "latent_std", "scale_factor",
              "posterior_std", "latent_sample_std"):
    assert np.isfinite(result[key]), key
  assert result["scale_factor"] == pytest.approx(1.0 / result["latent_std"])
  assert result["latent_sample_std"] >= result["latent_std"]
  assert "reconstructions_step_4.png" in os.listdir(os.path.join(workdir, "samples"))


def test_vq_model_quantises_and_decodes_codes():
  cfg = aekl.FirstStageConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=3,
                              double_z=False, embed_dim=3, resolution=16,
                              in_channels=3, out_ch=3, n_embed=16)
  model = aekl.VQModel(cfg)
  x = jnp.asarray(rw.ae_images())

  @jax.jit
  def run(x):
    params = model.init(jax.random.key(0), x)["params"]
    apply = lambda *a, **k: model.apply({"params": params}, *a, **k)
    quant, codes = apply(apply(x, method="encode"), method="quantize_latents")
    return quant, codes, apply(codes, method="decode_code"), apply(x)

  quant, codes, from_codes, reconstruction = run(x)
  assert codes.shape == (2, 8, 8) and quant.shape == (2, 8, 8, 3)
  np.testing.assert_allclose(from_codes, reconstruction, rtol=1e-5, atol=1e-6)
  assert aekl.compvis_key(("quantize", "codebook")) == "quantize.embedding.weight"
