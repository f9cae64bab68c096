"""The DALL-E dVAE family: the logit-Laplace likelihood, the KL to the uniform prior,
the temperature and KL-weight schedules, the paper counts, and a trained stage."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen import build, data, sharding, stages
from jaxgen.families.dvae import losses
from jaxgen.families.dvae import trainer as dvt
from jaxgen.errors import ConfigError
from jaxgen.families.base import count_params
from jaxgen.stages import Autoencoder


def _logit_laplace_numpy(x, mu, log_b):
  b = np.exp(log_b)
  logit = np.log(x / (1 - x))
  return np.log(np.exp(-np.abs(logit - mu) / b) / (2 * b * x * (1 - x)))


def test_logit_laplace_matches_numpy_and_integrates_to_one_on_the_mapped_interval():
  rng = np.random.default_rng(0)
  x = losses.map_pixels(rng.uniform(size=(4, 5, 5, 3)))
  mu, log_b = rng.normal(size=x.shape), rng.normal(size=x.shape) * 0.5 - 1.0
  ours = losses.logit_laplace_log_prob(jnp.asarray(x, jnp.float32), jnp.asarray(mu, jnp.float32),
                                       jnp.asarray(log_b, jnp.float32))
  ref = _logit_laplace_numpy(np.asarray(x, np.float64), mu, log_b).reshape(4, -1).sum(-1)
  np.testing.assert_allclose(ours, ref, rtol=1e-5)
  # A density on (0, 1): a location inside the mapped range and a small scale put
  # (nearly) all its mass on (eps, 1 - eps).
  eps = losses.LOGIT_LAPLACE_EPS
  grid = np.linspace(eps, 1 - eps, 200_001)
  for loc, log_scale in ((0.3, math.log(0.1)), (-1.0, math.log(0.05))):
    logp = losses.logit_laplace_log_prob(
        jnp.asarray(grid[:, None], jnp.float32), jnp.full((len(grid), 1), loc),
        jnp.full((len(grid), 1), log_scale))
    integral = np.trapezoid(np.exp(np.asarray(logp, np.float64)), grid)
    assert integral == pytest.approx(1.0, abs=2e-3)
  np.testing.assert_allclose(losses.unmap_pixels(losses.map_pixels(jnp.linspace(0, 1, 11))),
                             np.linspace(0, 1, 11), atol=1e-6)
  assert float(losses.map_pixels(0.0)) == pytest.approx(0.1)
  assert float(losses.map_pixels(1.0)) == pytest.approx(0.9)


def test_kl_to_the_uniform_prior():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 3, 3, 7)) * 2
  q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  ref = (q * (np.log(q) + np.log(7))).reshape(2, -1).sum(-1)
  np.testing.assert_allclose(losses.categorical_kl_to_uniform(jnp.asarray(logits)), ref,
                             rtol=1e-5)
  np.testing.assert_allclose(losses.categorical_kl_to_uniform(jnp.zeros((1, 2, 2, 7))),
                             0.0, atol=1e-6)
  peaked = jnp.zeros((1, 1, 1, 7)).at[..., 3].set(100.0)
  assert float(losses.categorical_kl_to_uniform(peaked)[0]) == pytest.approx(math.log(7),
                                                                             rel=1e-5)


def test_temperature_and_kl_weight_schedules_follow_the_config():
  c = load_config("dvae_mnist")
  tau = dvt.make_schedule(c.schedules.temperature, "temperature")
  kl = dvt.make_schedule(c.schedules.kl_weight, "kl_weight")
  n = c.schedules.temperature.steps
  assert float(tau(0)) == pytest.approx(1.0)
  # cosine from 1 to 1/16: end + (init - end) (1 + cos(pi t / T)) / 2
  for t in (n // 4, n // 2, 3 * n // 4):
    want = 1 / 16 + (1 - 1 / 16) * 0.5 * (1 + math.cos(math.pi * t / n))
    assert float(tau(t)) == pytest.approx(want, rel=1e-5)
  assert float(tau(n)) == pytest.approx(1 / 16) and float(tau(10 * n)) == pytest.approx(1 / 16)
  # The paper's 6.6 per code of 8x8x3 pixel values, at the same weight per value for
  # a code of 4x4x1; the paper's own config keeps 6.6.
  beta = 6.6 * (4 * 4 * 1) / (8 * 8 * 3)
  assert float(kl(0)) == 0.0 and float(kl(250)) == pytest.approx(beta / 2, rel=1e-2)
  assert float(kl(500)) == pytest.approx(beta, rel=1e-2)
  assert float(kl(5000)) == pytest.approx(beta, rel=1e-2)
  assert load_config("dvae_imagenet", "paper").schedules.kl_weight.end == 6.6


@pytest.mark.parametrize("schedule", [
    dict(kind="linear", init=1.0, end=0.0, steps=4),
    dict(kind="cosine", init=1.0, end=0.0, steps=3),
    dict(kind="constant", init=0.0, end=0.0, steps=0),
])
def test_a_temperature_schedule_that_reaches_zero_is_a_clear_error(schedule):
  c = load_config("dvae_mnist", "tiny")
  c.schedules.temperature.update(**schedule)
  with pytest.raises(ValueError, match=r"config.schedules.temperature reaches 0 at step "
                                       r"\d+ .*must stay positive"):
    build.make_trainer(c)


def test_paper_counts_are_the_reference_counts():
  c = load_config("dvae_imagenet", "paper")
  spec = {"image": jax.ShapeDtypeStruct((256, 256, 3), jnp.float32)}
  trainer = dvt.DVAETrainer(c, spec)
  counts = {n: count_params(m, *a, **k) for n, (m, a, k) in trainer.networks().items()}
  assert counts == {"encoder": 53_786_240, "decoder": 43_829_766}
  assert trainer.latent_spec.shape == (32, 32) and trainer.num_codes == 8192


@pytest.fixture(scope="module")
def tiny_run(tiny_runs):
  """The session's finished run of configs/dvae_mnist.py:tiny (read only)."""
  return load_config("dvae_mnist", "tiny"), tiny_runs("dvae_mnist")


def test_the_compiled_step_uses_the_schedules(tiny_run):
  c, wd = tiny_run
  lines = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl"))]
  tau = dvt.make_schedule(c.schedules.temperature, "temperature")
  kl = dvt.make_schedule(c.schedules.kl_weight, "kl_weight")
  log_every = stages.run_config(wd).train.log_every  # as the run was trained
  for line in lines:  # each logged value is the mean over the last log_every steps
    steps = range(line["step"] - log_every, line["step"])
    assert line["temperature"] == pytest.approx(np.mean([float(tau(s)) for s in steps]),
                                                rel=1e-5)
    assert line["kl_weight"] == pytest.approx(np.mean([float(kl(s)) for s in steps]),
                                              rel=1e-5)


def test_a_trained_tiny_run_is_an_integer_code_stage(tiny_run):
  c, wd = tiny_run
  stage = build.load_stage("autoencoder", wd, sharding.make_mesh(), role=Autoencoder)
  t, params = stage.trainer, stage.params
  source = data.get_source(c.data, "test")
  x = jnp.asarray(data.spread_batch(source, c.data, 64, 0)["image"])
  codes = np.asarray(jax.jit(t.encode)(params, x))
  assert codes.shape == (64, 14, 14) and codes.dtype == np.int32
  assert codes.min() >= 0 and codes.max() < 16
  logits = np.asarray(jax.jit(t.logits)(params, x))
  np.testing.assert_array_equal(codes, logits.argmax(-1))
  recon = np.asarray(jax.jit(t.decode)(params, jnp.asarray(codes)))
  assert recon.shape == x.shape and recon.min() >= 0 and recon.max() <= 1
  result = json.load(open(os.path.join(wd, "eval.json")))
  for key in ("recon_mse", "psnr", "ssim", "codebook_used_fraction",
              "codebook_perplexity", "bits_per_dim"):
    assert np.isfinite(result[key]), key
  # bits/dim: the uniform-prior ELBO of [0, 1] pixels in 1/256 bins.
  d = 28 * 28
  want = (result["recon_nats"] + result["kl_nats"] - d * math.log(0.8) + d * math.log(256)) / (
      d * math.log(2))
  assert result["bits_per_dim"] == pytest.approx(want, rel=1e-6)
  assert 0 <= result["kl_nats"] <= 14 * 14 * math.log(16) + 1e-3
  names = set(os.listdir(os.path.join(wd, "samples")))
  assert {"reconstructions_step_4.png", "code_map_step_4.png",
          "code_histogram_step_4.png"} <= names
  with pytest.raises(ValueError, match=r"trained on 28x28x1 images.*\(32, 32, 3\)"):
    t.encode(params, jnp.zeros((1, 32, 32, 3)))


def test_the_scale_floor_bounds_the_likelihood_where_the_scale_would_shrink():
  """model.min_scale floors the decoder's log-scale (not its location), in the loss and
  the eval alike; 0 leaves the paper's unbounded scale. Checked against the numpy
  density with the scale clamped by hand."""
  c = load_config("dvae_mnist", "tiny")
  c.model.min_scale = 0.0
  free = build.make_trainer(c)
  c.model.min_scale = 1.5  # above most of a fresh decoder's scales: the floor acts
  floored = build.make_trainer(c)
  params = free.init_params(jax.random.PRNGKey(0))
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, *free.example_shape)),
                  jnp.float32)
  z = jax.nn.softmax(free.logits(params, x) * 4.0, axis=-1)
  loc0, ls0 = free.decoder_stats(params, z)
  loc1, ls1 = floored.decoder_stats(params, z)
  np.testing.assert_array_equal(loc0, loc1)
  assert float((ls0 < math.log(1.5)).mean()) > 0.5  # the floor is exercised
  np.testing.assert_allclose(ls1, np.maximum(np.asarray(ls0), math.log(1.5)), rtol=1e-6)
  target = np.asarray(losses.map_pixels(x), np.float64)
  ref = _logit_laplace_numpy(target, np.asarray(loc1, np.float64),
                             np.maximum(np.asarray(ls0, np.float64), math.log(1.5)))
  np.testing.assert_allclose(
      losses.logit_laplace_log_prob(losses.map_pixels(x), loc1, ls1),
      ref.reshape(2, -1).sum(-1), rtol=1e-5)
  c.model.min_scale = -0.1
  with pytest.raises(ConfigError, match="config.model.min_scale"):
    build.make_trainer(c)
