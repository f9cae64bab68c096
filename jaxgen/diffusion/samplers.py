"""Samplers for a trained denoiser, in a registry; each loop is one ``lax.scan``.

A sampler takes ``model_fn(x_t, t) -> network output`` (t an int array of shape
(batch,)), the process, the sample shape and a key, and returns the final x_0 plus a
trajectory of ``num_frames`` intermediate x_t (the first frame is x_T). ``x_init``
sets x_T instead of drawing it from ``rng``.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion.process import GaussianDiffusion


def _progress(total: int, desc: str):
  """A host callback that shows a tqdm bar while a compiled scan runs."""
  from tqdm import tqdm
  bar = {}

  def update(i):
    i = int(i)
    if i == 0:
      bar["b"] = tqdm(total=total, desc=desc, leave=False)
    bar["b"].update(1)
    if i == total - 1:
      bar["b"].close()
  return update


def _record(frames, x, i, num_steps, num_frames):
  """Store x in the trajectory buffer at evenly spaced steps."""
  if num_frames <= 1:
    return frames
  stride = max(num_steps // (num_frames - 1), 1)
  slot = i // stride + 1
  write = (i % stride == stride - 1) & (slot < num_frames)
  return jax.lax.cond(write, lambda f: f.at[slot].set(x), lambda f: f, frames)


def ancestral(model_fn: Callable, process: GaussianDiffusion, shape, rng, *,
              parameterization: str = "eps", variance: str = "fixedlarge",
              clip_x0: bool = True, num_frames: int = 0, progress: bool = False,
              x_init=None):
  """Algorithm 2 of Ho et al. 2020: x_{t-1} = mean_theta(x_t) + sigma_t z, z = 0 at
  the last step; T network evaluations."""
  T = process.num_steps
  k_init, k_loop = jax.random.split(rng)
  x = jax.random.normal(k_init, shape) if x_init is None else x_init
  frames = jnp.zeros((max(num_frames, 1), *shape)).at[0].set(x)
  tick = _progress(T, "ancestral sampling") if progress else None

  def body(carry, i):
    x, frames = carry
    t = jnp.full((shape[0],), T - 1 - i, jnp.int32)
    mean, logvar, _ = process.p_mean_variance(model_fn(x, t), x, t, parameterization,
                                              variance, clip_x0)
    z = jax.random.normal(jax.random.fold_in(k_loop, i), shape)
    x = mean + jnp.where(t[0] > 0, jnp.exp(0.5 * logvar), 0.0) * z
    if tick:
      jax.debug.callback(tick, i)
    return (x, _record(frames, x, i, T, num_frames)), None

  (x, frames), _ = jax.lax.scan(body, (x, frames), jnp.arange(T))
  return x, frames


def ddim_timesteps(T: int, num_steps: int) -> np.ndarray:
  """``num_steps`` timesteps evenly spaced over 0..T-1, descending, ending at 0."""
  if not 1 <= num_steps <= T:
    raise ValueError(f"DDIM num_steps={num_steps} must be between 1 and T={T}.")
  return np.round(np.linspace(T - 1, 0, num_steps)).astype(np.int32)


def ddim(model_fn: Callable, process: GaussianDiffusion, shape, rng, *,
         num_steps: int = 50, eta: float = 0.0, parameterization: str = "eps",
         clip_x0: bool = True, num_frames: int = 0, progress: bool = False,
         x_init=None):
  """Song et al. 2021, eq. 12: x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev -
  sigma^2) eps + sigma z, sigma = eta sqrt((1-ab_prev)/(1-ab) (1 - ab/ab_prev));
  ``num_steps`` network evaluations. eta = 0 is deterministic given x_T."""
  ts = ddim_timesteps(process.num_steps, num_steps)
  prev = np.append(ts[1:], -1)
  ab_all = process.alphas_cumprod
  k_init, k_loop = jax.random.split(rng)
  x = jax.random.normal(k_init, shape) if x_init is None else x_init
  frames = jnp.zeros((max(num_frames, 1), *shape)).at[0].set(x)
  tick = _progress(num_steps, f"ddim sampling ({num_steps} steps)") if progress else None

  def body(carry, args):
    x, frames = carry
    i, t_s, p_s = args
    t = jnp.full((shape[0],), t_s, jnp.int32)
    ab = ab_all[t_s]
    ab_prev = jnp.where(p_s >= 0, ab_all[jnp.maximum(p_s, 0)], 1.0)
    x0, eps = process.predict_x0_and_eps(model_fn(x, t), x, t, parameterization)
    if clip_x0:
      x0 = jnp.clip(x0, -1.0, 1.0)
      eps = (x - jnp.sqrt(ab) * x0) / jnp.sqrt(1.0 - ab)
    sigma = eta * jnp.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    z = jax.random.normal(jax.random.fold_in(k_loop, i), shape)
    x = (jnp.sqrt(ab_prev) * x0 + jnp.sqrt(jnp.maximum(1 - ab_prev - sigma ** 2, 0.0))
         * eps + sigma * z)
    if tick:
      jax.debug.callback(tick, i)
    return (x, _record(frames, x, i, num_steps, num_frames)), None

  (x, frames), _ = jax.lax.scan(
      body, (x, frames), (jnp.arange(num_steps), jnp.asarray(ts), jnp.asarray(prev)))
  return x, frames


SAMPLERS = {"ancestral": ancestral, "ddim": ddim}


def get(name: str):
  if name not in SAMPLERS:
    raise ValueError(f"Unknown sampler {name!r}; available: {', '.join(SAMPLERS)}.")
  return SAMPLERS[name]


def guided(model_fn: Callable, cond, null_cond, scale) -> Callable:
  """Classifier-free guidance (Ho & Salimans 2022) in the convention of CompVis and
  diffusers: ``f(x, t, null) + scale (f(x, t, cond) - f(x, t, null))``, from a
  ``model_fn(x, t, cond)`` trained with the conditioning dropped to ``null_cond``
  (pytrees of per-example arrays: labels, token ids, context states). Scale 1 is the
  conditional prediction alone (one call); Ho & Salimans' w is scale - 1. ``scale``
  is a number or one per example (N,); a scale other than a literal 1 evaluates the
  model once on the two halves of a doubled batch."""
  def fn(x, t):
    if isinstance(scale, (int, float)) and scale == 1:
      return model_fn(x, t, cond)
    both = model_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                    jax.tree.map(lambda c, u: jnp.concatenate([c, u]), cond, null_cond))
    c, u = jnp.split(both, 2)
    s = jnp.asarray(scale, c.dtype)
    s = s.reshape(s.shape + (1,) * (c.ndim - s.ndim)) if s.ndim else s
    return u + s * (c - u)
  return fn
