"""The CLIP port as a frozen conditioning stage, loaded from a weights file.

``config.stages.<name> = "/path/model.safetensors"`` (Hugging Face's ``CLIPModel``
layout; a ``config.json`` beside it gives the sizes, else ViT-B/32) gives a stage whose
``embed_image`` and ``embed_text`` are pure and jit-compilable, so that a model can
condition on CLIP embeddings inside its compiled step (unCLIP, CLIP re-ranking).
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import safetensors
import safetensors.numpy

from jaxgen import weights
from jaxgen.models import clip
from jaxgen.stages import ConditioningEncoder
from jaxgen.weights import torch_layout


# ---------------------------------------------------------------------------------------
# Hugging Face checkpoints.

def hf_key(path: tuple[str, ...]) -> str:
  """The HF state-dict key of the Flax parameter at ``path`` (of ``clip.CLIP`` or of
  one of its towers): ("text_model", "encoder", "layers_3", "mlp", "fc1", "kernel") ->
  "text_model.encoder.layers.3.mlp.fc1.weight"."""
  *modules, leaf = path
  modules = [m.replace("layers_", "layers.") if m.startswith("layers_") else m
             for m in modules]
  return ".".join([*modules, torch_layout.TORCH_LEAF.get(leaf, leaf)])


def load_hf_checkpoint(path, config: clip.CLIPConfig = clip.VIT_B_32) -> dict:
  """Variables ``{"params": ...}`` of CLIP(config) from an HF ``CLIPModel`` .safetensors file.

  Keys and shapes must match exactly (the ``position_ids`` buffers that older
  transformers saved are ignored); otherwise a ValueError lists what is missing,
  unexpected or of the wrong shape.
  """
  state = safetensors.numpy.load_file(str(path))
  return torch_layout.state_dict_params(
      state, clip.param_shapes(config), hf_key,
      skip=lambda k: k.endswith(".position_ids"),
      header=f"{path} is not a Hugging Face CLIPModel checkpoint of {config}",
      hint="\nUse the model.safetensors of openai/clip-vit-base-patch32 for VIT_B_32, "
           "or a config with the file's dimensions.")


def config_from_hf(path) -> clip.CLIPConfig:
  """The CLIPConfig of Hugging Face's ``config.json`` beside ``path``; ViT-B/32 if
  there is none."""
  hf = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
  if not os.path.isfile(hf):
    return clip.VIT_B_32
  with open(hf) as f:
    c = json.load(f)
  v, t = c["vision_config"], c["text_config"]
  return clip.CLIPConfig(
      embed_dim=c["projection_dim"], image_size=v["image_size"],
      patch_size=v["patch_size"], vision_width=v["hidden_size"],
      vision_layers=v["num_hidden_layers"], vision_heads=v["num_attention_heads"],
      context_length=t["max_position_embeddings"], vocab_size=t["vocab_size"],
      text_width=t["hidden_size"], text_layers=t["num_hidden_layers"],
      text_heads=t["num_attention_heads"])


class CLIPEncoder(ConditioningEncoder):
  """CLIP's two towers; embeddings are L2-normalised."""
  # A frozen metric/conditioning network: float32, not through config.compute's policy.

  def __init__(self, config: clip.CLIPConfig = clip.VIT_B_32):
    self.clip_config = config
    self.model = clip.CLIP(config)
    self.config = None  # no jaxgen run behind a weights file

  @classmethod
  def from_file(cls, path):
    """(encoder, variables) from a Hugging Face ``model.safetensors``."""
    config = config_from_hf(path)
    return cls(config), load_hf_checkpoint(path, config)

  def pixels(self, images):
    """Images in [0, 1] (N, H, W, 1 or 3) -> CLIP's normalised input: the short side
    resized to the model's size (bicubic, in JAX; PIL's filter differs slightly),
    the centre cropped."""
    if images.shape[-1] == 1:
      images = jnp.repeat(images, 3, axis=-1)
    s = self.clip_config.image_size
    n, h, w, _ = images.shape
    if (h, w) != (s, s):
      scale = s / min(h, w)
      nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
      images = jax.image.resize(images, (n, nh, nw, 3), "bicubic")
      top, left = (nh - s) // 2, (nw - s) // 2
      images = images[:, top:top + s, left:left + s]
    return (jnp.clip(images, 0, 1) - jnp.asarray(clip.OPENAI_MEAN)) / jnp.asarray(
        clip.OPENAI_STD)

  def embed_image(self, params, images):
    e = self.model.apply(params, self.pixels(images), method=clip.CLIP.encode_image)
    return e / jnp.linalg.norm(e, axis=-1, keepdims=True)

  def embed_text(self, params, tokens):
    e = self.model.apply(params, tokens, method=clip.CLIP.encode_text)
    return e / jnp.linalg.norm(e, axis=-1, keepdims=True)

  def text_states(self, params, tokens):
    return self.model.apply(params, tokens, method=clip.CLIP.text_states)


def _is_hf_clip(path) -> bool:
  """A .safetensors file with CLIPModel's two towers."""
  if not str(path).endswith(".safetensors"):
    return False
  with safetensors.safe_open(str(path), "np") as f:
    keys = list(f.keys())
  return (any(k.startswith("vision_model.") for k in keys)
          and any(k.startswith("text_model.") for k in keys))


@weights.register_reader("hf_clip", provides=CLIPEncoder, accepts=_is_hf_clip,
                         what="a Hugging Face CLIPModel .safetensors file")
def read_stage(path, spec):
  """A Hugging Face CLIP file as a ``ConditioningEncoder`` stage."""
  del spec  # CLIP resizes whatever images it is given to its own input size
  return CLIPEncoder.from_file(path)
