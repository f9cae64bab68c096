"""Stable Diffusion's released weights as jaxgen networks, read without PyTorch: CompVis'
U-Net (``jaxgen.models.ldm_unet``), the KL autoencoder (``jaxgen.models.autoencoder_kl``)
and CLIP's text tower (``jaxgen.models.clip``), with the tokenizer and the scheduler's
settings, from a diffusers folder or from one CompVis checkpoint.

``load(path, model=None, tokenizer=None)`` returns a ``StableDiffusion``: the
``Architecture`` (the three networks' configurations, the latents' scaling factor, the
tokenizer's padding, the ``Scheduler``), the parameters, the tokenizer, and the files
read. ``path`` is

* a diffusers folder (``unet/``, ``vae/``, ``text_encoder/`` with their ``config.json``
  and ``diffusion_pytorch_model.safetensors`` / ``model.safetensors`` (or ``.bin``,
  read by the restricted pickle reader, or their ``.fp16`` variants), ``tokenizer/``
  (``vocab.json`` + ``merges.txt``, or ``tokenizer.json``), ``scheduler/
  scheduler_config.json``); the configurations come from the folder, and ``model``, if
  given, must agree with them;
* a CompVis checkpoint (``.ckpt`` through ``jaxgen.weights.torch_pickle``, or
  ``.safetensors``) of ``model.diffusion_model.``, ``first_stage_model.`` and
  ``cond_stage_model.`` (SD 1.x: transformers' CLIPTextModel under ``transformer.``;
  SD 2.x: OpenCLIP's text tower under ``model.``, of which SD 2.x reads the penultimate
  layer); ``model`` names its architecture (``PRESETS``: ``sd1``, ``sd2``, ``sd2_v``:
  CompVis' v1-inference.yaml, v2-inference.yaml, v2-inference-v.yaml), and the
  tokenizer is OpenAI's BPE (the registry's ``clip_bpe``) unless ``tokenizer`` names a
  folder or a ``vocab.json``;
* a name of ``jaxgen.weights.KNOWN`` (``sd_v1_5``, ``sd_v2_1_768``, ...: ``REGISTERED``
  gives each one's architecture), resolved in the weights cache.

How keys become parameters: CompVis' keys are jaxgen's own names
(``jaxgen.weights.ldm.torch_key``, ``autoencoder_kl.compvis_key``); diffusers' are mapped
block by block (``diffusers_unet_key``, ``diffusers_vae_key``, with both namings of the
VAE's attention, ``to_q/to_k/to_v/to_out.0`` and the older ``query/key/value/proj_attn``);
transformers' are ``jaxgen.weights.clip.hf_key`` (with or without ``text_model.``);
OpenCLIP's are renamed to transformers' (``in_proj`` split into q, k, v). The values
follow ``jaxgen.weights.torch_layout`` (diffusers 13a7bee4's Flax rules: a conv's
(O, I, kh, kw) becomes (kh, kw, I, O), a linear weight is transposed, a norm's weight
is its scale); a 1x1 convolution stored where jaxgen has a linear layer (the VAE's
attention and shortcuts) is read as that linear layer. Every parameter must be present
with its shape and nothing else under the component's prefix; otherwise a one-line
``StageError`` names the keys. Values become float32.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import safetensors
import safetensors.numpy

from jaxgen import weights
from jaxgen.data.clip_tokenizer import CONTEXT_LENGTH, CLIPTokenizer
from jaxgen.diffusion import samplers, schedules
from jaxgen.diffusion.process import GaussianDiffusion
from jaxgen.errors import ConfigError, StageError
from jaxgen.models import autoencoder_kl as aekl
from jaxgen.models import clip, ldm_unet
from jaxgen.weights import clip as clip_weights
from jaxgen.weights import ldm, torch_layout, torch_pickle

SAMPLERS = ("ddim", "dpmpp_2m")


# ---------------------------------------------------------------------------------------
# The scheduler's settings (diffusers' scheduler_config.json).

@dataclasses.dataclass(frozen=True)
class Scheduler:
  """A ``scheduler_config.json``'s noise schedule and sampling conventions, read as
  diffusers' ``DDIMScheduler.from_config`` and ``DPMSolverMultistepScheduler.from_config``
  read it (a field one of them lacks keeps the other's default). ``timestep_spacing``
  None is each scheduler's own default (DDIM ``leading``, DPM-Solver ``linspace``)."""
  num_train_timesteps: int = 1000
  beta_start: float = 0.00085
  beta_end: float = 0.012
  beta_schedule: str = "scaled_linear"
  prediction_type: str = "epsilon"
  steps_offset: int = 0
  timestep_spacing: str | None = None
  set_alpha_to_one: bool = True
  final_sigmas_type: str = "zero"
  lower_order_final: bool = True

  # field -> the values jaxgen implements (a field missing from the file is fine)
  SUPPORTED = {"beta_schedule": ("scaled_linear", "linear"), "trained_betas": (None,),
               "prediction_type": ("epsilon", "v_prediction", "sample"),
               "rescale_betas_zero_snr": (False,), "thresholding": (False,),
               "clip_sample": (False,), "algorithm_type": ("dpmsolver++",),
               "solver_type": ("midpoint",), "euler_at_final": (False,),
               "use_karras_sigmas": (False,), "use_exponential_sigmas": (False,),
               "use_beta_sigmas": (False,), "use_lu_lambdas": (False,),
               "use_flow_sigmas": (False,), "variance_type": (None,),
               "final_sigmas_type": samplers.FINAL_SIGMAS,
               "timestep_spacing": samplers.SPACINGS}

  @classmethod
  def from_config(cls, config: dict, where: str = "scheduler_config.json") -> Scheduler:
    for name, allowed in cls.SUPPORTED.items():
      if name in config and config[name] not in allowed:
        raise StageError(f"{where}: {name}={config[name]!r} is not supported (jaxgen "
                         f"implements {' or '.join(map(repr, allowed))}).")
    if "lambda_min_clipped" in config and np.isfinite(config["lambda_min_clipped"]):
      raise StageError(f"{where}: lambda_min_clipped={config['lambda_min_clipped']} is not "
                       "supported (jaxgen implements -inf).")
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in config.items() if k in fields})

  @property
  def parameterization(self) -> str:
    """jaxgen's name of what the network predicts."""
    return {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}[self.prediction_type]

  def process(self) -> GaussianDiffusion:
    T = self.num_train_timesteps
    if self.beta_schedule == "scaled_linear":
      betas = schedules.scaled_linear(T, self.beta_start, self.beta_end)
    else:
      betas = np.linspace(self.beta_start, self.beta_end, T, dtype=np.float64)
    return GaussianDiffusion.from_betas(betas)

  def timesteps(self, sampler: str, num_steps: int) -> np.ndarray:
    """The descending timesteps ``sampler`` visits in ``num_steps`` steps."""
    T = self.num_train_timesteps
    if sampler == "ddim":
      return samplers.ddim_schedule(T, num_steps, self.timestep_spacing or "leading",
                                    self.steps_offset)[0]
    if sampler == "dpmpp_2m":
      return samplers.dpm_solver_timesteps(T, num_steps, self.timestep_spacing or "linspace",
                                           self.steps_offset)
    raise ConfigError(f"unknown scheduler {sampler!r}; use one of {', '.join(SAMPLERS)}.")

  def run(self, sampler: str, model_fn: Callable, x_init, num_steps: int, *,
          process: GaussianDiffusion, start: int = 0, progress: bool = False):
    """Denoise ``x_init`` (the latents at ``timesteps(sampler, num_steps)[start]``)
    with ``model_fn(x, t)`` through the remaining steps of the schedule: x0."""
    T, shape = self.num_train_timesteps, x_init.shape
    common = dict(parameterization=self.parameterization, clip_x0=False, x_init=x_init,
                  progress=progress)
    if sampler == "ddim":
      ts, prev = samplers.ddim_schedule(T, num_steps, self.timestep_spacing or "leading",
                                        self.steps_offset)
      final = 1.0 if self.set_alpha_to_one else process.alphas_cumprod[0]
      x, _ = samplers.ddim(model_fn, process, shape, jax.random.key(0),
                           timesteps=ts[start:], prev_timesteps=prev[start:],
                           final_alpha_cumprod=final, **common)
      return x
    x, _ = samplers.dpmpp_2m(model_fn, process, shape, None,
                             timesteps=self.timesteps(sampler, num_steps), start=start,
                             final_sigma=self.final_sigmas_type,
                             lower_order_final=self.lower_order_final, **common)
    return x


# ---------------------------------------------------------------------------------------
# Architectures.

@dataclasses.dataclass(frozen=True)
class Architecture:
  """What a Stable Diffusion is made of: the U-Net, the autoencoder, the text tower
  (``text.text_layers`` layers, the final LayerNorm after them), the latents' scaling
  factor, the token that pads prompts, the scheduler, the latent side it was trained
  at (``sample_size``; None: unknown), and how a CompVis checkpoint stores the text
  tower (``text_format``: ``transformers``, SD 1.x's CLIPTextModel, or ``open_clip``,
  SD 2.x's OpenCLIP tower of one more layer than is read)."""
  unet: ldm_unet.UNetConfig
  vae: aekl.FirstStageConfig
  text: clip.CLIPConfig
  scheduler: Scheduler
  scaling_factor: float = 0.18215
  pad_token: str = "<|endoftext|>"
  sample_size: int | None = None
  text_format: str = "transformers"

  @property
  def image_factor(self) -> int:
    """Image sides must be multiples of this: the autoencoder's factor times the
    U-Net's (2 ** its downsamplings)."""
    return self.vae.factor * 2 ** (len(self.unet.channel_mult) - 1)

  @property
  def default_size(self) -> int | None:
    return None if self.sample_size is None else self.sample_size * self.vae.factor


_SD_SCHEDULER = dict(steps_offset=1, set_alpha_to_one=False)
_SD1_TEXT = clip.CLIPConfig(embed_dim=768, text_width=768, text_layers=12, text_heads=12,
                            vocab_size=49408, context_length=CONTEXT_LENGTH)
SD_V2_UNET = dataclasses.replace(ldm_unet.SD_V1, num_heads=-1, num_head_channels=64,
                                 context_dim=1024, use_linear_in_transformer=True)
# CompVis/stable-diffusion configs/stable-diffusion/v1-inference.yaml and
# Stability-AI/stablediffusion configs/stable-diffusion/v2-inference(-v).yaml. SD 2.x's
# text encoder is OpenCLIP ViT-H/14's text tower up to its penultimate layer (23 of 24).
PRESETS = {
    "sd1": Architecture(ldm_unet.SD_V1, aekl.KL_F8, _SD1_TEXT, Scheduler(**_SD_SCHEDULER),
                        sample_size=64),
    "sd2": Architecture(SD_V2_UNET, aekl.KL_F8,
                        dataclasses.replace(_SD1_TEXT, embed_dim=1024, text_width=1024,
                                            text_layers=23, text_heads=16,
                                            activation="gelu"),
                        Scheduler(**_SD_SCHEDULER), pad_token="!", sample_size=64,
                        text_format="open_clip"),
}
PRESETS["sd2_v"] = dataclasses.replace(
    PRESETS["sd2"], scheduler=Scheduler(**_SD_SCHEDULER, prediction_type="v_prediction"),
    sample_size=96)
# The registry's Stable Diffusion files (jaxgen/weights/__init__.py) and their presets.
REGISTERED = {"sd_v1_4": "sd1", "sd_v1_5": "sd1", "sd_v1_5_ckpt": "sd1",
              "sd_v2_base": "sd2", "sd_v2_768": "sd2_v", "sd_v2_1_base": "sd2",
              "sd_v2_1_768": "sd2_v"}


def _unsupported(where: str, config: dict, expected: dict):
  for name, allowed in expected.items():
    value = config.get(name, allowed[0])
    if isinstance(value, list):
      value = tuple(value)
    if value not in allowed:
      raise StageError(f"{where}: {name}={config[name]!r} is not Stable Diffusion's "
                       f"({allowed[0]!r}); jaxgen's networks do not implement it.")


_UNET_FIXED = {
    "act_fn": ("silu",), "center_input_sample": (False,), "flip_sin_to_cos": (True,),
    "freq_shift": (0,), "norm_num_groups": (32,), "norm_eps": (1e-5,),
    "downsample_padding": (1,), "mid_block_scale_factor": (1, 1.0),
    "resnet_time_scale_shift": ("default",), "class_embed_type": (None,),
    "addition_embed_type": (None,), "num_class_embeds": (None,),
    "time_embedding_type": ("positional",), "conv_in_kernel": (3,), "conv_out_kernel": (3,),
    "dual_cross_attention": (False,), "only_cross_attention": (False,),
    "encoder_hid_dim": (None,), "time_cond_proj_dim": (None,),
    "mid_block_type": ("UNetMidBlock2DCrossAttn",), "attention_type": ("default",),
    "time_embedding_dim": (None,), "timestep_post_act": (None,),
    "time_embedding_act_fn": (None,), "resnet_skip_time_act": (False,),
    "resnet_out_scale_factor": (1.0, 1), "class_embeddings_concat": (False,),
    "cross_attention_norm": (None,), "reverse_transformer_layers_per_block": (None,)}


def unet_config_from_diffusers(c: dict, where: str = "unet/config.json"
                               ) -> ldm_unet.UNetConfig:
  """CompVis' UNetModel configuration of a diffusers ``UNet2DConditionModel`` config
  (diffusers' defaults for missing fields)."""
  _unsupported(where, c, _UNET_FIXED)
  widths = tuple(c.get("block_out_channels", (320, 640, 1280, 1280)))
  down = tuple(c.get("down_block_types", ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)))
  up = tuple(c.get("up_block_types", ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3))
  cross = [t == "CrossAttnDownBlock2D" for t in down]
  mirror = tuple("CrossAttnUpBlock2D" if x else "UpBlock2D" for x in reversed(cross))
  if not all(t in ("CrossAttnDownBlock2D", "DownBlock2D") for t in down) or up != mirror:
    raise StageError(f"{where}: blocks {down} / {up} are not Stable Diffusion's kind "
                     "(CrossAttnDownBlock2D / DownBlock2D, mirrored on the way up).")
  model_channels = widths[0]
  if any(w % model_channels for w in widths) or len(widths) != len(down):
    raise StageError(f"{where}: block_out_channels {widths} are not multiples of the "
                     "first, one per block.")
  heads = c.get("num_attention_heads") or c.get("attention_head_dim", 8)
  heads = [heads] * len(widths) if isinstance(heads, int) else list(heads)
  if len(set(heads)) == 1:
    head_args = {"num_heads": heads[0]}
  elif len({w // h for w, h in zip(widths, heads)}) == 1:
    head_args = {"num_head_channels": widths[0] // heads[0]}
  else:
    raise StageError(f"{where}: attention heads {heads} for widths {widths} are neither "
                     "a fixed number nor a fixed width (CompVis' two conventions).")
  depth = c.get("transformer_layers_per_block", 1)
  depth = set(depth) if isinstance(depth, (list, tuple)) else {depth}
  layers = c.get("layers_per_block", 2)
  if len(depth) != 1 or not isinstance(layers, int):
    raise StageError(f"{where}: transformer_layers_per_block and layers_per_block must "
                     "be one number each, as Stable Diffusion's.")
  try:
    return ldm_unet.UNetConfig(
        in_channels=c.get("in_channels", 4), out_channels=c.get("out_channels", 4),
        model_channels=model_channels, num_res_blocks=layers,
        attention_resolutions=tuple(2 ** i for i, x in reversed(list(enumerate(cross)))
                                    if x),  # as CompVis' yaml lists them
        channel_mult=tuple(w // model_channels for w in widths),
        use_spatial_transformer=True, transformer_depth=depth.pop(),
        context_dim=c.get("cross_attention_dim", 1280),
        use_linear_in_transformer=bool(c.get("use_linear_projection", False)),
        image_size=c.get("sample_size"), **head_args)
  except ValueError as e:
    raise StageError(f"{where}: {e}") from None


def vae_config_from_diffusers(c: dict, where: str = "vae/config.json"
                              ) -> aekl.FirstStageConfig:
  """CompVis' AutoencoderKL configuration of a diffusers ``AutoencoderKL`` config."""
  levels = len(c.get("block_out_channels", (64,)))
  _unsupported(where, c, {
      "act_fn": ("silu",), "norm_num_groups": (32,), "use_quant_conv": (True,),
      "use_post_quant_conv": (True,), "mid_block_add_attention": (True,),
      "latents_mean": (None,), "latents_std": (None,), "shift_factor": (None,),
      "down_block_types": (("DownEncoderBlock2D",) * levels,),
      "up_block_types": (("UpDecoderBlock2D",) * levels,)})
  widths = tuple(c.get("block_out_channels", (64,)))
  latent = c.get("latent_channels", 4)
  if any(w % widths[0] for w in widths):
    raise StageError(f"{where}: block_out_channels {widths} are not multiples of the first.")
  try:
    return aekl.FirstStageConfig(
        ch=widths[0], ch_mult=tuple(w // widths[0] for w in widths),
        num_res_blocks=c.get("layers_per_block", 1), attn_resolutions=(),
        z_channels=latent, double_z=True, embed_dim=latent,
        resolution=c.get("sample_size", 32), in_channels=c.get("in_channels", 3),
        out_ch=c.get("out_channels", 3))
  except ValueError as e:
    raise StageError(f"{where}: {e}") from None


def text_config_from_transformers(c: dict, where: str = "text_encoder/config.json"
                                  ) -> clip.CLIPConfig:
  """jaxgen's CLIPConfig for transformers' ``CLIPTextModel`` config (its text tower)."""
  _unsupported(where, c, {"hidden_act": ("quick_gelu", "gelu"), "layer_norm_eps": (1e-5,)})
  width = c.get("hidden_size", 512)
  if c.get("intermediate_size", 2048) != 4 * width:
    raise StageError(f"{where}: intermediate_size={c.get('intermediate_size')} is not "
                     f"4 x hidden_size ({4 * width}), as CLIP's and jaxgen's MLP.")
  try:
    return clip.CLIPConfig(embed_dim=c.get("projection_dim", width), text_width=width,
                           text_layers=c.get("num_hidden_layers", 12),
                           text_heads=c.get("num_attention_heads", 8),
                           context_length=c.get("max_position_embeddings", 77),
                           vocab_size=c.get("vocab_size", 49408),
                           activation=c.get("hidden_act", "quick_gelu"))
  except ValueError as e:
    raise StageError(f"{where}: {e}") from None


# ---------------------------------------------------------------------------------------
# Key names.

_RESNET = {"in_layers_0": "norm1", "in_layers_2": "conv1", "emb_layers_1": "time_emb_proj",
           "out_layers_0": "norm2", "out_layers_3": "conv2", "skip_connection": "conv_shortcut"}
_UNET_TOP = {"time_embed_0": "time_embedding.linear_1", "time_embed_2": "time_embedding.linear_2",
             "input_blocks_0_0": "conv_in", "out_0": "conv_norm_out", "out_2": "conv_out"}
_BLOCK = re.compile(r"(input_blocks|output_blocks|middle_block)_(\d+)_?(\d+)?$")


def diffusers_unet_key(path: tuple[str, ...], config: ldm_unet.UNetConfig) -> str:
  """The diffusers ``UNet2DConditionModel`` key of the parameter at ``path`` of
  ``UNetModel(config)`` (CompVis' block numbering -> diffusers' levels):
  ("input_blocks_4_1", "proj_in", "kernel") -> "down_blocks.1.attentions.0.proj_in.weight"
  for 2 ResNet blocks a level."""
  head, *rest = path
  if head in _UNET_TOP:
    return f"{_UNET_TOP[head]}.{ldm.torch_key(tuple(rest))}"
  m = _BLOCK.match(head)
  if not m:
    raise ValueError(f"no diffusers key for {'/'.join(path)}")
  kind, a, b = m[1], int(m[2]), None if m[3] is None else int(m[3])
  r = config.num_res_blocks + 1
  if kind == "middle_block":  # middle_block_M: ResBlock, SpatialTransformer, ResBlock
    a, b = 0, a
    prefix = "mid_block.attentions.0" if b == 1 else f"mid_block.resnets.{b // 2}"
  elif kind == "input_blocks":
    level, j = (a - 1) // r, (a - 1) % r
    if j == config.num_res_blocks:  # the level's Downsample
      return f"down_blocks.{level}.downsamplers.0.conv.{ldm.torch_key(tuple(rest[1:]))}"
    prefix = f"down_blocks.{level}.{'resnets' if b == 0 else 'attentions'}.{j}"
  else:
    level, j = a // r, a % r
    if rest[0] == "conv":  # the level's Upsample (after the attention, if any)
      return f"up_blocks.{level}.upsamplers.0.conv.{ldm.torch_key(tuple(rest[1:]))}"
    prefix = f"up_blocks.{level}.{'resnets' if b == 0 else 'attentions'}.{j}"
  if "resnets" in prefix:
    rest = [_RESNET[rest[0]], *rest[1:]]
  return f"{prefix}.{ldm.torch_key(tuple(rest))}"


_VAE_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v",
                  "proj_out": "to_out.0"}
_VAE_ATTENTION_LEGACY = {"norm": "group_norm", "q": "query", "k": "key", "v": "value",
                         "proj_out": "proj_attn"}


def diffusers_vae_key(path: tuple[str, ...], levels: int, legacy: bool = False) -> str:
  """The diffusers ``AutoencoderKL`` key of the parameter at ``path`` of jaxgen's
  AutoencoderKL with ``levels`` levels: CompVis' key (``autoencoder_kl.compvis_key``)
  renamed (the decoder's levels counted from the lowest resolution; ``legacy``: the
  attention's older names query/key/value/proj_attn)."""
  key = aekl.compvis_key(path)
  attention = _VAE_ATTENTION_LEGACY if legacy else _VAE_ATTENTION
  key = re.sub(r"mid\.attn_1\.(\w+)\.", lambda m: f"mid_block.attentions.0.{attention[m[1]]}.",
               key)
  key = re.sub(r"mid\.block_(\d)\.", lambda m: f"mid_block.resnets.{int(m[1]) - 1}.", key)
  key = re.sub(r"encoder\.down\.(\d+)\.block\.", r"encoder.down_blocks.\1.resnets.", key)
  key = re.sub(r"encoder\.down\.(\d+)\.downsample\.", r"encoder.down_blocks.\1.downsamplers.0.",
               key)
  key = re.sub(r"decoder\.up\.(\d+)\.block\.",
               lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.resnets.", key)
  key = re.sub(r"decoder\.up\.(\d+)\.upsample\.",
               lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.", key)
  return key.replace("norm_out.", "conv_norm_out.").replace("nin_shortcut.", "conv_shortcut.")


_OPEN_CLIP_NAMES = {"ln_1": "layer_norm1", "ln_2": "layer_norm2",
                    "attn.out_proj": "self_attn.out_proj", "mlp.c_fc": "mlp.fc1",
                    "mlp.c_proj": "mlp.fc2"}


def open_clip_as_transformers(state: dict, prefix: str, layers: int, where: str) -> dict:
  """OpenCLIP's text tower under ``prefix`` (``token_embedding``,
  ``positional_embedding``, ``transformer.resblocks.N``, ``ln_final``) with
  transformers' CLIPTextModel keys, its first ``layers`` layers only; the file must
  hold one more (SD 2.x reads the penultimate layer's output)."""
  blocks = {int(m[1]) for k in state
            if (m := re.match(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.", k))}
  if len(blocks) != layers + 1:
    raise StageError(f"{where}: its OpenCLIP text tower has {len(blocks)} layers; the "
                     f"architecture reads the penultimate of {layers + 1}.")
  out = {}
  for key, value in state.items():
    if not key.startswith(prefix):
      continue
    k = key[len(prefix):]
    if k == "token_embedding.weight":
      out["embeddings.token_embedding.weight"] = value
    elif k == "positional_embedding":
      out["embeddings.position_embedding.weight"] = value
    elif k.startswith("ln_final."):
      out[k.replace("ln_final.", "final_layer_norm.")] = value
    elif m := re.match(r"transformer\.resblocks\.(\d+)\.(.+)[._](weight|bias)$", k):
      if int(m[1]) >= layers:
        continue
      base = f"encoder.layers.{m[1]}."
      if m[2] == "attn.in_proj":
        for name, part in zip(("q_proj", "k_proj", "v_proj"), np.split(np.asarray(value), 3)):
          out[f"{base}self_attn.{name}.{m[3]}"] = part
      else:
        out[f"{base}{_OPEN_CLIP_NAMES.get(m[2], m[2])}.{m[3]}"] = value
    elif k not in ("text_projection", "logit_scale", "attn_mask"):
      out[k] = value  # unexpected: reported by the reader
  return out


# ---------------------------------------------------------------------------------------
# Parameters from state dicts.

def _fit(state: dict, shapes: dict, key_of: Callable, what: str, prefix: str = "",
         skip: Callable = lambda k: False, hint: str = "") -> dict:
  """``torch_layout.state_dict_params``, a 1x1 convolution read where the model has a
  linear layer, its error as one line."""
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  for path, leaf in flat:
    names = tuple(p.key for p in path)
    key = prefix + key_of(names)
    value = state.get(key)
    if (names[-1] == "kernel" and len(leaf.shape) == 2 and value is not None
        and np.ndim(value) == 4 and np.shape(value)[2:] == (1, 1)):
      state = {**state, key: np.asarray(value)[:, :, 0, 0]}
  try:
    return torch_layout.state_dict_params(state, shapes, key_of, header=what, prefix=prefix,
                                          skip=skip)
  except ValueError as e:
    header, *problems = str(e).splitlines()
    raise StageError(f"{header} {'; '.join(p.strip() for p in problems)}{hint}") from None


def vae_shapes(config: aekl.FirstStageConfig) -> dict:
  side = 2 * config.factor
  x = jax.ShapeDtypeStruct((1, side, side, config.in_channels), jnp.float32)
  return jax.eval_shape(aekl.AutoencoderKL(config).init, jax.random.key(0), x)["params"]


def text_shapes(config: clip.CLIPConfig) -> dict:
  tokens = jax.ShapeDtypeStruct((1, config.context_length), jnp.int32)
  init = lambda key, tokens: clip.TextTransformer(config).init(key, tokens, True)
  return jax.eval_shape(init, jax.random.key(0), tokens)["params"]


def unet_params(state, config, layout: str, prefix: str = "", where: str = "") -> dict:
  """Variables of ``UNetModel(config)``; ``layout`` ``diffusers`` or ``compvis``."""
  shapes = ldm_unet.param_shapes(config)
  key_of = ((lambda p: diffusers_unet_key(p, config)) if layout == "diffusers"
            else ldm.torch_key)
  return _fit(state, shapes, key_of, f"{where} does not fit the U-Net {_describe(config)}",
              prefix)


def vae_params(state, config, layout: str, prefix: str = "", where: str = "") -> dict:
  """Variables of ``AutoencoderKL(config)``; either attention naming of diffusers."""
  shapes = vae_shapes(config)
  if layout == "diffusers":
    legacy = any(".mid_block.attentions.0.query." in k for k in state)
    key_of = lambda p: diffusers_vae_key(p, len(config.ch_mult), legacy)
  else:
    key_of = aekl.compvis_key
  return _fit(state, shapes, key_of, f"{where} does not fit the autoencoder", prefix,
              skip=lambda k: k.startswith("loss."))


def text_params(state, config, layout: str, prefix: str = "", where: str = "") -> dict:
  """Variables of ``clip.TextTransformer(config)`` from transformers' keys (with or
  without ``text_model.``) or OpenCLIP's (``open_clip``)."""
  if layout == "open_clip":
    state, prefix = open_clip_as_transformers(state, prefix, config.text_layers, where), ""
  if any(k.startswith(prefix + "text_model.") for k in state):
    prefix += "text_model."
  return _fit(state, text_shapes(config), clip_weights.hf_key,
              f"{where} does not fit the text encoder ({config.text_layers} layers of "
              f"{config.text_width})", prefix, skip=lambda k: k.endswith("position_ids"))


def _describe(c: ldm_unet.UNetConfig) -> str:
  heads = (f"{c.num_heads} heads" if c.num_heads != -1 else
           f"heads of {c.num_head_channels} channels")
  return (f"(width {c.model_channels} x {c.channel_mult}, cross-attention width "
          f"{c.context_dim}, {heads}, {'linear' if c.use_linear_in_transformer else 'conv'} "
          "proj_in/out)")


# ---------------------------------------------------------------------------------------
# Files.

LIGHTNING_CLASSES = ("pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
                     "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
                     "numpy.dtype")


def read_state(path) -> dict:
  """A weights file's tensors by name: ``.safetensors``, or a PyTorch pickle (a state
  dict, or a Lightning checkpoint's ``state_dict``)."""
  path = str(path)
  if path.endswith(".safetensors"):
    try:
      return safetensors.numpy.load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError
      raise StageError(f"{path} cannot be read as safetensors ({type(e).__name__}: {e}).") from None
  try:
    obj = torch_pickle.load_pickled_module(path, LIGHTNING_CLASSES)
  except torch_pickle.TorchPickleError as e:
    raise StageError(str(e)) from None
  state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
  if not isinstance(state, dict):
    raise StageError(f"{path} holds no state dict (a {type(obj).__name__}).")
  return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}


def _json(path) -> dict:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise StageError(f"{path} cannot be read ({type(e).__name__}: {e}).") from None


def read_tokenizer(folder) -> tuple[CLIPTokenizer, str | None]:
  """(tokenizer, its pad token or None) of a tokenizer folder: ``vocab.json`` +
  ``merges.txt``, or ``tokenizer.json``; the pad token from ``tokenizer_config.json``
  or ``special_tokens_map.json``."""
  folder = pathlib.Path(folder)
  if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
    tokenizer = CLIPTokenizer.from_files(folder / "vocab.json", folder / "merges.txt")
  elif (folder / "tokenizer.json").is_file():
    model = _json(folder / "tokenizer.json").get("model", {})
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in model.get("merges", [])]
    tokenizer = CLIPTokenizer(model.get("vocab", {}), merges)
  else:
    raise StageError(f"{folder} holds no tokenizer: vocab.json and merges.txt, or "
                     "tokenizer.json.")
  pad = None
  for name in ("tokenizer_config.json", "special_tokens_map.json"):
    if pad is None and (folder / name).is_file():
      pad = _json(folder / name).get("pad_token")
  if isinstance(pad, dict):
    pad = pad.get("content")
  return tokenizer, pad


@dataclasses.dataclass
class StableDiffusion:
  """Loaded weights: ``arch``, ``params`` (``{"unet", "vae", "text"}`` variables),
  the tokenizer and its pad id, ``source`` (what was read) and ``files`` (the paths
  read)."""
  arch: Architecture
  params: dict
  tokenizer: CLIPTokenizer
  pad_id: int
  source: str
  files: list
  name: str = ""

  @property
  def unet(self) -> ldm_unet.UNetModel:
    return ldm_unet.UNetModel(self.arch.unet)

  @property
  def vae(self) -> aekl.AutoencoderKL:
    return aekl.AutoencoderKL(self.arch.vae)

  @property
  def text_encoder(self) -> clip.TextTransformer:
    return clip.TextTransformer(self.arch.text)

  def tokenize(self, prompts) -> tuple[np.ndarray, list]:
    """(ids (N, context), the prompts that were truncated): start, tokens, end, then the
    pad token, as diffusers' pipelines tokenize (``padding="max_length"``,
    ``truncation=True``); a prompt too long keeps its first tokens and the end token."""
    length = self.arch.text.context_length
    ids = self.tokenizer(list(prompts), context_length=length + 1, truncate=True)
    truncated = [p for p, row in zip(prompts, ids) if row[-1] != 0]
    ids = self.tokenizer(list(prompts), context_length=length, truncate=True)
    ends = (ids != 0).cumsum(1).argmax(1)  # the end token: the last nonzero id
    ids = np.where(np.arange(length)[None] > ends[:, None], self.pad_id, ids)
    return ids.astype(np.int32), truncated

  def text_states(self, params, ids):
    """The text encoder's last states (after its final LayerNorm), (N, L, width)."""
    return self.text_encoder.apply(params, ids, True)

  def digests(self) -> dict:
    """SHA-256 of every file read."""
    return {str(f): weights.sha256(f) for f in self.files}


_FOLDER_FILES = {
    "unet": ("config.json", ("diffusion_pytorch_model.safetensors",
                             "diffusion_pytorch_model.fp16.safetensors",
                             "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")),
    "vae": ("config.json", ("diffusion_pytorch_model.safetensors",
                            "diffusion_pytorch_model.fp16.safetensors",
                            "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")),
    "text_encoder": ("config.json", ("model.safetensors", "model.fp16.safetensors",
                                     "pytorch_model.bin", "pytorch_model.fp16.bin")),
}


def _component(folder: pathlib.Path, name: str) -> tuple[dict, pathlib.Path]:
  config, files = _FOLDER_FILES[name]
  where = folder / name
  if not (where / config).is_file():
    raise StageError(f"{folder} is not a complete diffusers Stable Diffusion folder: "
                     f"{name}/{config} is missing (it needs unet/, vae/, text_encoder/, "
                     "tokenizer/ and scheduler/).")
  for f in files:
    if (where / f).is_file():
      return _json(where / config), where / f
  raise StageError(f"{folder} is not a complete diffusers Stable Diffusion folder: "
                   f"{name}/ has no weights ({' or '.join(files)}).")


def load_folder(path, model: str | None = None) -> StableDiffusion:
  """A diffusers folder; ``model`` (a preset name), if given, must agree with it."""
  folder = pathlib.Path(path)
  for name in ("tokenizer", "scheduler"):
    if not (folder / name).is_dir():
      raise StageError(f"{folder} is not a complete diffusers Stable Diffusion folder: "
                       f"{name}/ is missing (it needs unet/, vae/, text_encoder/, "
                       "tokenizer/ and scheduler/).")
  scheduler_file = folder / "scheduler" / "scheduler_config.json"
  if not scheduler_file.is_file():
    raise StageError(f"{folder} is not a complete diffusers Stable Diffusion folder: "
                     "scheduler/scheduler_config.json is missing.")
  (unet_c, unet_f), (vae_c, vae_f), (text_c, text_f) = (
      _component(folder, n) for n in ("unet", "vae", "text_encoder"))
  tokenizer, pad = read_tokenizer(folder / "tokenizer")
  arch = Architecture(
      unet=unet_config_from_diffusers(unet_c, f"{folder}/unet/config.json"),
      vae=vae_config_from_diffusers(vae_c, f"{folder}/vae/config.json"),
      text=text_config_from_transformers(text_c, f"{folder}/text_encoder/config.json"),
      scheduler=Scheduler.from_config(_json(scheduler_file), str(scheduler_file)),
      scaling_factor=float(vae_c.get("scaling_factor", 0.18215)),
      pad_token=pad or "<|endoftext|>", sample_size=unet_c.get("sample_size"))
  if model is not None:
    _agrees(arch, model, str(folder))
  params = {"unet": unet_params(read_state(unet_f), arch.unet, "diffusers",
                                where=str(unet_f)),
            "vae": vae_params(read_state(vae_f), arch.vae, "diffusers", where=str(vae_f)),
            "text": text_params(read_state(text_f), arch.text, "transformers",
                                where=str(text_f))}
  return _loaded(arch, params, tokenizer, str(folder), [unet_f, vae_f, text_f],
                 model or "folder")


_TEXT_FIELDS = ("text_width", "text_layers", "text_heads", "vocab_size", "context_length",
                "activation")


def _agrees(arch: Architecture, model: str, where: str):
  preset = _preset(model)
  unet = lambda a: dataclasses.replace(a.unet, image_size=None, use_checkpoint=False)
  text = lambda a: tuple(getattr(a.text, f) for f in _TEXT_FIELDS)
  for part, name in ((unet, "U-Net"), (text, "text encoder")):
    if part(arch) != part(preset):
      raise StageError(f"{where} does not hold the {name} of --model={model} "
                       f"({_family(preset)}); a folder needs no --model.")
  if arch.scheduler.prediction_type != preset.scheduler.prediction_type:
    raise StageError(f"{where} predicts {arch.scheduler.prediction_type}, --model={model} "
                     f"{preset.scheduler.prediction_type}.")


def _family(arch: Architecture) -> str:
  return ("Stable Diffusion 2.x" if arch.unet.context_dim == 1024 else
          "Stable Diffusion 1.x" if arch.unet.context_dim == 768 else
          f"a cross-attention width of {arch.unet.context_dim}")


def _preset(model: str) -> Architecture:
  if model not in PRESETS:
    raise ConfigError(f"--model={model!r} is not an architecture jaxgen knows; use one of "
                      f"{', '.join(PRESETS)}.")
  return PRESETS[model]


def load_single_file(path, arch: Architecture | str | None = None, tokenizer=None
                     ) -> StableDiffusion:
  """A CompVis checkpoint of the architecture ``arch`` (a preset name, an
  ``Architecture``, or None for an SD 1.x file); ``tokenizer``: a folder or None for
  the registry's OpenAI BPE."""
  path = pathlib.Path(path)
  state = read_state(path)
  openclip = any(k.startswith("cond_stage_model.model.") for k in state)
  hf_text = any(k.startswith("cond_stage_model.transformer.") for k in state)
  if not (openclip or hf_text) or not any(k.startswith("model.diffusion_model.") for k in state):
    raise StageError(f"{path} is not a CompVis Stable Diffusion checkpoint: it lacks "
                     "model.diffusion_model.* or cond_stage_model.* keys.")
  width = state.get("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2."
                    "to_k.weight")
  found = "Stable Diffusion 2.x checkpoint" if openclip else "Stable Diffusion 1.x checkpoint"
  if width is not None:
    found += f" (cross-attention width {np.shape(width)[1]})"
  if arch is None:
    if openclip:
      raise ConfigError(f"{path} is a {found}: name its architecture, "
                        "--model=sd2 (the 512 models, epsilon) or --model=sd2_v (the 768 "
                        "models, v-prediction).")
    arch = "sd1"
  name = arch if isinstance(arch, str) else "custom"
  if isinstance(arch, str):
    arch = _preset(arch)
  if openclip != (arch.text_format == "open_clip"):
    named = f"--model={name} names" if name != "custom" else "was given"
    raise StageError(f"{path} is a {found}, not the {_family(arch)} "
                     f"architecture that {named}.")
  if tokenizer is None:
    vocab = CLIPTokenizer.from_openai_bpe(weights.resolve("clip_bpe"))
  else:
    tokenizer = pathlib.Path(tokenizer)
    vocab, _ = read_tokenizer(tokenizer if tokenizer.is_dir() else tokenizer.parent)
  text_prefix = "cond_stage_model.model." if openclip else "cond_stage_model.transformer."
  params = {"unet": unet_params(state, arch.unet, "compvis", "model.diffusion_model.",
                                str(path)),
            "vae": vae_params(state, arch.vae, "compvis", "first_stage_model.", str(path)),
            "text": text_params(state, arch.text, arch.text_format, text_prefix, str(path))}
  return _loaded(arch, params, vocab, str(path), [path], name)


def _loaded(arch, params, tokenizer, source, files, name) -> StableDiffusion:
  if arch.pad_token not in tokenizer.vocab:
    raise StageError(f"{source}: the pad token {arch.pad_token!r} is not in the "
                     "tokenizer's vocabulary.")
  if len(tokenizer.vocab) > arch.text.vocab_size:
    raise StageError(f"{source}: the tokenizer has {len(tokenizer.vocab)} tokens, the text "
                     f"encoder {arch.text.vocab_size}.")
  return StableDiffusion(arch, params, tokenizer, tokenizer.vocab[arch.pad_token], source,
                         list(files), name)


def load(path, model: str | None = None, tokenizer=None) -> StableDiffusion:
  """A diffusers folder, a CompVis checkpoint, or a registered name (see the module
  docstring)."""
  if str(path) in REGISTERED and not os.path.exists(str(path)):
    model = model or REGISTERED[str(path)]
    path = weights.resolve(str(path))
  path = pathlib.Path(path).expanduser()
  if path.is_dir():
    return load_folder(path, model)
  if path.is_file():
    return load_single_file(path, model, tokenizer)
  raise StageError(f"--weights={str(path)!r} is neither a diffusers folder, a checkpoint "
                   f"file, nor a registered name ({', '.join(REGISTERED)}).")


def param_shapes(arch: Architecture) -> dict:
  """The shapes of the three networks' parameters (``jax.eval_shape``: nothing is
  allocated), ``{"unet", "vae", "text"}``."""
  return {"unet": ldm_unet.param_shapes(arch.unet, arch.text.context_length),
          "vae": vae_shapes(arch.vae), "text": text_shapes(arch.text)}
