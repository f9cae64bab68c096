"""class_accuracy_recon (jaxgen/evaluators/class_accuracy.py): the share of an
autoencoder's reconstructions of the eval digits that the MNIST classifier reads as
the input's label. Through evaluators.compute, with stub autoencoders whose answer is
known without the evaluator, a real (untrained) VAE against its own encode / decode,
the real-image ceiling, and the errors of families that are no autoencoder."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen import build, data, evaluators, loop_config, sharding, stages
from jaxgen.errors import ConfigError
from jaxgen.evaluators import ceiling
from jaxgen.families.base import Trainer
from jaxgen.metrics import features

NUM = 60


class _Stub(Trainer, stages.Autoencoder):
  """An autoencoder whose reconstruction is ``recon(images)``; it never samples."""

  def __init__(self, config, recon):
    super().__init__(config, data.example_spec(config.data))
    self.recon, self.seen = recon, []

  def stage_params(self, state):
    return {"unused": jnp.zeros(())}

  def encode(self, params, images):
    jax.debug.callback(lambda lo, hi: self.seen.append((float(lo), float(hi))),
                       jnp.min(images), jnp.max(images))
    return images

  def decode(self, params, latents):
    return self.recon(latents)

  def generate(self, state, rng, num, inputs=None, frozen=None):
    raise AssertionError("only reconstructions are scored: nothing is sampled")


def _config(name="vae_mnist", metrics=("class_accuracy_recon",), grey=True):
  c = load_config(name, "tiny")
  if grey:
    c.data.binarize = ""  # real grey digits, as the classifier reads them best
  c.eval.update(metrics=metrics, num_samples=NUM, sample_batch_size=20)
  return c


def _examples(c):
  """The eval examples the evaluators score, in their order and batches
  (evaluators.conditioning; a batch's preprocessing, e.g. binarisation, is seeded by
  its start)."""
  get = evaluators.conditioning(_Stub(c, None), c, NUM, ("image", "label"))
  size = c.eval.sample_batch_size
  batches = [get(start, size) for start in range(0, NUM, size)]
  return {k: np.concatenate([b[k] for b in batches]) for k in ("image", "label")}


def _classify(images):
  return features.get("mnist_classifier")(np.asarray(images),
                                          progress=False)["logits"].argmax(-1)


def test_a_perfect_autoencoder_scores_the_classifiers_accuracy():
  c, mesh = _config(), sharding.make_mesh()
  got = evaluators.compute(_Stub(c, lambda x: x), None, c, mesh, jax.random.key(0))
  ex = _examples(c)
  assert got["class_accuracy_recon"] == pytest.approx(
      np.mean(_classify(ex["image"]) == ex["label"]))
  assert got["class_accuracy_recon"] > 0.9
  assert got["num_samples"] == NUM
  assert got["class_accuracy_recon_net"] == "mnist-classifier"


def test_an_autoencoder_that_draws_one_digit_scores_that_digits_share():
  """Every reconstruction is one real 7: right exactly where the input is a 7, which
  the labels alone say."""
  c, mesh = _config(), sharding.make_mesh()
  test = data.get_source(c.data, "test")[np.arange(500)]
  seven = test["image"][int(np.flatnonzero(test["label"] == 7)[0])] / np.float32(255)
  assert _classify(seven[None])[0] == 7
  stub = _Stub(c, lambda x: jnp.broadcast_to(seven, x.shape))
  got = evaluators.compute(stub, None, c, mesh, jax.random.key(0))
  labels = _examples(c)["label"]
  assert got["class_accuracy_recon"] == pytest.approx(np.mean(labels == 7))
  assert 0 < got["class_accuracy_recon"] < 0.3


def test_the_autoencoder_gets_images_in_0_1_from_symmetric_data():
  c, mesh = _config("dcgan_mnist"), sharding.make_mesh()  # data in [-1, 1]
  assert c.data.scale == "symmetric"
  stub = _Stub(c, lambda x: x)
  got = evaluators.compute(stub, None, c, mesh, jax.random.key(0))
  low, high = stub.seen[0]
  assert low == 0.0 and high == 1.0
  ex = _examples(c)
  assert got["class_accuracy_recon"] == pytest.approx(
      np.mean(_classify((ex["image"] + 1) / 2) == ex["label"]))


def test_a_real_autoencoder_is_scored_on_its_own_reconstructions():
  """The stage protocol of a family (an untrained tiny VAE): the wiring, shapes and
  parameters, not the quality."""
  c, mesh = _config(grey=False), sharding.make_mesh()  # Bernoulli: binarised digits
  trainer = build.make_trainer(c)
  state = trainer.init_state(jax.random.key(0))
  got = evaluators.compute(trainer, state, c, mesh, jax.random.key(0))
  ex = _examples(c)
  params = trainer.stage_params(state)
  recon = trainer.decode(params, trainer.encode(params, jnp.asarray(ex["image"])))
  assert got["class_accuracy_recon"] == pytest.approx(
      np.mean(_classify(recon) == ex["label"]))


def test_the_ceiling_is_the_classifiers_accuracy_on_the_real_split():
  c = _config()
  c.eval.num_samples = 0  # the whole split, once
  got = ceiling.ceiling(c)
  test = data.get_source(c.data, "test")[np.arange(500)]
  accuracy = np.mean(_classify(test["image"] / np.float32(255)) == test["label"])
  assert got["num_samples"] == 500
  assert got["class_accuracy_recon"] == pytest.approx(accuracy)
  assert accuracy >= 0.95


def test_a_family_that_is_no_autoencoder_is_a_config_error():
  c = _config("gan_mnist", ("fid", "class_accuracy_recon"))
  with pytest.raises(ConfigError, match="class_accuracy_recon, which score "
                     "reconstructions, and the gan family is no autoencoder"):
    loop_config.check(c)
  loop_config.check(_config())  # the VAE is one

  class Generator(Trainer):
    def generate(self, state, rng, num, inputs=None, frozen=None):
      return jnp.zeros((num, 28, 28, 1))

  with pytest.raises(ConfigError, match="drop it from config.eval.metrics"):
    evaluators.compute(Generator(c, data.example_spec(c.data)), None, c,
                       sharding.make_mesh(), jax.random.key(0))
