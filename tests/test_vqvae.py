"""The VQ-VAE family: the quantiser, its gradients and EMA codebook, code statistics,
dead-code restarts, the paper count, and the trained stage through jaxgen.stages."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen import build, checkpoint, data, losses, sharding, train
from jaxgen.models import quantizer as vq
from jaxgen.families.vqvae import trainer as vqt
from jaxgen.families.vqvae.losses import vq_codebook_loss, vq_commitment_loss
from jaxgen.families.base import TrainState, count_params
from jaxgen.stages import Autoencoder


def test_quantiser_matches_a_numpy_nearest_neighbour():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(3, 5, 4, 6)).astype(np.float32)
  codebook = rng.normal(size=(40, 6)).astype(np.float32)
  codes = np.asarray(vq.nearest(jnp.asarray(z), jnp.asarray(codebook)))
  d = ((z[..., None, :].astype(np.float64) - codebook.astype(np.float64)) ** 2).sum(-1)
  np.testing.assert_array_equal(codes, d.argmin(-1))
  assert codes.dtype == np.int32 and codes.shape == (3, 5, 4)
  np.testing.assert_array_equal(np.asarray(vq.lookup(jnp.asarray(codes), codebook)),
                                codebook[d.argmin(-1)])


def test_straight_through_passes_the_decoder_gradient_to_the_encoder_output():
  rng = np.random.default_rng(1)
  z_e = jnp.asarray(rng.normal(size=(2, 3, 3, 4)), jnp.float32)
  z_q = jnp.asarray(rng.normal(size=(2, 3, 3, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
  f = lambda v: jnp.sum(jnp.sin(v) * w)
  out = vq.straight_through(z_e, z_q)
  np.testing.assert_allclose(out, z_q, rtol=1e-6, atol=1e-6)
  g_e, g_q = jax.grad(lambda a, b: f(vq.straight_through(a, b)), (0, 1))(z_e, z_q)
  np.testing.assert_allclose(g_e, jax.grad(f)(z_q), atol=1e-6)  # d f / d z_q, copied
  np.testing.assert_array_equal(g_q, np.zeros_like(g_q))  # no gradient to the codes
  # The loss terms: the codebook term moves only the codes, the commitment term only
  # the encoder output.
  gc = jax.grad(lambda a, b: vq_codebook_loss(a, b).sum(), (0, 1))(z_e, z_q)
  gm = jax.grad(lambda a, b: vq_commitment_loss(a, b).sum(), (0, 1))(z_e, z_q)
  np.testing.assert_array_equal(gc[0], 0.0)
  np.testing.assert_allclose(gc[1], 2 * (z_q - z_e), rtol=1e-6)
  np.testing.assert_allclose(gm[0], 2 * (z_e - z_q), rtol=1e-6)
  np.testing.assert_array_equal(gm[1], 0.0)


def test_ema_update_matches_a_hand_computation():
  decay, eps, k = 0.9, 1e-5, 3
  extra = {"ema_count": jnp.zeros(k), "ema_sum": jnp.zeros((k, 2)),
           "ema_updates": jnp.zeros((), jnp.int32), "unused_steps": jnp.zeros(k, jnp.int32)}
  x1 = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], np.float32)
  c1 = np.array([0, 0, 1])
  x2 = np.array([[5.0, 5.0], [0.0, 4.0]], np.float32)
  c2 = np.array([0, 1])
  book, extra = vqt.ema_update(extra, jnp.asarray(c1), jnp.asarray(x1), decay, eps, k)
  # After one update the debiased averages are this batch's counts and sums.
  n1 = np.array([2.0, 1.0, 0.0])
  s1 = np.array([[4.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
  sm = (n1 + eps) / (n1.sum() + k * eps) * n1.sum()
  np.testing.assert_allclose(book, s1 / sm[:, None], rtol=1e-5)
  book, extra = vqt.ema_update(extra, jnp.asarray(c2), jnp.asarray(x2), decay, eps, k)
  # By hand: hidden_t = decay hidden_{t-1} + (1 - decay) value_t, average =
  # hidden_t / (1 - decay^t).
  n2, s2 = np.array([1.0, 1.0, 0.0]), np.array([[5.0, 5.0], [0.0, 4.0], [0, 0]])
  hn = decay * (1 - decay) * n1 + (1 - decay) * n2
  hs = decay * (1 - decay) * s1 + (1 - decay) * s2
  an, as_ = hn / (1 - decay ** 2), hs / (1 - decay ** 2)
  sm = (an + eps) / (an.sum() + k * eps) * an.sum()
  np.testing.assert_allclose(book, as_ / sm[:, None], rtol=1e-5)
  np.testing.assert_allclose(book[0], [(0.9 * 4 + 5) / (0.9 * 2 + 1), 5 / 2.8], rtol=1e-4)
  np.testing.assert_allclose(extra["ema_count"], hn, rtol=1e-6)
  assert int(extra["ema_updates"]) == 2


def test_perplexity_and_used_fraction_formulas():
  one = jnp.array([7.0, 0.0, 0.0, 0.0])
  assert float(losses.code_perplexity(one)) == pytest.approx(1.0)
  assert float(losses.code_used_fraction(one)) == 0.25
  assert float(losses.code_perplexity(jnp.full((16,), 3.0))) == pytest.approx(16.0, rel=1e-5)
  # p = (1/2, 1/4, 1/4): entropy 1.5 bits, perplexity 2^1.5.
  p = jnp.array([2.0, 1.0, 1.0, 0.0, 0.0])
  assert float(losses.code_perplexity(p)) == pytest.approx(2 ** 1.5, rel=1e-5)
  assert float(losses.code_used_fraction(p)) == pytest.approx(0.6)
  codes = jnp.array([[[0, 1], [1, 1]], [[3, 3], [3, 3]]])
  np.testing.assert_array_equal(losses.code_counts(codes, 5), [1, 3, 0, 4, 0])
  np.testing.assert_array_equal(losses.code_counts(codes, 5, jnp.array([1.0, 0.0])),
                                [1, 3, 0, 0, 0])


def test_paper_config_has_the_sonnet_parameter_count():
  c = load_config("vqvae_cifar10", "paper")
  trainer = vqt.VQVAETrainer(c, {"image": jax.ShapeDtypeStruct((32, 32, 3), jnp.float32)})
  counts = {n: count_params(m, *a, **k) for n, (m, a, k) in trainer.networks().items()}
  assert counts == {"encoder": 372_416, "quantizer": 32_768, "decoder": 290_307}
  assert sum(counts.values()) == 695_491
  assert trainer.latent_spec.shape == (8, 8) and trainer.latent_spec.dtype == jnp.int32


@pytest.fixture(scope="module")
def tiny_run(tiny_runs):
  """The session's finished run of configs/vqvae_mnist.py:tiny (read only)."""
  return load_config("vqvae_mnist", "tiny"), tiny_runs("vqvae_mnist")


def test_dead_code_restart_moves_unused_codes_onto_encoder_outputs(tiny_run):
  c = load_config("vqvae_mnist", "tiny")
  c.model.update(codebook="loss", restart_after=1)
  c.optim.update(learning_rate=0.0, warmup_steps=0, schedule="constant")
  trainer = build.make_trainer(c)
  # The trained tiny run's parameters in a fresh codebook-by-loss state.
  params = build.load_stage("autoencoder", tiny_run[1], sharding.make_mesh()).params
  state = TrainState.create(jax.device_get(params), trainer.tx,
                            extra={"unused_steps": jnp.zeros((16,), jnp.int32)})
  book = np.array(state.params["quantizer"]["codebook"])
  book[8:] = 1e3  # far from every encoder output: never chosen
  state = state.replace(params={**state.params, "quantizer": {"codebook": jnp.asarray(book)}})
  batch = data.spread_batch(data.get_source(c.data, "train"), c.data, 8, 0)
  new, metrics = jax.jit(trainer.train_step)(state, {"image": jnp.asarray(batch["image"])},
                                             jax.random.key(3))
  x = jnp.asarray(batch["image"])
  z = np.asarray(jax.jit(trainer.encode_vectors)(state.params, x))
  z = z.reshape(-1, z.shape[-1])
  codes = jax.jit(trainer.encode)(state.params, x)
  used = np.unique(np.asarray(codes))
  assert used.max() < 8
  new_book = np.asarray(new.params["quantizer"]["codebook"])
  dead = np.setdiff1d(np.arange(16), used)
  assert int(metrics["restarted_codes"]) == len(dead)
  for k in dead:  # each restarted code is one of this batch's encoder outputs
    assert np.abs(z - new_book[k]).sum(-1).min() < 1e-5
  np.testing.assert_array_equal(new_book[used], book[used])  # lr 0: used codes stay
  np.testing.assert_array_equal(np.asarray(new.extra["unused_steps"]), 0)
  # Without restarts the unused codes stay where they were and their counters run.
  counts = losses.code_counts(codes, 16)
  kept, extra, n = vqt.restart_dead_codes(
      jnp.asarray(book), dict(state.extra), counts, jnp.asarray(z), jax.random.key(3),
      0, 0.99)
  np.testing.assert_array_equal(np.asarray(kept), book)
  np.testing.assert_array_equal(np.asarray(extra["unused_steps"])[dead], 1)
  np.testing.assert_array_equal(np.asarray(extra["unused_steps"])[used], 0)
  assert int(n) == 0


def test_a_trained_tiny_run_encodes_and_decodes_the_test_split_as_a_stage(tiny_run):
  c, wd = tiny_run
  stage = build.load_stage("autoencoder", wd, sharding.make_mesh(), role=Autoencoder)
  t, params = stage.trainer, stage.params
  assert params["quantizer"]["codebook"].shape == (16, 4)  # the EMA-learned codebook
  source = data.get_source(c.data, "test")
  x = jnp.asarray(data.spread_batch(source, c.data, len(source), 0)["image"])
  codes = np.asarray(jax.jit(t.encode)(params, x))
  assert codes.shape == (len(source), *t.latent_spec.shape) == (500, 7, 7)
  assert codes.dtype == np.int32 and codes.min() >= 0 and codes.max() < 16
  # The codes are the nearest codebook entries of the encoder outputs (numpy).
  z = np.asarray(jax.jit(t.encode_vectors)(params, x), np.float64)
  book = np.asarray(params["quantizer"]["codebook"], np.float64)
  d = ((z[..., None, :] - book) ** 2).sum(-1)
  assert (codes == d.argmin(-1)).mean() > 0.999  # float32 near-ties aside
  recon = np.asarray(jax.jit(t.decode)(params, jnp.asarray(codes)))
  assert recon.shape == x.shape and recon.min() >= 0 and recon.max() <= 1
  # The stage's numbers agree with the run's own evaluation over the same split.
  c2 = load_config("vqvae_mnist", "tiny")
  c2.eval.num_examples = 0
  state, _ = train.restore_latest(t, c2, wd, sharding.make_mesh())
  result = train.evaluate(t, state, c2, sharding.make_mesh())
  mse = ((recon - np.asarray(x)) ** 2).mean()
  assert result["num_examples"] == 500
  assert result["recon_mse"] == pytest.approx(mse, rel=1e-4)
  counts = np.bincount(codes.ravel(), minlength=16)
  assert result["codebook_used"] == (counts > 0).sum()
  p = counts[counts > 0] / counts.sum()
  assert result["codebook_perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()),
                                                        rel=1e-4)
  bpd = (49 * math.log(16) + 784 * (0.5 * math.log(2 * math.pi * math.e * mse)
                                    + math.log(256))) / (784 * math.log(2))
  assert result["bits_per_dim"] == pytest.approx(bpd, rel=1e-4)
  # Pictures: reconstructions, the code map, the usage histogram.
  names = set(os.listdir(os.path.join(wd, "samples")))
  assert {"reconstructions_step_4.png", "code_map_step_4.png",
          "code_histogram_step_4.png", "step_4.png"} <= names
  assert json.load(open(os.path.join(wd, "eval.json")))["step"] == 4


def test_bad_inputs_to_a_loaded_stage_are_clear_errors(tiny_run):
  c, wd = tiny_run
  mesh = sharding.make_mesh()
  stage = build.load_stage("autoencoder", wd, mesh, role=Autoencoder)
  with pytest.raises(ValueError, match=r"trained on 28x28x1 images.*\(32, 32, 1\)"):
    stage.trainer.encode(stage.params, jnp.zeros((2, 32, 32, 1)))
  with pytest.raises(ValueError, match=r"code grids of shape \(7, 7\)"):
    stage.trainer.decode(stage.params, jnp.zeros((2, 8, 8), jnp.int32))
  # Parameters of a K=16, D=4 run given to a trainer built for other K or D.
  other = load_config("vqvae_mnist", "tiny")
  other.model.update(num_codes=32, code_dim=8)
  wrong = build.make_trainer(other)
  with pytest.raises(ValueError, match=r"16 codes of dimension 4.*num_codes=32.*"
                                       r"code_dim=8.*--config.model.num_codes=16"):
    wrong.encode(stage.params, jnp.zeros((2, 28, 28, 1)))
  # Restoring that run's checkpoint into a config with other K is refused.
  with pytest.raises(checkpoint.CheckpointError, match="different config"):
    train.restore_latest(wrong, other, wd, mesh)


@pytest.mark.parametrize("change,match", [
    (dict(codebook="kmeans"), "codebook='kmeans'"),
    (dict(num_downsamples=3), "do not divide"),
    (dict(ema_decay=1.0), "ema_decay=1.0"),
])
def test_bad_configs_are_clear_errors(change, match):
  c = load_config("vqvae_mnist", "tiny")
  c.model.update(**change)
  with pytest.raises(ValueError, match=match):
    build.make_trainer(c)
