"""Samplers for a trained denoiser, in a registry; each loop is one ``lax.scan``.

A sampler takes ``model_fn(x_t, t) -> network output`` (t an int array of shape
(batch,)), the process, the sample shape and a key, and returns the final x_0 plus a
trajectory of ``num_frames`` intermediate x_t (the first frame is x_T). ``x_init``
sets x_T instead of drawing it from ``rng``.

``ancestral`` (Ho et al.), ``ddim`` (Song et al.) and ``dpmpp_2m`` (DPM-Solver++(2M),
Lu et al. 2022). DDIM and DPM-Solver++ take their timesteps from jaxgen's own spacing
by default, or given: ``ddim_schedule`` and ``dpm_solver_timesteps`` give the ones that
diffusers' DDIMScheduler and DPMSolverMultistepScheduler choose (``leading``,
``linspace`` or ``trailing`` spacing, ``steps_offset``), which Stable Diffusion's
released scheduler configurations name.
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


SPACINGS = ("leading", "linspace", "trailing")


def _check_spacing(T: int, num_steps: int, spacing: str):
  if spacing not in SPACINGS:
    raise ValueError(f"timestep spacing {spacing!r}; use one of {', '.join(SPACINGS)}.")
  if not 1 <= num_steps <= T:
    raise ValueError(f"num_steps={num_steps} must be between 1 and T={T}.")


def _in_range(ts: np.ndarray, T: int) -> np.ndarray:
  if ts.min() < 0 or ts.max() >= T:
    raise ValueError(f"the timesteps {ts.tolist()} leave 0..{T - 1} (too large a "
                     "steps_offset for this many steps?).")
  return ts.astype(np.int32)


def ddim_schedule(T: int, num_steps: int, spacing: str = "leading",
                  steps_offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(timesteps, previous timesteps) as diffusers' DDIMScheduler sets them:
  ``leading`` k (T // n) + steps_offset, ``linspace`` round(linspace(0, T - 1, n)),
  ``trailing`` round(T - k T / n) - 1, descending; each step's previous timestep is
  t - T // n (below 0: the final alpha-bar, ``ddim``'s ``final_alpha_cumprod``)."""
  _check_spacing(T, num_steps, spacing)
  if spacing == "linspace":
    ts = np.linspace(0, T - 1, num_steps).round()[::-1]
  elif spacing == "leading":
    ts = (np.arange(num_steps) * (T // num_steps)).round()[::-1] + steps_offset
  else:
    ts = np.round(np.arange(T, 0, -T / num_steps)) - 1
  ts = _in_range(np.asarray(ts, np.int64), T)
  return ts, (ts - T // num_steps).astype(np.int32)


def ddim(model_fn: Callable, process: GaussianDiffusion, shape, rng, *,
         num_steps: int = 50, eta: float = 0.0, parameterization: str = "eps",
         clip_x0: bool = True, num_frames: int = 0, progress: bool = False,
         x_init=None, timesteps=None, prev_timesteps=None, final_alpha_cumprod=1.0):
  """Song et al. 2021, eq. 12: x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev -
  sigma^2) eps + sigma z, sigma = eta sqrt((1-ab_prev)/(1-ab) (1 - ab/ab_prev));
  ``num_steps`` network evaluations. eta = 0 is deterministic given x_T.

  ``timesteps`` (descending) replace ``ddim_timesteps(T, num_steps)``, and
  ``prev_timesteps`` the default previous timestep of each (the next one, -1 after the
  last); a previous timestep below 0 has alpha-bar ``final_alpha_cumprod`` (1, or
  alpha-bar_0 as diffusers' ``set_alpha_to_one=False``). ``clip_x0`` clips the
  predicted x0 to [-1, 1] and takes eps from the clipped x0 (CompVis' convention)."""
  if timesteps is None:
    ts = ddim_timesteps(process.num_steps, num_steps)
  else:
    ts = np.asarray(timesteps, np.int32)
    num_steps = len(ts)
  prev = (np.append(ts[1:], -1) if prev_timesteps is None
          else np.asarray(prev_timesteps, np.int32))
  if prev.shape != ts.shape:
    raise ValueError(f"{len(prev)} previous timesteps for {len(ts)} timesteps.")
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
    ab_prev = jnp.where(p_s >= 0, ab_all[jnp.maximum(p_s, 0)], final_alpha_cumprod)
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


def dpm_solver_timesteps(T: int, num_steps: int, spacing: str = "linspace",
                         steps_offset: int = 0) -> np.ndarray:
  """The timesteps diffusers' DPMSolverMultistepScheduler sets (``lambda_min_clipped``
  -inf, no sigma schedule), descending: ``linspace`` the first n of
  round(linspace(0, T - 1, n + 1)) from the top, ``leading`` k (T // (n + 1)) +
  steps_offset for k = n..1, ``trailing`` round(T - k T / n) - 1."""
  _check_spacing(T, num_steps, spacing)
  if spacing == "linspace":
    ts = np.linspace(0, T - 1, num_steps + 1).round()[::-1][:-1]
  elif spacing == "leading":
    ts = (np.arange(num_steps + 1) * (T // (num_steps + 1))).round()[::-1][:-1]
    ts = ts + steps_offset
  else:
    ts = np.arange(T, 0, -T / num_steps).round() - 1
  return _in_range(np.asarray(ts, np.int64), T)


FINAL_SIGMAS = ("zero", "sigma_min")


def dpmpp_2m(model_fn: Callable, process: GaussianDiffusion, shape, rng, *,
             num_steps: int = 20, parameterization: str = "eps", clip_x0: bool = True,
             num_frames: int = 0, progress: bool = False, x_init=None, timesteps=None,
             start: int = 0, final_sigma: str = "zero", lower_order_final: bool = True):
  """DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095, Algorithm 2; the midpoint
  form of diffusers' DPMSolverMultistepScheduler): deterministic, one network
  evaluation per step, x0 predicted at each step (clipped to [-1, 1] with
  ``clip_x0``).

  With alpha_i = sqrt(ab_i) and s_i = sqrt(1 - ab_i) at the timesteps t_i, lambda_i =
  log(alpha_i / s_i) and h_i = lambda_{i+1} - lambda_i, a step is x_{i+1} =
  (s_{i+1} / s_i) x_i - alpha_{i+1} (e^{-h_i} - 1) (D0 + D1 / 2), D0 = x0_i and
  D1 = (h_i / h_{i-1}) (x0_i - x0_{i-1}); D1 = 0 at the first step (first order: DDIM).
  After the last timestep comes s = 0 (``final_sigma="zero"``: the last step returns
  its x0, first order) or the s of t = 0 (``"sigma_min"``: the last step is first order
  only with ``lower_order_final`` and fewer than 15 steps, as diffusers). The
  coefficients are computed from diffusers' sigma = s / alpha, finite at s = 0.

  ``timesteps`` (descending) replace ``dpm_solver_timesteps(T, num_steps)``;
  ``start`` skips the first steps of that schedule (img2img: x_init is then the noised
  image at ``timesteps[start]``), the first step run being first order. ``rng`` draws
  x_T when ``x_init`` is None (it may be None otherwise)."""
  T = process.num_steps
  ts = (dpm_solver_timesteps(T, num_steps) if timesteps is None
        else np.asarray(timesteps, np.int32))
  n = len(ts)
  if final_sigma not in FINAL_SIGMAS:
    raise ValueError(f"final_sigma={final_sigma!r}; use one of {FINAL_SIGMAS}.")
  if not 0 <= start < n:
    raise ValueError(f"start={start} must be in 0..{n - 1} (the steps of the schedule).")
  last_first_order = final_sigma == "zero" or (lower_order_final and n < 15)
  second = np.array([i > start and not (i == n - 1 and last_first_order)
                     for i in range(n)])
  ab = process.alphas_cumprod
  sig = jnp.sqrt((1 - ab[ts]) / ab[ts])
  final = 0.0 if final_sigma == "zero" else jnp.sqrt((1 - ab[0]) / ab[0])
  sig_next = jnp.append(sig[1:], final)
  alpha = lambda s: 1 / jnp.sqrt(s ** 2 + 1)
  a_coef = sig_next * alpha(sig_next) / (sig * alpha(sig))
  b_coef = -alpha(sig_next) * (sig_next / sig - 1)
  safe = lambda s: jnp.where(s > 0, s, 1.0)  # sigma 0 only after a first-order step
  h = jnp.log(sig) - jnp.log(safe(sig_next))
  h_prev = jnp.append(1.0, jnp.log(sig[:-1]) - jnp.log(sig[1:]))
  c_coef = jnp.where(second, 0.5 * b_coef * h / h_prev, 0.0)

  x = jax.random.normal(rng, shape) if x_init is None else x_init
  steps = n - start
  frames = jnp.zeros((max(num_frames, 1), *shape)).at[0].set(x)
  tick = (_progress(steps, f"DPM-Solver++(2M) ({steps} steps)") if progress else None)

  def body(carry, i):
    x, x0_prev, frames = carry
    t = jnp.full((shape[0],), jnp.asarray(ts)[i], jnp.int32)
    x0, _ = process.predict_x0_and_eps(model_fn(x, t), x, t, parameterization)
    if clip_x0:
      x0 = jnp.clip(x0, -1.0, 1.0)
    x = a_coef[i] * x + b_coef[i] * x0 + c_coef[i] * (x0 - x0_prev)
    if tick:
      jax.debug.callback(tick, i - start)
    return (x, x0, _record(frames, x, i - start, steps, num_frames)), None

  (x, _, frames), _ = jax.lax.scan(body, (x, jnp.zeros_like(x), frames),
                                   jnp.arange(start, n))
  return x, frames


SAMPLERS = {"ancestral": ancestral, "ddim": ddim, "dpmpp_2m": dpmpp_2m}


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
