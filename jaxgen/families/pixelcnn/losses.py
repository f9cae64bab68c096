"""PixelCNN++'s discretised logistic mixture (Salimans et al. 2017; openai/pixel-cnn
nn.py discretized_mix_logistic_loss / sample_from_discretized_mix_logistic): per
pixel, M logistics shared by the C channels, each channel's mean shifted linearly by
the channels before it (tanh-squashed coefficients). Parameter layout on the last
axis: M mixture logits | C*M means | C*M log-scales | C(C-1)/2 * M coefficients
(channel-major, pairs (1,0), (2,0), (2,1), ...); 10 M numbers for RGB, 3 M for grey.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxgen.losses import sum_per_example

MIX_MIN_LOG_SCALE = -7.0


def mix_logistic_num_params(channels: int, num_mix: int) -> int:
  """How many numbers per pixel parameterise the mixture."""
  return num_mix * (1 + 2 * channels + channels * (channels - 1) // 2)


def _unpack_mix(params, channels, num_mix):
  m, c = num_mix, channels
  if params.shape[-1] != mix_logistic_num_params(c, m):
    raise ValueError(f"A {m}-component logistic mixture over {c} channels takes "
                     f"{mix_logistic_num_params(c, m)} numbers per pixel, got "
                     f"{params.shape[-1]}.")
  lead = params.shape[:-1]
  logits = params[..., :m]
  means = params[..., m:m + c * m].reshape(*lead, c, m)
  log_scales = jnp.maximum(params[..., m + c * m:m + 2 * c * m].reshape(*lead, c, m),
                           MIX_MIN_LOG_SCALE)
  coeffs = jnp.tanh(params[..., m + 2 * c * m:].reshape(*lead, c * (c - 1) // 2, m))
  return logits, means, log_scales, coeffs


def _shifted_means(means, coeffs, x):
  """Each channel's means plus the coefficients times the channels before it; x is
  (..., C), means (..., C, M)."""
  c = means.shape[-2]
  out, k = [means[..., 0, :]], 0
  for ch in range(1, c):
    mean = means[..., ch, :]
    for prev in range(ch):
      mean = mean + coeffs[..., k, :] * x[..., prev, None]
      k += 1
    out.append(mean)
  return jnp.stack(out, -2)


def discretized_mix_logistic_log_prob(x, params, num_mix: int, num_bins: int = 256,
                                      per_pixel: bool = False):
  """log P(x) under the mixture; x (N, H, W, C) on the grid -1 + 2k/(num_bins - 1)
  of [-1, 1], params (N, H, W, P). Per example (summed over pixels), or per pixel."""
  c = x.shape[-1]
  logits, means, log_scales, coeffs = _unpack_mix(params, c, num_mix)
  mu = _shifted_means(means, coeffs, x)  # (..., C, M)
  xm = x[..., None]
  half_bin = 1.0 / (num_bins - 1)
  inv_s = jnp.exp(-log_scales)
  plus, minus = inv_s * (xm - mu + half_bin), inv_s * (xm - mu - half_bin)
  log_cdf_plus = jax.nn.log_sigmoid(plus)
  log_one_minus_cdf_minus = -jax.nn.softplus(minus)
  mid = inv_s * (xm - mu)
  log_pdf_mid = mid - log_scales - 2.0 * jax.nn.softplus(mid)
  diff = jax.nn.sigmoid(plus) - jax.nn.sigmoid(minus)
  log_diff = jnp.where(diff > 1e-5, jnp.log(jnp.maximum(diff, 1e-12)),
                       log_pdf_mid + math.log(2 * half_bin))
  logp = jnp.where(xm < -1.0 + half_bin, log_cdf_plus,
                   jnp.where(xm > 1.0 - half_bin, log_one_minus_cdf_minus, log_diff))
  logp = logp.sum(-2) + jax.nn.log_softmax(logits, -1)  # (..., M)
  per = jax.nn.logsumexp(logp, -1)
  return per if per_pixel else sum_per_example(per)


def sample_discretized_mix_logistic(rng, params, channels: int, num_mix: int,
                                    num_bins: int = 256):
  """One draw per pixel, (..., C) on the grid of [-1, 1]: a component, then each
  channel from its logistic, clipped and rounded to the grid, the later channels'
  means shifted by the earlier channels' (rounded) values, exactly the distribution
  of ``discretized_mix_logistic_log_prob``. (The reference does not round.)"""
  logits, means, log_scales, coeffs = _unpack_mix(params, channels, num_mix)
  k_mix, k_u = jax.random.split(rng)
  sel = jax.nn.one_hot(jax.random.categorical(k_mix, logits), num_mix)  # (..., M)
  pick = lambda a: jnp.sum(a * sel[..., None, :], -1)
  mean, scale = pick(means), jnp.exp(pick(log_scales))
  coef = pick(coeffs) if channels > 1 else None
  u = jax.random.uniform(k_u, mean.shape, minval=1e-5, maxval=1.0 - 1e-5)
  noise = jnp.log(u) - jnp.log1p(-u)
  step = 2.0 / (num_bins - 1)
  out, k = [], 0
  for ch in range(channels):
    m = mean[..., ch]
    for prev in range(ch):
      m = m + coef[..., k] * out[prev]
      k += 1
    v = jnp.clip(m + scale[..., ch] * noise[..., ch], -1.0, 1.0)
    out.append(jnp.round((v + 1.0) / step) * step - 1.0)
  return jnp.stack(out, -1)
