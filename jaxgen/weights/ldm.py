"""CompVis' latent-diffusion state dicts as parameters of jaxgen's ports.

``unet_params(state, config)`` converts the state dict of CompVis' ``UNetModel`` (its
keys ``input_blocks.1.0.in_layers.0.weight``, ...) into the variables of
``jaxgen.models.ldm_unet.UNetModel(config)``; ``text_encoder_params(state, config)``
those of the ``TransformerWrapper`` inside ``BERTEmbedder`` into
``jaxgen.models.ldm_text.TextEncoder(config)``. ``state`` maps keys to arrays (numpy, or
anything ``np.asarray`` takes: a safetensors file's, or what
``jaxgen.weights.torch_pickle`` reads from a ``.ckpt``); ``prefix`` selects one model of
a full checkpoint (``model.diffusion_model.`` for the U-Net of an LDM or Stable Diffusion
``.ckpt``, ``cond_stage_model.transformer.`` for LDM's text encoder), and keys outside
it are ignored. Values become float32.

The names follow one rule (``jaxgen/models/ldm_unet.py``'s docstring): a Flax path
becomes the torch key by joining it with ``.``, each ``_<digits>`` written ``.<digits>``,
the leaf named as torch names it; the values change layout as
``jaxgen.weights.torch_layout`` says. Every key of the model must be present with its
shape, and no other key under the prefix; otherwise a ValueError lists what is missing,
unexpected or of the wrong shape.
"""
from __future__ import annotations

import re
from typing import Mapping

from jaxgen.models import ldm_text, ldm_unet
from jaxgen.weights.torch_layout import TORCH_LEAF, state_dict_params

_INDEX = re.compile(r"_(\d+)(?=_\d|$)")


def torch_key(path: tuple[str, ...]) -> str:
  """The torch state-dict key of the Flax parameter at ``path``:
  ("input_blocks_3_1", "transformer_blocks_0", "attn2", "to_out_0", "kernel") ->
  "input_blocks.3.1.transformer_blocks.0.attn2.to_out.0.weight"."""
  *modules, leaf = path
  modules = [_INDEX.sub(r".\1", m) for m in modules]
  return ".".join([*modules, TORCH_LEAF.get(leaf, leaf)])


def convert(state: Mapping, shapes: dict, prefix: str = "", what: str = "the model",
            ignore: tuple[str, ...] = ()) -> dict:
  """Variables ``{"params": ...}`` of the parameter tree ``shapes`` from the torch
  state dict ``state``, reading the keys under ``prefix``; keys that start with a
  string of ``ignore`` (after the prefix) are skipped."""
  return state_dict_params(state, shapes, torch_key, prefix=prefix,
                           skip=lambda k: k.startswith(ignore),
                           header=f"The state dict (keys under {prefix!r}) does not fit "
                                  f"{what}")


def unet_params(state: Mapping, config: ldm_unet.UNetConfig, prefix: str = "") -> dict:
  """Variables of ``UNetModel(config)`` from CompVis' ``UNetModel`` state dict."""
  return convert(state, ldm_unet.param_shapes(config), prefix, f"UNetModel({config})")


def text_encoder_params(state: Mapping, config: ldm_text.TextEncoderConfig,
                        prefix: str = "") -> dict:
  """Variables of ``TextEncoder(config)`` from the state dict of BERTEmbedder's
  ``TransformerWrapper`` (its ``to_logits`` skipped when ``config.logits_head`` is
  False)."""
  ignore = () if config.logits_head else ("to_logits.",)
  return convert(state, ldm_text.param_shapes(config), prefix,
                 f"TextEncoder({config})", ignore)
