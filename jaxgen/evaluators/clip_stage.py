"""The CLIP stage that ``clip_score`` and ``clip_r_precision`` name in
``eval.clip_stage``: the workdir of a finished run of a family that provides
``ConditioningEncoder`` (the ``clip`` family), or a weights file that a reader of
``jaxgen.weights`` takes (a Hugging Face CLIP ``model.safetensors``). Loaded once per
evaluation (shared by the evaluators through ``nets``) with ``build.load_stage``,
which is why these modules sit in the loop's layer.

Captions reach the stage as the stage reads them:
  a run's stage    through the word tokenizer the run saved (``tokenizer.json``), which
                   must be the evaluated dataset's (the same vocabulary: same ids), at
                   the context length of the run's ``text``; without a prefix;
  a weights file   (Hugging Face CLIP) through OpenAI's BPE tokenizer
                   (``eval.clip_bpe``; '' = the weights cache) at its context length,
                   which reads any text.
A run that saved no tokenizer, or saved another one, is refused (one line).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import numpy as np

from jaxgen import build, data, stages
from jaxgen.data.clip_tokenizer import CLIPTokenizer
from jaxgen.errors import StageError
from jaxgen.evaluators import option
from jaxgen.metrics import clip_score
from jaxgen.stages import ConditioningEncoder, Stage
from jaxgen.weights.clip import CLIPEncoder

ROLE = "clip"  # the stage's name in messages and records


@dataclasses.dataclass
class ClipStage:
  """A loaded CLIP stage with what the evaluators need of it."""
  stage: Stage
  tokens: Callable  # list of captions -> (N, L) int32 token ids the stage reads
  prefix: str  # put before each caption by clip_score ("A photo depicts " for BPE)
  batch_size: int

  @property
  def name(self) -> str:
    kind = ("weights file" if os.path.isfile(self.stage.path)
            else f"run, step {self.stage.step}")
    return f"clip stage {self.stage.path} ({kind}, digest {self.stage.digest[:12]})"

  def _batched(self, fn, x):
    out = [np.asarray(fn(self.stage.params, x[i:i + self.batch_size]))
           for i in range(0, len(x), self.batch_size)]
    return np.concatenate(out).astype(np.float32)

  def embed_images(self, images) -> np.ndarray:
    """(N, D) L2-normalised embeddings of float images in [0, 1]."""
    return self._batched(self._image, np.asarray(images, np.float32))

  def embed_captions(self, captions) -> np.ndarray:
    """(N, D) L2-normalised embeddings of caption strings."""
    return self._batched(self._text, self.tokens(list(captions)))

  def __post_init__(self):
    self._image = jax.jit(self.stage.trainer.embed_image)
    self._text = jax.jit(self.stage.trainer.embed_text)


def load(config, mesh, nets, who: str) -> ClipStage:
  """The stage ``eval.clip_stage`` (shared through ``nets``), checked against the
  evaluated dataset's tokenizer; ``who`` names the evaluator in errors."""
  path = option(config, "clip_stage")
  if not path:
    raise ValueError(f"{who} needs a CLIP stage: set --config.eval.clip_stage to a "
                     f"finished clip run's workdir or a CLIP model.safetensors.")
  key = ("clip_stage", path)
  if key in nets:
    return nets[key]
  mine = data.caption_tokenizer(config.data, who)
  stage = build.load_stage(ROLE, path, mesh, ConditioningEncoder,
                           data.example_spec(config.data))
  if stage.tokenizer is not None:
    stages.check_tokenizer(stage, mine, f"{who}: eval.clip_stage={path}")
    run_data = getattr(getattr(stage.trainer, "config", None), "data", None)
    spec = data.example_spec(run_data) if run_data is not None else {}
    length = (spec["text"].shape[0] if "text" in spec
              else data.example_spec(config.data)["text"].shape[0])
    tokens = lambda captions: stage.tokenizer.encode(captions, length)
    prefix = ""
  elif isinstance(stage.trainer, CLIPEncoder):
    bpe_tokenizer = CLIPTokenizer.from_openai_bpe(clip_score.bpe_file(option(config, "clip_bpe") or None))
    length = stage.trainer.clip_config.context_length
    tokens = lambda captions: bpe_tokenizer(captions, length)
    prefix = clip_score.CLIPSCORE_PREFIX
  else:
    raise StageError(
        f"{who}: eval.clip_stage={path} saved no caption tokenizer (tokenizer.json), "
        f"so its token ids cannot be matched to {config.data.name!r}'s captions; use "
        f"a clip run trained on {config.data.name}.")
  nets[key] = ClipStage(stage, tokens, prefix, config.eval.sample_batch_size)
  return nets[key]
