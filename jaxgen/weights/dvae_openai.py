"""OpenAI's published DALL-E dVAE weights (``encoder.pkl``, ``decoder.pkl``) as Flax
parameters of jaxgen.families.dvae.networks, and as an ``Autoencoder`` stage.

The files are whole PyTorch modules pickled with ``torch.save`` (dall_e.encoder.Encoder
and dall_e.decoder.Decoder). They are read by jaxgen/weights/torch_pickle.py's
restricted reader, which accepts only the DALL-E and torch.nn container classes listed
here and builds plain records of them (no code from the file runs, PyTorch is not
needed). The architecture (width, blocks per group, codes, groups) is read from the
pickled modules, checked, and each ``Conv2d`` (w: out x in x k x k, b) becomes a Flax
convolution (kernel: k x k x in x out, bias).

  enc, dec = load_openai()  # the registry's files (weights cache or download)
  stage = OpenAIDVAE.from_files(enc_path, dec_path, image_size=256)
  codes = stage.encode(stage_params, images)  # (N, 32, 32) int32 in [0, 8192)
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import precision, weights
from jaxgen.errors import UserError
from jaxgen.families.dvae import losses
from jaxgen.families.dvae import networks as dvae_models
from jaxgen.stages import CodeAutoencoder
from jaxgen.weights import torch_pickle

_NN = "torch.nn.modules."
_COMMON = (f"{_NN}container.Sequential", f"{_NN}activation.ReLU", f"{_NN}linear.Identity",
           "dall_e.utils.Conv2d")
ENCODER_CLASSES = (*_COMMON, "dall_e.encoder.Encoder", "dall_e.encoder.EncoderBlock",
                   f"{_NN}pooling.MaxPool2d")
DECODER_CLASSES = (*_COMMON, "dall_e.decoder.Decoder", "dall_e.decoder.DecoderBlock",
                   f"{_NN}upsampling.Upsample")


class DVAEWeightsError(UserError):
  """A file is not OpenAI's dVAE encoder or decoder of the expected architecture."""


def _read(path, kind: str):
  classes = ENCODER_CLASSES if kind == "encoder" else DECODER_CLASSES
  top = f"dall_e.{kind}.{kind.capitalize()}"
  try:
    module = torch_pickle.load_pickled_module(path, classes)
  except torch_pickle.TorchPickleError as e:
    raise DVAEWeightsError(
        f"{path} is not OpenAI's dVAE {kind} (a pickled {top}, as "
        f"https://cdn.openai.com/dall-e/{kind}.pkl): {e}") from None
  if not isinstance(module, torch_pickle.PickledObject) or module.cls != top:
    what = (module.cls if isinstance(module, torch_pickle.PickledObject)
            else type(module).__name__)
    raise DVAEWeightsError(f"{path} holds a {what}, not a pickled {top} (OpenAI's "
                           f"{kind}.pkl).")
  return module


def _conv(obj, where: str) -> dict:
  if obj.cls != "dall_e.utils.Conv2d":
    raise DVAEWeightsError(f"{where} is a {obj.cls}, expected dall_e.utils.Conv2d")
  p = obj.parameters
  if set(p) != {"w", "b"}:
    raise DVAEWeightsError(f"{where} has parameters {sorted(p)}, expected w and b")
  return {"kernel": np.ascontiguousarray(np.transpose(p["w"], (2, 3, 1, 0))),
          "bias": np.asarray(p["b"])}


def _blocks(module, kind: str):
  """(architecture dict, Flax params) of a pickled Encoder or Decoder."""
  s = module.state
  blocks = module.children.get("blocks")
  if blocks is None:
    raise DVAEWeightsError(f"the pickled {kind} has no 'blocks'")
  children = blocks.children
  groups = sorted((k for k in children if k.startswith("group_")),
                  key=lambda k: int(k.split("_")[1]))
  if not groups or set(children) != {"input", "output", *groups}:
    raise DVAEWeightsError(f"the {kind}'s blocks are {list(children)}, expected input, "
                           f"group_1..group_G, output")
  params = {"input": _conv(children["input"], "blocks.input")}
  block_cls = f"dall_e.{kind}.{kind.capitalize()}Block"
  n_layers = None
  for g, name in enumerate(groups):
    for bname, blk in children[name].children.items():
      where = f"blocks.{name}.{bname}"
      if not bname.startswith("block_"):
        continue  # the pool / upsample, which have no parameters
      if blk.cls != block_cls:
        raise DVAEWeightsError(f"{where} is a {blk.cls}, expected {block_cls}")
      n_layers = blk.state.get("n_layers", n_layers)
      out = {}
      ident = blk.children["id_path"]
      if ident.cls != f"{_NN}linear.Identity":
        out["id_path"] = _conv(ident, f"{where}.id_path")
      for cname, conv in blk.children["res_path"].children.items():
        if cname.startswith("conv_"):
          out[cname] = _conv(conv, f"{where}.res_path.{cname}")
      params[f"{name}_{bname}"] = out
  params["output"] = _conv(children["output"].children["conv"], "blocks.output.conv")
  arch = {"group_count": len(groups), "n_hid": int(s["n_hid"]),
          "n_blk_per_group": int(s["n_blk_per_group"]), "vocab_size": int(s["vocab_size"]),
          "n_layers": n_layers}
  if kind == "decoder":
    arch.update(n_init=int(s["n_init"]), channels=int(s["output_channels"]))
  else:
    arch.update(channels=int(s["input_channels"]))
  return arch, params


def _check_shapes(module, example, params, path, kind):
  expected = jax.eval_shape(module.init, jax.random.key(0), example)["params"]
  flat_e = {"/".join(str(getattr(k, "key", k)) for k in kp): v.shape
            for kp, v in jax.tree_util.tree_leaves_with_path(expected)}
  flat_p = {"/".join(str(getattr(k, "key", k)) for k in kp): np.shape(v)
            for kp, v in jax.tree_util.tree_leaves_with_path(params)}
  missing, unexpected = sorted(set(flat_e) - set(flat_p)), sorted(set(flat_p) - set(flat_e))
  wrong = [f"{k}: {flat_p[k]} vs {flat_e[k]}" for k in sorted(set(flat_e) & set(flat_p))
           if tuple(flat_p[k]) != tuple(flat_e[k])]
  if missing or unexpected or wrong:
    raise DVAEWeightsError(
        f"{path} does not have the architecture of OpenAI's dVAE {kind} that its own "
        f"settings describe (missing: {', '.join(missing[:5]) or 'none'}; unexpected: "
        f"{', '.join(unexpected[:5]) or 'none'}; wrong shapes: "
        f"{', '.join(wrong[:5]) or 'none'}).")


def load_encoder(path):
  """(jaxgen.families.dvae.networks.Encoder, its params, architecture) from a pickled
  dall_e.encoder.Encoder."""
  arch, params = _blocks(_read(path, "encoder"), "encoder")
  module = dvae_models.Encoder(arch["group_count"], arch["n_hid"],
                               arch["n_blk_per_group"], arch["vocab_size"])
  side = dvae_models.downsampling(arch["group_count"])
  _check_shapes(module, jnp.zeros((1, side, side, arch["channels"])), params, path,
                "encoder")
  _check_layers(arch, path, "encoder")
  return module, jax.tree.map(jnp.asarray, params), arch


def load_decoder(path):
  """(jaxgen.families.dvae.networks.Decoder, its params, architecture) from a pickled
  dall_e.decoder.Decoder."""
  arch, params = _blocks(_read(path, "decoder"), "decoder")
  module = dvae_models.Decoder(arch["group_count"], arch["n_init"], arch["n_hid"],
                               arch["n_blk_per_group"], arch["channels"])
  _check_shapes(module, jnp.zeros((1, 1, 1, arch["vocab_size"])), params, path, "decoder")
  _check_layers(arch, path, "decoder")
  return module, jax.tree.map(jnp.asarray, params), arch


def _check_layers(arch, path, kind):
  want = arch["group_count"] * arch["n_blk_per_group"]
  if arch["n_layers"] not in (None, want):
    raise DVAEWeightsError(f"{path}: the {kind}'s blocks were built for n_layers="
                           f"{arch['n_layers']} (post-gain 1/n_layers^2), but it has "
                           f"{arch['group_count']} groups of {arch['n_blk_per_group']}.")


def load_openai(encoder=None, decoder=None, download: bool = True):
  """The paths of OpenAI's encoder.pkl and decoder.pkl (given paths, or the weights
  cache; missing files give the registry's error saying where to put them)."""
  return (weights.resolve("dalle_encoder", encoder, download=download),
          weights.resolve("dalle_decoder", decoder, download=download))


class OpenAIDVAE(CodeAutoencoder):
  """OpenAI's dVAE as a frozen ``Autoencoder`` stage: images (N, S, S, 3) in [0, 1]
  -> argmax codes (N, S/8, S/8); codes -> unmap(sigmoid(location))."""
  # A weights file has no config.compute: float32 unless a caller sets ``policy``.
  policy = precision.Policy()

  def __init__(self, encoder, decoder, eps: float, image_size: int, channels: int,
               num_codes: int, group_count: int):
    self.encoder, self.decoder, self.eps = encoder, decoder, eps
    side = image_size // dvae_models.downsampling(group_count)
    self.example_shape = (image_size, image_size, channels)
    self.num_codes = num_codes
    self.latent_spec = jax.ShapeDtypeStruct((side, side), jnp.int32)

  @classmethod
  def from_files(cls, encoder_path, decoder_path, image_size: int = 256):
    """(stage, params) from the two files."""
    enc, enc_params, ea = load_encoder(encoder_path)
    dec, dec_params, da = load_decoder(decoder_path)
    if ea["vocab_size"] != da["vocab_size"] or ea["group_count"] != da["group_count"]:
      raise DVAEWeightsError(
          f"{encoder_path} ({ea['vocab_size']} codes, {ea['group_count']} groups) and "
          f"{decoder_path} ({da['vocab_size']} codes, {da['group_count']} groups) are "
          f"not the two halves of one dVAE.")
    if image_size % dvae_models.downsampling(ea["group_count"]):
      raise ValueError(f"image_size={image_size} must be a multiple of "
                       f"{dvae_models.downsampling(ea['group_count'])}.")
    stage = cls(enc, dec, losses.LOGIT_LAPLACE_EPS, image_size, ea["channels"],
                ea["vocab_size"], ea["group_count"])
    return stage, {"encoder": enc_params, "decoder": dec_params}

  @classmethod
  def from_file(cls, path, image_size: int = 256):
    """(stage, params) from the encoder file ``path``; the decoder is the file beside
    it whose name has ``decoder`` for ``encoder`` (encoder.pkl -> decoder.pkl), for
    stage loaders that take one path."""
    path = str(path)
    folder, name = os.path.split(path)
    if "encoder" not in name:
      raise DVAEWeightsError(f"{path}: name the dVAE's encoder file (encoder.pkl), with "
                             f"its decoder.pkl beside it.")
    decoder = os.path.join(folder, name.replace("encoder", "decoder"))
    if not os.path.isfile(decoder):
      raise weights.WeightsError(
          f"The dVAE decoder {decoder} that belongs with {path} does not exist: put "
          f"OpenAI's decoder.pkl ({weights.KNOWN['dalle_decoder'].url}) beside the "
          f"encoder file.")
    return cls.from_files(path, decoder, image_size)

  def logits(self, params, images):
    return self.policy.apply(self.encoder, {"params": params["encoder"]},
                             losses.map_pixels(images, self.eps))

  def encode(self, params, images):
    if tuple(images.shape[1:]) != self.example_shape:
      raise ValueError(f"This dVAE encoder takes {self.example_shape} images here, got "
                       f"{tuple(images.shape[1:])}: resize them, or build the stage "
                       f"with image_size={images.shape[1]}.")
    return jnp.argmax(self.logits(params, images), -1).astype(jnp.int32)

  def decoder_stats(self, params, one_hot):
    return self.policy.apply(self.decoder, {"params": params["decoder"]}, one_hot)

  def decode(self, params, codes):
    stats = self.decoder_stats(params, jax.nn.one_hot(codes, self.num_codes))
    loc = stats[..., :stats.shape[-1] // 2]
    return losses.unmap_pixels(jax.nn.sigmoid(loc), self.eps)


def _is_encoder_pickle(path) -> bool:
  name = os.path.basename(str(path))
  return name.endswith(".pkl") and "encoder" in name


@weights.register_reader("openai_dvae", provides=OpenAIDVAE,
                         accepts=_is_encoder_pickle,
                         what="OpenAI's dVAE encoder.pkl, with its decoder.pkl beside it")
def read_stage(path, spec):
  """OpenAI's dVAE as an ``Autoencoder`` stage, sized to the run's images (its
  ``image`` spec; 256x256 without one)."""
  image = spec.get("image")
  return OpenAIDVAE.from_file(path, image_size=int(image.shape[0]) if image else 256)
