"""clip_r_precision, and clip_score with eval.clip_stage, against hand-made CLIP
stages: one whose embeddings are one-hot by caption (R-precision 1, CLIPScore 2.5), one
of random embeddings (R-precision about 1/100); and the stages they refuse."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import build, data, evaluators, sharding, stages
from jaxgen.data import mnist5k_derived as derived
from jaxgen.data.text import Tokenizer
from jaxgen.errors import StageError
from test_caption_accuracy import RealOfCaption, captions_config


class OneHotByCaption(stages.ConditioningEncoder):
  """A caption's embedding is the one-hot of its index among the test split's distinct
  captions; an image's, that of the caption of the nearest real test image."""

  def __init__(self, config):
    test = data.get_source(config.data, "test")
    test = test[np.arange(len(test))]
    captions = derived.captions(config.data, "test")
    pool = sorted(set(captions))
    self.size = len(pool)
    self.images = jnp.asarray(test["image"].reshape(len(test["image"]), -1) / 255.0)
    self.image_caption = jnp.asarray([pool.index(c) for c in captions])
    self.tokens = jnp.asarray(data.get_dataset(config.data).tokenizer().encode(
        pool, test["text"].shape[1]))

  def embed_image(self, params, images):
    x = images.reshape(len(images), -1)
    d = (x * x).sum(1)[:, None] - 2 * x @ self.images.T + (self.images ** 2).sum(1)
    return jax.nn.one_hot(self.image_caption[d.argmin(1)], self.size)

  def embed_text(self, params, tokens):
    same = (tokens[:, None] == self.tokens[None]).all(-1)
    return jax.nn.one_hot(same.argmax(1), self.size)


class Random(stages.ConditioningEncoder):
  """Independent random projections of pixels and of token counts."""

  def __init__(self, vocab_size, pixels, dim=64):
    rng = np.random.default_rng(0)
    self.image = jnp.asarray(rng.standard_normal((pixels, dim)), jnp.float32)
    self.text = jnp.asarray(rng.standard_normal((vocab_size, dim)), jnp.float32)

  def embed_image(self, params, images):
    e = images.reshape(len(images), -1) @ self.image
    return e / jnp.linalg.norm(e, axis=-1, keepdims=True)

  def embed_text(self, params, tokens):
    e = jax.nn.one_hot(tokens, self.text.shape[0]).sum(1) @ self.text
    return e / jnp.linalg.norm(e, axis=-1, keepdims=True)


def with_stage(monkeypatch, encoder, tokenizer):
  loaded = []

  def load_stage(name, path, mesh, role=None, spec=None):
    loaded.append(path)
    return stages.Stage(name, path, encoder, {}, 7, "ab" * 32, tokenizer)
  monkeypatch.setattr(build, "load_stage", load_stage)
  return loaded


def test_one_hot_stage_ranks_every_own_caption_first(monkeypatch, tmp_path):
  c = captions_config(("clip_r_precision", "clip_score"), num=100)
  c.eval.clip_stage = str(tmp_path)
  loaded = with_stage(monkeypatch, OneHotByCaption(c),
                      data.get_dataset(c.data).tokenizer())
  got = evaluators.compute(RealOfCaption(c), None, c, sharding.make_mesh(),
                           jax.random.key(0))
  assert got["clip_r_precision"] == 1.0 and got["clip_r_precision_real"] == 1.0
  assert got["clip_r_precision_distractors"] == 99
  assert got["clip_score"] == pytest.approx(2.5)  # cos 1, no prefix for a word tokenizer
  assert got["clip_score_stage"] == str(tmp_path)
  assert str(tmp_path) in got["clip_score_net"] and "step 7" in got["clip_score_net"]
  assert got["clip_r_precision_net"] == got["clip_score_net"]
  assert loaded == [str(tmp_path)]  # one stage, shared by both evaluators
  # Each sample drawn from another caption: never its own caption's image.
  shuffle = np.random.default_rng(0).permutation(500)
  captions = derived.captions(c.data, "test")
  assert sum(captions[i] == captions[j] for i, j in enumerate(shuffle)) < 10
  bad = evaluators.compute(RealOfCaption(c, shuffle), None, c, sharding.make_mesh(),
                           jax.random.key(0))
  assert bad["clip_r_precision"] < 0.1 and bad["clip_r_precision_real"] == 1.0
  assert bad["clip_score"] < 0.25


def test_random_embeddings_rank_the_own_caption_first_about_once_in_100(monkeypatch,
                                                                        tmp_path):
  c = captions_config(("clip_r_precision",), num=500)
  c.eval.clip_stage = str(tmp_path)
  tok = data.get_dataset(c.data).tokenizer()
  with_stage(monkeypatch, Random(tok.vocab_size, 32 * 32), tok)
  got = evaluators.compute(RealOfCaption(c), None, c, sharding.make_mesh(),
                           jax.random.key(0))
  assert got["clip_r_precision"] < 0.04 and got["clip_r_precision_real"] < 0.04


def test_stages_that_read_other_token_ids_are_refused(monkeypatch, tmp_path):
  c = captions_config(("clip_r_precision",), num=20)
  c.eval.clip_stage = str(tmp_path)
  mesh, trainer = sharding.make_mesh(), RealOfCaption(c)
  with_stage(monkeypatch, OneHotByCaption(c), Tokenizer(["a", "3", "upright"]))
  for metric in ("clip_r_precision", "clip_score"):
    c.eval.metrics = (metric,)
    with pytest.raises(StageError, match=f"{metric}: eval.clip_stage=.* reads captions "
                                         f"with another tokenizer"):
      evaluators.compute(trainer, None, c, mesh, jax.random.key(0))
  with_stage(monkeypatch, OneHotByCaption(c), None)  # a run without tokenizer.json
  with pytest.raises(StageError, match="saved no caption tokenizer"):
    evaluators.compute(trainer, None, c, mesh, jax.random.key(0))
  c.eval.clip_stage = ""
  c.eval.metrics = ("clip_r_precision",)
  with pytest.raises(ValueError, match="clip_r_precision needs a CLIP stage: set "
                                       "--config.eval.clip_stage"):
    evaluators.compute(trainer, None, c, mesh, jax.random.key(0))
  c.data.name = "mnist5k"
  with pytest.raises(ValueError, match="clip_r_precision needs captioned images, and "
                                       "config.data.name='mnist5k' has no captions"):
    evaluators.compute(trainer, None, c, mesh, jax.random.key(0))
