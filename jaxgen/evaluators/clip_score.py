"""clip_score: CLIPScore (Hessel et al.: 2.5 max(cos, 0), prefix "A photo depicts ") of
each sample against the caption it was generated from, in the CLIP port
(``eval.clip_weights``, ``eval.clip_bpe``: Hugging Face safetensors and OpenAI's BPE
file; '' takes them from the weights cache)."""
from __future__ import annotations

import numpy as np

from jaxgen import data
from jaxgen.data.clip_tokenizer import CLIPTokenizer
from jaxgen.evaluators import Evaluator, option, register
from jaxgen.metrics import clip_score, features


@register("clip_score")
class ClipScore(Evaluator):
  """CLIPScore of samples against the captions (the eval examples' ``text`` decoded by
  the dataset's tokenizer) in the CLIP ViT-B/32 port."""
  needs = ("text",)
  options = {"clip_bpe": "", "clip_weights": ""}  # '' = the weights cache

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    e = config.eval
    dataset = data.get_dataset(config.data)
    if not hasattr(dataset, "tokenizer"):
      raise ValueError(f"clip_score needs captions, and {config.data.name!r} has none: "
                       f"use a captioned dataset (mnist5k_captions).")
    self.captions = dataset.tokenizer()
    self.embedder = features.clip_embedder(
        CLIPTokenizer.from_openai_bpe(
            clip_score.bpe_file(option(config, "clip_bpe") or None)),
        weights=option(config, "clip_weights") or None, mesh=mesh, progress=False,
        batch_size=e.sample_batch_size)
    self.images, self.texts = [], []

  def update(self, samples, examples):
    self.images.append(self.embedder.embed_images(samples))
    self.texts += self.captions.decode_batch(examples["text"])

  def result(self):
    text = self.embedder.embed_texts([clip_score.CLIPSCORE_PREFIX + t
                                      for t in self.texts])
    score = clip_score.clip_score(np.concatenate(self.images), text, "clipscore")
    return {"clip_score": score.value, "clip_score_net": clip_score.NAME}
