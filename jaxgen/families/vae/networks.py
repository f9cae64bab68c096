"""Encoders and decoders of the Gaussian-latent VAE (Kingma & Welling 2014).

Encoders map images to the mean and log-variance of q(z | x); decoders map latents to
the parameters of p(x | z): ``out_channels`` per pixel (1 logit per channel for a
Bernoulli decoder, a location and a log-scale per channel for Gaussian and
discretised-logistic decoders).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import ConfigError


class MLPEncoder(nn.Module):
  hidden: Sequence[int]
  latent_dim: int

  @nn.compact
  def __call__(self, x):
    h = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.hidden):
      h = nn.relu(nn.Dense(width, name=f"hidden_{i}")(h))
    mean = nn.Dense(self.latent_dim, name="mean")(h)
    logvar = nn.Dense(self.latent_dim, name="logvar")(h)
    return mean, logvar


class MLPDecoder(nn.Module):
  hidden: Sequence[int]
  out_shape: tuple[int, int, int]  # (H, W, out_channels)

  @nn.compact
  def __call__(self, z):
    h = z
    for i, width in enumerate(self.hidden):
      h = nn.relu(nn.Dense(width, name=f"hidden_{i}")(h))
    out = nn.Dense(math.prod(self.out_shape), name="out")(h)
    return out.reshape(z.shape[0], *self.out_shape)


class ConvEncoder(nn.Module):
  """Strided 3x3 convolutions (each halves H and W), then dense heads."""
  channels: Sequence[int]
  latent_dim: int

  @nn.compact
  def __call__(self, x):
    h = x
    for i, c in enumerate(self.channels):
      h = nn.relu(nn.Conv(c, (3, 3), strides=2, name=f"conv_{i}")(h))
    h = h.reshape(h.shape[0], -1)
    mean = nn.Dense(self.latent_dim, name="mean")(h)
    logvar = nn.Dense(self.latent_dim, name="logvar")(h)
    return mean, logvar


class ConvDecoder(nn.Module):
  """A dense layer to a feature map 2**len(channels) times smaller than the image,
  then per stage a nearest-neighbour 2x upsampling and a 3x3 convolution; the last
  convolution outputs ``out_shape[-1]`` channels. (Upsample-then-convolve avoids
  the checkerboard of transposed convolutions and runs faster on CPU: docs/results.md,
  "Implementation choices".)"""
  channels: Sequence[int]  # as the encoder's: applied in reverse
  out_shape: tuple[int, int, int]

  @nn.compact
  def __call__(self, z):
    h_out, w_out, c_out = self.out_shape
    factor = 2 ** len(self.channels)
    if h_out % factor or w_out % factor:
      raise ValueError(f"ConvDecoder: image size {h_out}x{w_out} is not divisible by "
                       f"2**len(channels) = {factor}; use fewer conv layers or resize.")
    chans = list(self.channels)[::-1]
    h = nn.Dense((h_out // factor) * (w_out // factor) * chans[0], name="project")(z)
    h = nn.relu(h).reshape(z.shape[0], h_out // factor, w_out // factor, chans[0])
    outs = chans[1:] + [c_out]
    for i, c in enumerate(outs):
      h = h.repeat(2, axis=1).repeat(2, axis=2)
      h = nn.Conv(c, (3, 3), name=f"conv_{i}")(h)
      if i < len(outs) - 1:
        h = nn.relu(h)
    return h


def make(arch: str, hidden: Sequence[int], latent_dim: int,
         out_shape: tuple[int, int, int]):
  """(encoder, decoder) of architecture ``arch`` in {'mlp', 'conv'}."""
  if arch == "mlp":
    return MLPEncoder(tuple(hidden), latent_dim), MLPDecoder(tuple(hidden[::-1]), out_shape)
  if arch == "conv":
    return ConvEncoder(tuple(hidden), latent_dim), ConvDecoder(tuple(hidden), out_shape)
  raise ConfigError(f"config.model.arch={arch!r}; use 'mlp' or 'conv'.")


def reparameterize(rng, mean, logvar, num_samples: int | None = None):
  """z = mean + sigma * eps; with ``num_samples`` an extra leading sample axis."""
  shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
  return mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, shape, mean.dtype)
