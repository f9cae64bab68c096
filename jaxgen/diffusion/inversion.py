"""DDIM inversion: a deterministic DDIM run backwards, from an image x_0 to the x_T
from which ``samplers.ddim`` with eta = 0 would draw it again (Song et al. 2021,
section 4.3: with eta = 0 the sampler is an Euler discretisation of an ODE, and the
same discretisation run the other way encodes an image into the latent x_T; unCLIP's
bipartite representation (z_i, x_T), Ramesh et al. 2022, section 3.1).

In the coordinates x / sqrt(ab) and sigma = sqrt((1 - ab) / ab) a DDIM step with
eta = 0 is x_next / sqrt(ab_next) = x / sqrt(ab) + (sigma_next - sigma) eps(x, t):
the eps predicted at the step's starting point. ``ddim_invert`` takes the steps of
the sampler's schedule in reverse, each from its lower noise level to its higher,
with the eps predicted at the lower level; the first one starts at the image itself
(the level after the schedule's last timestep, alpha-bar ``final_alpha_cumprod``,
1 by default), where the network is asked at timestep 0. Inverting and decoding
evaluate eps at the two ends of each step, so the round trip is exact only where eps
changes little over a step; for a smooth model its error shrinks as the steps' number
grows, as a first-order method's (tests/test_inversion.py: the exact denoiser of
Gaussian data, whose ODE map is known in closed form). It takes the schedule
arguments of ``samplers.ddim`` (the timesteps, their previous timesteps, the final
alpha-bar), so that a decoding with the same arguments runs the same steps forwards.
Nothing is clipped: the x0 implied at each step is the ODE's, whatever its range
(``samplers.ddim``'s ``clip_x0`` changes the path only where the model's x0 leaves
[-1, 1]).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import samplers
from jaxgen.diffusion.process import GaussianDiffusion


def schedule(T: int, num_steps: int, timesteps=None, prev_timesteps=None
             ) -> tuple[np.ndarray, np.ndarray]:
  """(timesteps descending, the previous timestep of each) as ``samplers.ddim`` runs
  them for these arguments (-1: past the last, the final alpha-bar)."""
  ts = (samplers.ddim_timesteps(T, num_steps) if timesteps is None
        else np.asarray(timesteps, np.int32))
  prev = (np.append(ts[1:], -1) if prev_timesteps is None
          else np.asarray(prev_timesteps, np.int32))
  if prev.shape != ts.shape:
    raise ValueError(f"{len(prev)} previous timesteps for {len(ts)} timesteps.")
  return ts.astype(np.int32), prev.astype(np.int32)


def ddim_invert(model_fn: Callable, process: GaussianDiffusion, x0, *,
                num_steps: int = 50, parameterization: str = "eps", timesteps=None,
                prev_timesteps=None, final_alpha_cumprod=1.0):
  """x at the schedule's first (highest) timestep, from images ``x0`` in the model's
  range, by the DDIM steps of ``samplers.ddim(..., num_steps, timesteps,
  prev_timesteps, final_alpha_cumprod)`` run backwards with eta = 0.
  ``model_fn(x_t, t)`` is the network (t an int array (batch,)), guided or not."""
  ts, prev = schedule(process.num_steps, num_steps, timesteps, prev_timesteps)
  ab_all = process.alphas_cumprod
  # Step k goes from the level of prev[k] up to the level of ts[k], k = n-1 .. 0.
  lower, upper = prev[::-1], ts[::-1]
  x0 = jnp.asarray(x0)

  def body(x, args):
    lo, hi = args
    ab = jnp.where(lo >= 0, ab_all[jnp.maximum(lo, 0)], final_alpha_cumprod)
    ab_next = ab_all[hi]
    t = jnp.full((x.shape[0],), jnp.maximum(lo, 0), jnp.int32)
    _, eps = process.predict_x0_and_eps(model_fn(x, t), x, t, parameterization)
    # x0 from eps at this level's own alpha-bar (1 at the image: x0 = x).
    x0_hat = (x - jnp.sqrt(1.0 - ab) * eps) / jnp.sqrt(ab)
    return jnp.sqrt(ab_next) * x0_hat + jnp.sqrt(1.0 - ab_next) * eps, None

  x, _ = jax.lax.scan(body, x0, (jnp.asarray(lower), jnp.asarray(upper)))
  return x
