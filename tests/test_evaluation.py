"""The evaluator registry: samples conditioned on eval inputs, each metric against an
independent computation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen import data, evaluators, sharding
from jaxgen.evaluators import clip_score as clip_score_evaluator
from jaxgen.metrics import features, ssim
from jaxgen.families.base import Trainer


class _Lookup(Trainer):
  """A 'generator' that draws, for label y, the table's image of class (y + shift)."""

  def __init__(self, config, table, shift=0, key="label"):
    super().__init__(config, data.example_spec(config.data))
    self.table, self.shift, self.key = table, shift, key

  @property
  def conditioning_keys(self):
    return (self.key,)

  def generate(self, state, rng, num, inputs=None, frozen=None):
    if self.key == "label":
      return jnp.asarray(self.table)[(inputs["label"] + self.shift) % 10]
    return jnp.clip(inputs[self.key] + self.shift, 0, 1)


def _config(metrics, num=60):
  c = load_config("cgan_mnist", "tiny")
  c.data.scale = "unit"
  c.eval.update(metrics=metrics, num_samples=num, sample_batch_size=20, split="test")
  return c


def _table():
  """One real test digit per class, in [0, 1]."""
  test = data.get_source(load_config("cgan_mnist", "tiny").data, "test")[np.arange(500)]
  first = [int(np.flatnonzero(test["label"] == k)[0]) for k in range(10)]
  return test["image"][first].astype(np.float32) / 255


def test_class_accuracy_counts_agreement_with_the_conditioning_label():
  c, table, mesh = _config(("class_accuracy",)), _table(), sharding.make_mesh()
  predicted = features.get("mnist_classifier")(table)["logits"].argmax(-1)
  order = np.random.default_rng([c.seed, 17]).permutation(500)
  test_labels = data.get_source(c.data, "test")[order[:60]]["label"]
  for shift in (0, 1):
    got = evaluators.compute(_Lookup(c, table, shift), None, c, mesh, jax.random.key(0))
    # Independently: sample i is the table digit of class label_i + shift.
    expected = np.mean(predicted[(test_labels + shift) % 10] == test_labels)
    assert got["class_accuracy"] == pytest.approx(expected)
    assert got["num_samples"] == 60 and got["class_accuracy_net"] == "mnist-classifier"
  assert expected < 0.2  # shifted labels are wrong, and the metric says so


def test_shuffled_baseline_conditions_each_sample_on_another_examples_inputs():
  """eval.shuffled_baseline: sample i drawn for the label of the example half the
  split away, scored against its own; a perfect conditional model falls to the
  agreement of two labels of the split, computed here from the labels alone."""
  c, table, mesh = _config(("class_accuracy",)), _table(), sharding.make_mesh()
  c.eval.shuffled_baseline = True
  predicted = features.get("mnist_classifier")(table)["logits"].argmax(-1)
  order = np.random.default_rng([c.seed, 17]).permutation(500)
  labels = data.get_source(c.data, "test")[np.arange(500)]["label"][order]
  own, other = labels[:60], labels[(np.arange(60) + 251) % 500]
  got = evaluators.compute(_Lookup(c, table), None, c, mesh, jax.random.key(0))
  assert got["class_accuracy"] == pytest.approx(np.mean(predicted[own] == own))
  assert got["class_accuracy_shuffled"] == pytest.approx(np.mean(predicted[other] == own))
  assert got["class_accuracy_shuffled"] < 0.3 < got["class_accuracy"]
  c.eval.guidance_scales = (1.0, 2.0)  # one pass per scale and per order
  got = evaluators.compute(_Lookup(c, table), None, c, mesh, jax.random.key(0))
  assert {"class_accuracy_guidance_2", "class_accuracy_shuffled_guidance_1",
          "class_accuracy_shuffled_guidance_2"} <= set(got)


def test_samples_are_conditioned_on_every_eval_example_in_a_fixed_shuffle():
  """The 500 test digits are sorted by class; the conditioning visits each once per
  cycle, shuffled (IS over consecutive chunks would otherwise see two classes)."""
  c = _config(("class_accuracy",), num=50)
  examples = evaluators.conditioning(_Lookup(c, _table()), c, 50, ("label",))
  labels = data.get_source(c.data, "test")[np.arange(500)]["label"]
  first = examples(0, 500)["label"]
  assert np.bincount(first).tolist() == np.bincount(labels).tolist()  # each once
  assert len(set(first[:100].tolist())) == 10  # not sorted by class
  np.testing.assert_array_equal(examples(490, 20)["label"],
                                np.concatenate([first[490:], first[:10]]))
  np.testing.assert_array_equal(examples(0, 500)["label"], first)  # deterministic


def test_paired_metrics_against_closed_forms(monkeypatch):
  """l1, psnr and ssim of each sample against its example's target."""
  c, mesh = _config(("l1", "psnr", "ssim"), num=40), sharding.make_mesh()
  rng = np.random.default_rng(0)
  targets = rng.uniform(size=(500, 28, 28, 1)).astype(np.float32)
  monkeypatch.setattr(evaluators, "conditioning",
                      lambda trainer, config, num, needs: lambda start, size: {
                          "target": targets[np.arange(start, start + size) % 500]})
  trainer = _Lookup(c, None, shift=0.1, key="target")
  trainer.spec = {"target": jax.ShapeDtypeStruct((28, 28, 1), np.float32)}
  got = evaluators.compute(trainer, None, c, mesh, jax.random.key(0))
  x = np.clip(targets[:40] + 0.1, 0, 1).astype(np.float64)
  y = targets[:40].astype(np.float64)
  assert got["l1"] == pytest.approx(np.abs(x - y).mean(), rel=1e-6)
  mse = ((x - y) ** 2).mean(axis=(1, 2, 3))
  assert got["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-6)
  assert got["ssim"] == pytest.approx(
      float(np.mean(ssim.ssim(x.astype(np.float32), y.astype(np.float32), 1.0))),
      rel=1e-5)


def test_metrics_that_need_missing_keys_or_unknown_names_are_clear_errors():
  c, mesh = _config(("l1",)), sharding.make_mesh()
  with pytest.raises(ValueError, match=r"needs the key\(s\) \['target'\].*'mnist5k'"):
    evaluators.compute(_Lookup(c, _table()), None, c, mesh, jax.random.key(0))
  c.eval.metrics = ("fid", "nope")
  with pytest.raises(ValueError, match=r"Unknown evaluator 'nope'"):
    evaluators.compute(_Lookup(c, _table()), None, c, mesh, jax.random.key(0))


def test_clip_score_pairs_each_sample_with_its_caption(monkeypatch):
  """clip_score decodes each eval example's tokens to its caption and scores the
  sample generated from it, as compute_clip_score on the same pairs does."""
  import os
  from conftest import REPO
  from jaxgen.data import mnist5k_derived
  from jaxgen.data.clip_tokenizer import CLIPTokenizer
  from jaxgen.metrics import clip_score
  from jaxgen.models import clip
  fx = os.path.join(REPO, "tests", "fixtures")
  tok = CLIPTokenizer.from_files(os.path.join(fx, "clip_vocab.json"),
                                 os.path.join(fx, "clip_merges.txt"))
  config = clip.CLIPConfig(embed_dim=8, image_size=16, patch_size=8, vision_width=16,
                           vision_layers=1, vision_heads=2, text_width=16, text_layers=1,
                           text_heads=2, context_length=16, vocab_size=len(tok.vocab))
  variables = clip.CLIP(config).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)),
                                     jnp.zeros((1, 16), jnp.int32))
  build = features.clip_embedder
  small = lambda tokenizer=None, **kw: build(
      tok, variables=variables, config=config, batch_size=10, progress=False)
  monkeypatch.setattr(clip_score_evaluator.features, "clip_embedder", small)
  monkeypatch.setattr(clip_score, "bpe_file", lambda path=None: None)
  monkeypatch.setattr(CLIPTokenizer, "from_openai_bpe", classmethod(lambda cls, p: tok))

  c = _config(("clip_score",), num=30)
  c.data.update(name="mnist5k_captions", random_flip=False)
  c.eval.sample_batch_size = 10
  trainer = _Lookup(c, None, key="text")
  trainer.generate = lambda state, rng, num, inputs=None, frozen=None: jnp.broadcast_to(
      (inputs["text"].sum(-1) % 7 / 7.0)[:, None, None, None], (num, 32, 32, 1))
  got = evaluators.compute(trainer, None, c, sharding.make_mesh(), jax.random.key(0))
  order = np.random.default_rng([c.seed, 17]).permutation(500)[:30]
  captions = [mnist5k_derived.captions(c.data, "test")[i] for i in order]
  tokens = data.get_source(c.data, "test")[order]["text"]
  images = np.broadcast_to((tokens.sum(-1) % 7 / 7.0)[:, None, None, None],
                           (30, 32, 32, 1)).astype(np.float32)
  expected = clip_score.compute_clip_score(small(), images, captions)
  assert got["clip_score"] == pytest.approx(expected.value, rel=1e-5)
  assert got["clip_score_net"] == clip_score.NAME
  # Pairing matters: the captions in another order score differently.
  shuffled = clip_score.compute_clip_score(small(), images, captions[::-1])
  assert abs(shuffled.value - expected.value) > 1e-6
