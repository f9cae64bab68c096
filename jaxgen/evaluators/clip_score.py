"""clip_score: CLIPScore (Hessel et al.: 2.5 max(cos, 0)) of each sample against the
caption it was generated from, in a CLIP named by ``eval.clip_stage``:
  ''              the CLIP ViT-B/32 port (``eval.clip_weights``, ``eval.clip_bpe``:
                  Hugging Face safetensors and OpenAI's BPE file; '' takes them from
                  the weights cache), captions prefixed "A photo depicts ";
  a workdir       a finished ``clip`` run (any family that provides
                  ``ConditioningEncoder``), reading the captions through the word
                  tokenizer it saved, which must be the dataset's; no prefix;
  a weights file  a Hugging Face CLIP ``model.safetensors`` as a stage (BPE, prefix).
``clip_score_net`` names the network: the port, or the stage with its digest
(``clip_stage.py``)."""
from __future__ import annotations

import numpy as np

from jaxgen import data
from jaxgen.data.clip_tokenizer import CLIPTokenizer
from jaxgen.evaluators import Evaluator, clip_stage, option, register
from jaxgen.metrics import clip_score, features


@register("clip_score")
class ClipScore(Evaluator):
  """CLIPScore of samples against the captions (the eval examples' ``text`` decoded by
  the dataset's tokenizer) in the CLIP port or the named CLIP stage."""
  needs = ("text",)
  # '' = the weights cache (clip_bpe, clip_weights); '' = the port (clip_stage)
  options = {"clip_bpe": "", "clip_weights": "", "clip_stage": ""}

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.captions = data.caption_tokenizer(config.data, "clip_score")
    self.stage = None
    if option(config, "clip_stage"):
      self.stage = clip_stage.load(config, mesh, nets, "clip_score")
      self.embed_images, self.embed_texts = (self.stage.embed_images,
                                             self.stage.embed_captions)
      self.prefix, self.net = self.stage.prefix, self.stage.name
    else:
      embedder = features.clip_embedder(
          CLIPTokenizer.from_openai_bpe(
              clip_score.bpe_file(option(config, "clip_bpe") or None)),
          weights=option(config, "clip_weights") or None, mesh=mesh, progress=False,
          batch_size=config.eval.sample_batch_size)
      self.embed_images, self.embed_texts = embedder.embed_images, embedder.embed_texts
      self.prefix, self.net = clip_score.CLIPSCORE_PREFIX, clip_score.NAME
    self.images, self.texts = [], []

  def update(self, samples, examples):
    self.images.append(self.embed_images(samples))
    self.texts += self.captions.decode_batch(examples["text"])

  def result(self):
    text = self.embed_texts([self.prefix + t for t in self.texts])
    score = clip_score.clip_score(np.concatenate(self.images), text, "clipscore")
    out = {"clip_score": score.value, "clip_score_net": self.net}
    if self.stage is not None:
      out["clip_score_stage"] = self.stage.stage.path
    return out
