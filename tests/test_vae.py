"""The VAE family: likelihood choices, evaluation bounds, pictures, bad configs."""
import jax
import numpy as np
import pytest

from conftest import load_config
from jaxgen import build
from jaxgen import data, sharding, train
from jaxgen.families.vae.trainer import VAETrainer


def _digits_config(**model):
  c = load_config("vae_mnist", "tiny")
  c.data.name = "digits"
  c.eval.metrics = ()  # the MNIST classifier's FID needs 28x28 digits
  c.model.update(hidden=(8,), **model)
  return c


@pytest.mark.parametrize("likelihood,extra", [
    ("bernoulli", {}), ("gaussian", {"dequantize": True}), ("logistic", {})])
def test_each_likelihood_trains_and_evaluates(tmp_path, likelihood, extra):
  c = _digits_config(likelihood=likelihood)
  c.data.update(binarize="dynamic" if likelihood == "bernoulli" else "", **extra)
  c.train.update(num_steps=40, batch_size=32, log_every=20, sample_every=0,
                 checkpoint_every=40)
  c.optim.update(learning_rate=3e-3, warmup_steps=0, schedule="constant")
  wd = str(tmp_path / likelihood)
  train.train(c, wd)
  import json
  lines = [json.loads(l) for l in open(f"{wd}/metrics.jsonl")]
  assert lines[-1]["loss"] < lines[0]["loss"]  # it learns
  result = json.load(open(f"{wd}/eval.json"))
  assert np.isfinite(result["elbo_nats"]) and "elbo_bits_per_dim" in result


def test_iwae_estimate_is_tighter_than_the_elbo():
  c = _digits_config()
  c.eval.update(batch_size=32, num_examples=64, iw_samples=64, iw_chunk=16)
  trainer = build.make_trainer(c)
  state = trainer.init_state(jax.random.key(0))
  out = train.evaluate(trainer, state, c, sharding.make_mesh())
  assert out["num_examples"] == 64
  assert -out["nll_iwae_nats"] > out["elbo_nats"]
  np.testing.assert_allclose(out["elbo_nats"], -(out["recon_nats"] + out["kl_nats"]),
                             rtol=1e-5)


def test_kl_warmup_anneals_beta():
  c = _digits_config(kl_warmup_steps=10)
  trainer = build.make_trainer(c)
  assert float(trainer.beta(0)) == 0.0 and float(trainer.beta(5)) == 0.5
  assert float(trainer.beta(20)) == 1.0


def test_pictures_include_the_manifold_for_a_2d_latent():
  c = _digits_config(latent_dim=2)
  trainer = build.make_trainer(c)
  state = trainer.init_state(jax.random.key(0))
  batch = data.spread_batch(data.get_source(c.data, "test"), c.data, 8, 0)
  pics = trainer.visualize(state, jax.random.key(1), batch)
  assert set(pics) == {"samples", "reconstructions", "interpolation", "manifold"}
  assert pics["manifold"].shape[:2] == (160, 160)  # 20 x 20 digits of 8 x 8
  assert all(p.dtype == np.uint8 for p in pics.values())


@pytest.mark.parametrize("change,match", [
    (dict(likelihood="bernoulli", binarize=""), "needs binary data"),
    (dict(likelihood="gaussian", binarize="dynamic"), "grey-level"),
    (dict(likelihood="logistic", binarize="", dequantize=True), "dequantize=False"),
    (dict(likelihood="poisson", binarize=""), "likelihood='poisson'"),
])
def test_inconsistent_likelihood_and_data_are_clear_errors(change, match):
  c = _digits_config()
  c.model.likelihood = change.pop("likelihood")
  c.data.update(**change)
  with pytest.raises(ValueError, match=match):
    VAETrainer(c, data.example_spec(c.data))
