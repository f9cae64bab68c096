"""The autoregressive family: PixelCNN, Gated PixelCNN and PixelCNN++ over images, and
a Gated PixelCNN prior over the codes of a frozen VQ-VAE stage.

``config.model.arch``: ``pixelcnn`` (van den Oord et al. 2016a), ``gated`` (2016b) or
``pixelcnnpp`` (Salimans et al. 2017). ``config.model.likelihood``:
  bernoulli           binarised data (``config.data.binarize`` set), one logit per
                      sub-pixel;
  categorical256      grey-level or colour data, a 256-way softmax per sub-pixel
                      (pixelcnn, gated);
  categorical         the prior's K-way softmax over the stage's codes;
  logistic_mixture    PixelCNN++'s discretised mixture of ``num_mix`` logistics with
                      the channel dependence inside a pixel (pixelcnnpp only).
The model sees the image's integer levels (0..L-1) scaled to [-1, 1].

Training minimises the NLL in nats per dimension; ``--mode=eval`` reports the test
NLL in nats per image (``nll_nats``: the binarised-MNIST number) and in bits per
dimension (``bits_per_dim``), plus the sample metrics of ``config.eval.metrics``.

Sampling is sequential over pixels and channels in ONE compiled ``lax.fori_loop``:
step t evaluates the network on the current canvas and draws sub-pixel t (pixel t for
the mixture, whose channels are drawn jointly). For pixelcnn and gated, step t runs
the network on the ``rows_above + 1`` rows ending at t's row only (its receptive
field's height): the same outputs as on the whole canvas, H / (rows_above + 1) times
fewer FLOPs (tests/test_pixelcnn.py checks both). PixelCNN++ samples by default
with the cached network of fast_sampling.py (Ramachandran et al. 2017: each layer
keeps its activations and a pixel computes only what it changes; the same samples as
the full network, over 100x faster at batch 16; ``sample_levels(cached=False)`` is
the full-network reference, tests/test_pixelcnn_cached.py). Completion
(``complete``) runs the same sampler with some pixels given: it keeps them and
samples the rest; an autoregressive model conditions each sampled pixel on the
given pixels BEFORE it in raster order (so a top-half mask is the exact
conditional). The pictures of ``--mode=sample`` are
``samples`` (class-conditional: one row per class) and ``completion``: per test image
the occluded input, ``config.complete.num_completions`` completions and the original.
``python -m jaxgen.families.pixelcnn.complete`` does the same for image files.

The VQ-VAE paper's prior over a frozen VQ-VAE's codes, the same networks with a
K-way categorical, is the family ``pixelcnn_prior`` (jaxgen/families/pixelcnn_prior/).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, precision, viz
from jaxgen.errors import ConfigError
from jaxgen.families.pixelcnn import fast_sampling
from jaxgen.families.pixelcnn import networks as px
from jaxgen.families.pixelcnn.losses import (discretized_mix_logistic_log_prob,
                                             mix_logistic_num_params,
                                             sample_discretized_mix_logistic)
from jaxgen.families.pixelcnn.pixelcnnpp import PixelCNNPP
from jaxgen.families.base import OneOptimizerTrainer

ARCHS = ("pixelcnn", "gated", "pixelcnnpp")
LIKELIHOODS = ("bernoulli", "categorical256", "logistic_mixture", "categorical")


def make_network(m, channels: int, out_per_channel: int, num_classes: int,
                 out_features: int = 0):
  """The network of ``config.model`` (plain arguments in, a Flax module out)."""
  if m.arch == "pixelcnn":
    if num_classes:
      raise ConfigError("arch='pixelcnn' is unconditional: use arch='gated' for class "
                        "conditioning (or set config.model.num_classes=0).")
    return px.PixelCNN(channels, m.features, m.num_layers, out_per_channel,
                       m.first_kernel_size, m.kernel_size, m.output_features,
                       m.first_mask)
  if m.arch == "gated":
    return px.GatedPixelCNN(channels, m.features, m.num_layers, out_per_channel,
                            m.first_kernel_size, m.kernel_size, m.output_features,
                            num_classes, m.first_mask)
  if m.arch == "pixelcnnpp":
    return PixelCNNPP(m.features, m.num_layers, out_features, m.dropout, num_classes,
                      m.num_scales)
  raise ConfigError(f"config.model.arch={m.arch!r}; use one of {ARCHS}.")


def parse_mask(spec: str, height: int, width: int) -> np.ndarray:
  """The (H, W) boolean map of VISIBLE pixels for a completion mask name:
  ``top_half``, ``left_half``, ``rows:K`` (the first K rows), ``pixels:P`` (the first
  P pixels in raster order). A mask that shows everything or nothing is refused."""
  visible = np.zeros((height, width), bool)
  if spec == "top_half":
    visible[:height // 2] = True
  elif spec == "left_half":
    visible[:, :width // 2] = True
  elif spec.startswith("rows:") and spec[5:].isdigit():
    visible[:int(spec[5:])] = True
  elif spec.startswith("pixels:") and spec[7:].isdigit():
    visible.reshape(-1)[:int(spec[7:])] = True
  else:
    raise ConfigError(f"Completion mask {spec!r}; use top_half, left_half, rows:K or "
                      f"pixels:P (config.complete.mask or --mask).")
  check_mask(visible)
  return visible


def check_mask(visible):
  """Refuse a completion mask that occludes nothing or everything."""
  visible = np.asarray(visible, bool)
  if visible.all():
    raise ConfigError("The completion mask occludes nothing: every pixel is given, so "
                      "there is nothing to complete. Occlude some pixels (for example "
                      "mask=top_half keeps the top half).")
  if not visible.any():
    raise ConfigError("The completion mask occludes everything: with no pixel given "
                      "a completion is an unconditional sample (use --mode=sample's "
                      "samples). Keep some pixels visible (for example mask=top_half).")


class PixelCNNTrainer(OneOptimizerTrainer):

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    d = config.data
    self.scale = d.scale
    _check_data(config.model, d)
    self.levels = 2 if config.model.likelihood == "bernoulli" else 256
    self.build_network(config, self.example_shape)

  # --- networks -------------------------------------------------------------------
  def build_network(self, config, shape):
    """The network of ``config.model`` over arrays of ``shape`` (H, W, C) of
    ``self.levels`` levels, and what sampling needs to know of it."""
    m = config.model
    if m.arch not in ARCHS:
      raise ConfigError(f"config.model.arch={m.arch!r}; use one of {ARCHS}.")
    if m.likelihood not in LIKELIHOODS:
      raise ConfigError(f"config.model.likelihood={m.likelihood!r}; use one of "
                        f"{LIKELIHOODS}.")
    if (m.likelihood == "logistic_mixture") != (m.arch == "pixelcnnpp"):
      raise ConfigError(
          f"config.model.arch={m.arch!r} with config.model.likelihood="
          f"{m.likelihood!r}: the logistic mixture "
          f"models a pixel's channels jointly and goes with arch='pixelcnnpp', whose "
          f"outputs see no channel of their own pixel; pixelcnn and gated order the "
          f"channels R -> G -> B and take bernoulli or categorical256.")
    if m.arch != "pixelcnnpp":
      px.check_causal(m.arch, m.first_mask, (m.first_kernel_size, m.kernel_size))
    self.arch = m.arch
    self.likelihood = m.likelihood
    self.num_classes = m.num_classes
    self.num_mix = m.num_mix
    h, w, c = shape
    self.shape, self.num_dims = (h, w, c), h * w * c
    self.out_per_channel = (1 if self.likelihood == "bernoulli" else self.levels)
    self.net = make_network(m, c, self.out_per_channel, self.num_classes,
                            mix_logistic_num_params(c, m.num_mix))
    self.has_dropout = m.arch == "pixelcnnpp"
    # Rows above a pixel that its output can see (PixelCNN++: all, it down-samples).
    # Sampling row i evaluates the network on rows i - rows_above .. i only: exactly
    # the full network's output at row i, ~H / (rows_above + 1) times cheaper.
    if m.arch == "pixelcnn":
      self.rows_above = m.first_kernel_size // 2 + m.num_layers * (m.kernel_size // 2)
    elif m.arch == "gated":
      self.rows_above = (m.first_kernel_size // 2 + (m.num_layers - 1)
                         * (m.kernel_size // 2) + 1)
    else:
      self.rows_above = h

  @property
  def conditioning_keys(self):
    return ("label",) if self.num_classes else ()

  def net_input(self, levels):
    """Integer levels (N, H, W, C) -> the network's input in [-1, 1]."""
    return 2.0 * levels.astype(jnp.float32) / (self.levels - 1) - 1.0

  def networks(self):
    x = self.net_input(jnp.zeros((1, *self.shape), jnp.int32))
    kwargs = {"labels": jnp.zeros((1,), jnp.int32)} if self.num_classes else {}
    return {"pixelcnn": (self.net, (x,), kwargs)}

  def apply(self, params, levels, labels=None, rng=None):
    """The network's output for integer ``levels``: (N, H, W, C, K) logits, or the
    mixture's parameters (N, H, W, P). ``rng`` given: training (dropout on)."""
    kwargs = {}
    if self.has_dropout:
      kwargs["deterministic"] = rng is None
    rngs = {"dropout": rng} if (rng is not None and self.has_dropout) else None
    return self.policy.apply(self.net, {"params": params}, self.net_input(levels),
                             labels if self.num_classes else None, rngs=rngs, **kwargs)

  def log_prob(self, out, levels):
    """log p(levels) per example, in nats."""
    if self.likelihood == "bernoulli":
      return losses.bernoulli_log_prob(levels.astype(jnp.float32), out[..., 0])
    if self.likelihood == "logistic_mixture":
      return discretized_mix_logistic_log_prob(self.net_input(levels), out,
                                               self.num_mix, self.levels)
    logp = jax.nn.log_softmax(out, -1)
    picked = jnp.take_along_axis(logp, levels[..., None].astype(jnp.int32), -1)[..., 0]
    return picked.reshape(picked.shape[0], -1).sum(-1)

  # --- data <-> levels ------------------------------------------------------------
  def to_levels(self, images, frozen=None):
    """Preprocessed images (the data's range) -> integer levels (N, H, W, C)."""
    x = (images + 1.0) / 2.0 if self.scale == "symmetric" else images
    return jnp.clip(jnp.round(x * (self.levels - 1)), 0, self.levels - 1).astype(jnp.int32)

  def from_levels(self, levels, frozen=None):
    """Integer levels -> images in [0, 1]."""
    return levels.astype(jnp.float32) / (self.levels - 1)

  def example_levels(self, batch, frozen=None):
    return self.to_levels(batch["image"], frozen)

  # --- training and evaluation ----------------------------------------------------
  def loss(self, params, batch, rng, frozen=None):
    """The NLL in nats per dimension, mean over the batch."""
    levels = self.example_levels(batch, frozen)
    labels = batch.get("label") if self.num_classes else None
    nll = -self.log_prob(self.apply(params, levels, labels, rng), levels)
    loss = nll.mean() / self.num_dims
    return loss, {"nll_nats": nll.mean(), "bits_per_dim": loss / math.log(2.0)}

  def eval_step(self, state, batch, rng, frozen=None):
    levels, mask = self.example_levels(batch, frozen), batch["mask"]
    labels = batch.get("label") if self.num_classes else None
    nll = -self.log_prob(self.apply(state.ema_params, levels, labels), levels)
    return {"count": mask.sum(), "nll_nats": (nll * mask).sum()}

  def finalize_eval(self, sums):
    out = super().finalize_eval(sums)
    return {**out, "bits_per_dim": out["nll_nats"] / (self.num_dims * math.log(2.0)),
            "num_dims": self.num_dims}

  # --- sampling -------------------------------------------------------------------
  def sample_levels(self, params, rng, num: int, labels=None, given=None, visible=None,
                    window: bool = True, cached: bool = True):
    """``num`` level arrays (num, H, W, C), drawn sub-pixel by sub-pixel in one
    compiled loop. ``given`` (num, H, W, C) with ``visible`` (num, H, W): those
    pixels are kept (completion). PixelCNN++ with ``cached`` (the default) runs
    fast_sampling.py's cached network (each layer's activations kept, a pixel
    computes what it changes); otherwise each step runs the full network on the
    canvas, with ``window`` on the rows that row i's outputs can see only
    (``rows_above``; the same numbers, fewer FLOPs). Both give the same samples."""
    h, w, c = self.shape
    canvas = (jnp.zeros((num, h, w, c), jnp.int32) if given is None
              else given.astype(jnp.int32))
    visible = (jnp.zeros((num, h, w), bool) if visible is None
               else jnp.broadcast_to(visible, (num, h, w)))
    labels = labels if self.num_classes else None
    if cached and self.arch == "pixelcnnpp":
      return self.sample_levels_cached(params, rng, canvas, visible, labels)
    joint = self.likelihood == "logistic_mixture"
    steps = h * w if joint else h * w * c
    rows = min(h, self.rows_above + 1) if window else h

    def body(t, canvas):
      pix, ch = (t, 0) if joint else (t // c, t % c)
      i, j = pix // w, pix % w
      start = jnp.clip(i - rows + 1, 0, h - rows)
      part = jax.lax.dynamic_slice_in_dim(canvas, start, rows, axis=1)
      out = self.apply(params, part, labels)
      at = i - start  # row i inside the window
      key = jax.random.fold_in(rng, t)
      keep = visible[:, i, j]
      if joint:
        new = self.draw(key, out[:, at, j])
        new = jnp.where(keep[:, None], canvas[:, i, j], new)
        return canvas.at[:, i, j].set(new)
      new = self.draw(key, out[:, at, j, ch])
      new = jnp.where(keep, canvas[:, i, j, ch], new)
      return canvas.at[:, i, j, ch].set(new)

    return jax.lax.fori_loop(0, steps, body, canvas)

  def sample_levels_cached(self, params, rng, canvas, visible, labels=None,
                           return_outputs: bool = False):
    """``sample_levels`` of PixelCNN++ with the cached network (fast_sampling.py);
    ``return_outputs``: also the mixture parameters each pixel was drawn from."""
    dtype = self.policy.compute_dtype
    if self.policy.casts:
      params = precision.cast(params, dtype)
    return fast_sampling.sample(self.net, params, rng, canvas, visible, labels,
                                self.net_input, self.draw, dtype, return_outputs)

  def draw(self, key, out):
    """Levels drawn from the network's output at one pixel, (num, P) -> (num, C) for
    the mixture (channels jointly), or at one sub-pixel, (num, K) -> (num,)."""
    if self.likelihood == "logistic_mixture":
      x = sample_discretized_mix_logistic(key, out, self.shape[2], self.num_mix,
                                          self.levels)
      return jnp.round((x + 1.0) * (self.levels - 1) / 2.0).astype(jnp.int32)
    if self.likelihood == "bernoulli":
      return jax.random.bernoulli(key, jax.nn.sigmoid(out[:, 0])).astype(jnp.int32)
    return jax.random.categorical(key, out).astype(jnp.int32)

  def _labels(self, rng, num, inputs):
    if not self.num_classes:
      return None
    if inputs and "label" in inputs:
      return inputs["label"]
    return jax.random.randint(rng, (num,), 0, self.num_classes)

  def sample(self, params, rng, num: int, inputs=None, frozen=None):
    k_label, k_sample = jax.random.split(rng)
    labels = self._labels(k_label, num, inputs)
    return self.sample_images(params, k_sample, num, labels, frozen)

  def sample_images(self, params, rng, num: int, labels=None, frozen=None):
    """``num`` samples (of ``labels``, for a class-conditional model), images in
    [0, 1]."""
    levels = self.sample_levels(params, rng, num, labels)
    return jnp.clip(self.from_levels(levels, frozen), 0.0, 1.0)

  def complete(self, params, rng, levels, visible, num_completions: int, labels=None,
               frozen=None):
    """``num_completions`` completions of each of the N level arrays ``levels`` whose
    ``visible`` (H, W) pixels are given: (N, num_completions, H, W, C) in [0, 1]."""
    n = levels.shape[0]
    rep = lambda a: None if a is None else jnp.repeat(a, num_completions, 0)
    out = self.sample_levels(params, rng, n * num_completions, rep(labels), rep(levels),
                             visible)
    images = self.from_levels(out, frozen)
    return images.reshape(n, num_completions, *images.shape[1:])

  def completion_picture(self, state, rng, images, visible, num_completions: int,
                         labels=None, frozen=None) -> np.ndarray:
    """The lecture's figure: per image (a row) the occluded input, the completions
    and the original, as one uint8 grid. ``images`` are preprocessed (data range)."""
    check_mask(visible)
    images = jnp.asarray(images)
    labels = labels if self.num_classes else None
    complete = self.compiled(self.complete_images, static_argnames="num")
    done = np.asarray(complete(state, rng, images, jnp.asarray(visible), labels, frozen,
                               num_completions))
    original = np.asarray(images, np.float32)
    if self.scale == "symmetric":
      original = (original + 1.0) / 2.0
    occluded = self.occlude(original, np.asarray(visible))
    rows = np.concatenate([occluded[:, None], done, original[:, None]], 1)
    n, k = rows.shape[:2]
    return viz.grid(viz.to_uint8(np.clip(rows.reshape(n * k, *rows.shape[2:]), 0, 1)),
                    rows=n)

  def occlude(self, images, visible):
    """Images in [0, 1] with the hidden pixels grey (the mask at image resolution)."""
    h, w = images.shape[1:3]
    vh, vw = visible.shape
    shown = np.repeat(np.repeat(visible, h // vh, 0), w // vw, 1)[None, :, :, None]
    return np.where(shown, images, 0.5)

  def complete_images(self, state, rng, images, visible, labels, frozen, num: int):
    """``complete`` (EMA parameters) of preprocessed ``images``."""
    levels = self.example_levels({"image": images}, frozen)
    return self.complete(state.ema_params, rng, levels, visible, num, labels, frozen)

  def visualize(self, state, rng, batch, frozen=None):
    n = self.config.train.num_samples
    k_samples, k_complete = jax.random.split(rng)
    labels, rows = None, None
    if self.num_classes:
      per_row = max(1, n // self.num_classes)
      labels = jnp.repeat(jnp.arange(self.num_classes), per_row)
      n, rows = self.num_classes * per_row, self.num_classes
    draw = self.compiled(self.sample_images, static_argnames="num")
    x = np.asarray(draw(state.ema_params, k_samples, n, labels, frozen))
    cc = self.config.complete
    visible = parse_mask(cc.mask, *self.shape[:2])
    images = batch["image"][:cc.num_images]
    labels = batch["label"][:cc.num_images] if self.num_classes else None
    return {"samples": viz.grid(viz.to_uint8(x), rows=rows),
            "completion": self.completion_picture(state, k_complete, images, visible,
                                                  cc.num_completions, labels, frozen)}


def _check_data(m, d):
  if m.likelihood == "categorical":
    raise ConfigError("config.model.likelihood='categorical' is the code prior's (family "
                      "pixelcnn_prior); over images use categorical256.")
  binary = bool(d.binarize)
  if m.likelihood == "bernoulli" and not binary:
    raise ConfigError("A Bernoulli PixelCNN needs binary data: set "
                      "--config.data.binarize=dynamic (or fixed, threshold), or use "
                      "--config.model.likelihood=categorical256 for grey levels.")
  if m.likelihood != "bernoulli" and binary:
    raise ConfigError(f"config.model.likelihood={m.likelihood!r} models 256 levels but "
                      f"config.data.binarize={d.binarize!r}: use bernoulli.")
  if d.dequantize:
    raise ConfigError("PixelCNN models the discrete levels themselves: set "
                      "--config.data.dequantize=False.")


Trainer = PixelCNNTrainer
