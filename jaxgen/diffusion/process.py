"""The Gaussian diffusion process of Sohl-Dickstein et al. 2015 and Ho et al. 2020.

Timesteps are indices t = 0..T-1 (the paper's t = 1..T). Coefficients are derived
from the betas in float64 and stored as float32 arrays; the object is a pytree, so
it can be closed over or passed through jit.
"""
from __future__ import annotations

import math

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses
from jaxgen.diffusion import schedules
from jaxgen.errors import ConfigError

PARAMETERIZATIONS = ("eps", "x0", "v")
VARIANCES = ("fixedlarge", "fixedsmall")


def check_options(schedule, num_steps, parameterization, variance) -> None:
  """Refuse ``config.diffusion``'s schedule, T, parameterization or variance when
  this module would fail on it (some only inside a compiled step)."""
  for name, value, allowed in (("schedule", schedule, tuple(schedules.SCHEDULES)),
                               ("parameterization", parameterization, PARAMETERIZATIONS),
                               ("variance", variance, VARIANCES)):
    if value not in allowed:
      raise ConfigError(f"config.diffusion.{name}={value!r}; use one of {allowed}.")
  if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
    raise ConfigError(f"config.diffusion.num_steps={num_steps!r}: the number of "
                      f"diffusion steps T, at least 1.")


def _extract(a, t, ndim):
  """a[t] reshaped to broadcast against a batch of rank ``ndim``."""
  return a[t].reshape(t.shape + (1,) * (ndim - t.ndim))


@flax.struct.dataclass
class GaussianDiffusion:
  betas: jax.Array
  alphas_cumprod: jax.Array
  alphas_cumprod_prev: jax.Array
  posterior_variance: jax.Array
  posterior_log_variance_clipped: jax.Array
  posterior_mean_coef1: jax.Array
  posterior_mean_coef2: jax.Array

  @classmethod
  def create(cls, schedule: str = "linear", num_steps: int = 1000):
    return cls.from_betas(schedules.get(schedule, num_steps))

  @classmethod
  def from_betas(cls, betas):
    b = np.asarray(betas, np.float64)
    if b.ndim != 1 or not np.all((b > 0) & (b < 1)):
      raise ValueError("betas must be a 1-D array with values in (0, 1).")
    ab = np.cumprod(1.0 - b)
    ab_prev = np.append(1.0, ab[:-1])
    post_var = b * (1.0 - ab_prev) / (1.0 - ab)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return cls(
        betas=f32(b), alphas_cumprod=f32(ab), alphas_cumprod_prev=f32(ab_prev),
        posterior_variance=f32(post_var),
        # The variance is 0 at t = 0: its log is clipped to the next value.
        posterior_log_variance_clipped=f32(np.log(np.append(post_var[1], post_var[1:]))),
        posterior_mean_coef1=f32(b * np.sqrt(ab_prev) / (1.0 - ab)),
        posterior_mean_coef2=f32((1.0 - ab_prev) * np.sqrt(1.0 - b) / (1.0 - ab)))

  @property
  def num_steps(self) -> int:
    return self.betas.shape[0]

  # --- the forward process --------------------------------------------------------
  def q_mean_variance(self, x0, t):
    """Mean, variance and log-variance of q(x_t | x_0)."""
    ab = _extract(self.alphas_cumprod, t, x0.ndim)
    return jnp.sqrt(ab) * x0, 1.0 - ab, jnp.log1p(-ab)

  def q_sample(self, x0, t, noise):
    """Draw x_t ~ q(x_t | x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I)."""
    ab = _extract(self.alphas_cumprod, t, x0.ndim)
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise

  def q_posterior(self, x0, xt, t):
    """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
    n = x0.ndim
    mean = (_extract(self.posterior_mean_coef1, t, n) * x0
            + _extract(self.posterior_mean_coef2, t, n) * xt)
    return (mean, _extract(self.posterior_variance, t, n),
            _extract(self.posterior_log_variance_clipped, t, n))

  # --- parameterisations -----------------------------------------------------------
  def target(self, x0, noise, t, parameterization: str):
    """What the network learns to predict: eps, x0, or v = sqrt(ab) eps - sqrt(1-ab) x0."""
    if parameterization == "eps":
      return noise
    if parameterization == "x0":
      return x0
    if parameterization == "v":
      ab = _extract(self.alphas_cumprod, t, x0.ndim)
      return jnp.sqrt(ab) * noise - jnp.sqrt(1.0 - ab) * x0
    raise ValueError(f"parameterization={parameterization!r}; use one of "
                     f"{PARAMETERIZATIONS}.")

  def predict_x0_and_eps(self, model_output, xt, t, parameterization: str):
    """(x0, eps) implied by the network output at (x_t, t)."""
    ab = _extract(self.alphas_cumprod, t, xt.ndim)
    sa, s1 = jnp.sqrt(ab), jnp.sqrt(1.0 - ab)
    if parameterization == "eps":
      eps = model_output
      return (xt - s1 * eps) / sa, eps
    if parameterization == "x0":
      x0 = model_output
      return x0, (xt - sa * x0) / s1
    if parameterization == "v":
      v = model_output
      return sa * xt - s1 * v, s1 * xt + sa * v
    raise ValueError(f"parameterization={parameterization!r}; use one of "
                     f"{PARAMETERIZATIONS}.")

  # --- the reverse process ---------------------------------------------------------
  def model_variance(self, t, ndim, variance: str = "fixedlarge"):
    """(variance, log-variance) of p(x_{t-1} | x_t): beta_t (fixed large, with the
    posterior variance at t = 0 as in Ho et al.'s code) or the posterior variance
    beta-tilde_t (fixed small)."""
    if variance == "fixedlarge":
      var = jnp.append(self.posterior_variance[1], self.betas[1:])
      return _extract(var, t, ndim), _extract(jnp.log(var), t, ndim)
    if variance == "fixedsmall":
      return (_extract(self.posterior_variance, t, ndim),
              _extract(self.posterior_log_variance_clipped, t, ndim))
    raise ValueError(f"variance={variance!r}; use one of {VARIANCES}.")

  def p_mean_variance(self, model_output, xt, t, parameterization: str = "eps",
                      variance: str = "fixedlarge", clip_x0: bool = True):
    """Mean, log-variance and predicted x0 of p(x_{t-1} | x_t)."""
    x0, _ = self.predict_x0_and_eps(model_output, xt, t, parameterization)
    if clip_x0:
      x0 = jnp.clip(x0, -1.0, 1.0)
    mean, _, _ = self.q_posterior(x0, xt, t)
    _, logvar = self.model_variance(t, xt.ndim, variance)
    return mean, logvar, x0

  # --- the variational bound, in bits per dimension -----------------------------------
  def prior_bpd(self, x0):
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example, in bits/dim."""
    t = jnp.full((x0.shape[0],), self.num_steps - 1, jnp.int32)
    mean, _, logvar = self.q_mean_variance(x0, t)
    kl = losses.gaussian_kl_between(mean, logvar, jnp.zeros_like(mean),
                                    jnp.zeros_like(mean))
    return kl / (_dims(x0) * math.log(2))

  def vb_terms_bpd(self, model_output, x0, xt, t, parameterization="eps",
                   variance="fixedlarge"):
    """L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0 and the decoder
    term L_0 = -log p(x_0 | x_1) for t = 0, per example, in bits/dim."""
    true_mean, _, true_logvar = self.q_posterior(x0, xt, t)
    mean, logvar, _ = self.p_mean_variance(model_output, xt, t, parameterization,
                                           variance, clip_x0=False)
    kl = losses.gaussian_kl_between(true_mean, true_logvar, mean, logvar)
    nll = -losses.discretized_gaussian_log_prob(x0, mean, 0.5 * logvar)
    return jnp.where(t == 0, nll, kl) / (_dims(x0) * math.log(2))

  def bpd(self, model_fn, x0, rng, parameterization="eps", variance="fixedlarge"):
    """The full variational bound per example, in bits/dim: L_T + sum over all T
    timesteps of L_{t-1} (L_0 at t = 0), each with fresh noise. ``model_fn(x_t, t)``
    is the network; the timesteps run inside one ``lax.map``.

    Returns a dict of per-example arrays: total, prior (L_T), decoder (L_0), and
    terms, the (T, batch) matrix of per-timestep terms.
    """
    def term(args):
      t_scalar, key = args
      t = jnp.full((x0.shape[0],), t_scalar, jnp.int32)
      xt = self.q_sample(x0, t, jax.random.normal(key, x0.shape, x0.dtype))
      return self.vb_terms_bpd(model_fn(xt, t), x0, xt, t, parameterization, variance)

    steps = jnp.arange(self.num_steps)
    terms = jax.lax.map(term, (steps, jax.random.split(rng, self.num_steps)))
    prior = self.prior_bpd(x0)
    return {"total": terms.sum(0) + prior, "prior": prior, "decoder": terms[0],
            "terms": terms}


def _dims(x):
  return math.prod(x.shape[1:])
