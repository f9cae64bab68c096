"""clip_r_precision: is each sample's own caption ranked first, by a CLIP stage's
cosine similarity, among it and ``eval.r_precision_distractors`` (99) other captions
of ``eval.split``? (Park et al. 2021's R-precision with R = 1, as DALL-E-style
text-to-image work reports it.)

The CLIP is ``eval.clip_stage`` (``clip_stage.py``: a finished ``clip`` run whose
tokenizer is the dataset's, or a Hugging Face CLIP file). The distractors are drawn
for each sample, with a fixed seed (``config.seed``), among the split's distinct
caption strings other than its own: templated captions repeat, and an identical
caption is no wrong answer. A hit needs the own caption's similarity strictly above
every distractor's (a stage that embeds everything alike scores 0, not 1).

Reported: ``clip_r_precision`` (the share of hits), ``clip_r_precision_real`` (the
same for every real image of the split with its own caption: the ceiling),
``clip_r_precision_net`` (the stage, with its digest) and the number of distractors.
"""
from __future__ import annotations

import numpy as np

from jaxgen import data
from jaxgen.data import mnist5k_derived
from jaxgen.evaluators import Evaluator, clip_stage, option, register
from jaxgen.evaluators.features import real_images

WHO = "clip_r_precision"


def hits(images, own, texts, distractors) -> np.ndarray:
  """bool (N,): image i's similarity to caption ``own[i]`` above its similarity to
  each caption ``distractors[i]`` (N, K); embeddings (N, D) and (M, D)."""
  sims = np.einsum("nd,nkd->nk", images, texts[np.concatenate(
      [own[:, None], distractors], 1)])
  return sims[:, 0] > sims[:, 1:].max(1)


def draw(rng, own, pool: int, k: int) -> np.ndarray:
  """(N, k) distinct caption indices below ``pool``, none equal to ``own[i]``."""
  picks = np.stack([rng.choice(pool - 1, k, replace=False) for _ in own])
  return picks + (picks >= own[:, None])


@register("clip_r_precision")
class ClipRPrecision(Evaluator):
  """CLIP R-precision (R = 1) of samples against their captions; the real ceiling."""
  needs = ("text",)
  options = {"r_precision_distractors": 99}  # other captions each sample competes with

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.tokenizer = data.caption_tokenizer(config.data, WHO)
    self.k = int(option(config, "r_precision_distractors"))
    self.split = config.eval.split
    self.split_captions = mnist5k_derived.captions(config.data, self.split)
    self.pool = sorted(set(self.split_captions))
    if len(self.pool) <= self.k:
      raise ValueError(f"{WHO} ranks each caption among {self.k} other distinct "
                       f"captions, and {config.data.name}/{self.split} has "
                       f"{len(self.pool)} distinct captions: lower "
                       f"eval.r_precision_distractors below {len(self.pool)}.")
    self.index = {c: i for i, c in enumerate(self.pool)}
    self.stage = clip_stage.load(config, mesh, nets, WHO)
    self.rng = np.random.default_rng([config.seed, 29])
    self.texts = None
    self.hits = []

  def caption_embeddings(self):
    if self.texts is None:
      self.texts = self.stage.embed_captions(self.pool)
    return self.texts

  def own(self, captions) -> np.ndarray:
    missing = [c for c in captions if c not in self.index]
    if missing:
      raise ValueError(f"{WHO}: the caption {missing[0]!r} is not one of "
                       f"{self.config.data.name}/{self.split}'s.")
    return np.asarray([self.index[c] for c in captions])

  def score(self, images, captions, rng) -> np.ndarray:
    own = self.own(captions)
    return hits(self.stage.embed_images(images), own, self.caption_embeddings(),
                draw(rng, own, len(self.pool), self.k))

  def update(self, samples, examples):
    self.hits.append(self.score(samples, self.tokenizer.decode_batch(examples["text"]),
                                self.rng))

  def result(self):
    batches, _ = real_images(self.config.data, self.split)
    real = self.score(np.concatenate(list(batches)), self.split_captions,
                      np.random.default_rng([self.config.seed, 31]))
    return {"clip_r_precision": float(np.concatenate(self.hits).mean()),
            "clip_r_precision_real": float(real.mean()),
            "clip_r_precision_distractors": self.k,
            "clip_r_precision_net": self.stage.name}
