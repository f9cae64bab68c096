r"""The variational bounds of VAEs and diffusion models, measured where all is exact.

  python experiments/variational_bound.py --outdir=/tmp/variational_bound
  python experiments/variational_bound.py --quick --outdir=/tmp/vb_quick   # seconds

Part 1, the ELBO, on probabilistic PCA: z ~ N(0, I_k), x | z ~ N(W z + mu, sigma^2 I_d).
Its marginal p(x) = N(mu, W W^T + sigma^2 I) and posterior p(z | x) = N(M^-1 W^T (x - mu),
sigma^2 M^-1), M = W^T W + sigma^2 I, are closed forms, and so is the ELBO of any
Gaussian q(z | x). W has orthogonal columns (the maximum-likelihood PPCA solution has,
up to a rotation of z, which changes neither p(x) nor the bounds), so the posterior
covariance is diagonal and lies in the family of a diagonal Gaussian encoder.

1. log p(x) = ELBO(q) + KL(q(z|x) || p(z|x)) for random Gaussian q (diagonal and full
   covariances), all in float64 closed form; the ELBO also by Monte Carlo, once with
   log p(x, z) - log q(z) and once with jaxgen's own VAE estimator
   (losses.gaussian_log_prob of one-sample decodings + the analytic losses.gaussian_kl,
   combined by losses.elbo),
   run in float64 inside a local ``jax.enable_x64`` context;
2. at q = p(z | x) the ELBO is log p(x) exactly, and log p(x, z) - log q(z) has zero
   variance;
3. the importance-weighted bound (losses.iwae_bound) of a poor q rises with the number
   of samples k towards log p(x), and its gap at large k approaches Burda et al.'s
   asymptote Var(w) / (2 k p(x)^2), with Var(w) in closed form;
4. an affine Gaussian encoder, trained with jaxgen's ELBO and Adam against the true
   decoder, moves to the true posterior: the exact gap log p(x) - ELBO = KL(q || p(z|x)),
   averaged over held-out data, falls towards 0.

Part 2, the DDPM bound (Ho et al. 2020), on 1-D Gaussian-mixture data, whose diffused
marginals q(x_t) are Gaussian mixtures, so E[x_0 | x_t] and Var[x_0 | x_t] are closed
forms (checked against Tweedie's formula with the exact score). The process and its
schedules are jaxgen's (jaxgen.diffusion).

5. The reverse model p(x_{t-1} | x_t) = N(mu*(x_t), sigma_t^2) takes the optimal mean,
   mu*(x_t) = E[mu~_t(x_t, x_0) | x_t] (the posterior mean at x_0 = E[x_0 | x_t]). Then
   L_T = E KL(q(x_T | x_0) || N(0, 1)), each L_{t-1} = E KL(q(x_{t-1} | x_t, x_0) ||
   p(x_{t-1} | x_t)) and L_0 = E[-log p(x_0 | x_1)] (a Gaussian density: the data are
   continuous) are exact: closed forms plus a 1-D quadrature over x_t of Var[x_0 | x_t].
   Their sum bounds the true NLL, the differential entropy H(q(x_0)) (by quadrature),
   from above, for jaxgen's variance choices (fixedlarge, fixedsmall), the paper's
   sigma_t^2 = beta_t, and the optimal (Analytic-DPM, Bao et al. 2022) variance. Monte
   Carlo: the same bound estimated through jaxgen's GaussianDiffusion.bpd with sampled
   x_0 and x_t (each term against its exact value, and the total). Measured: with
   sigma_t^2 = beta_t or the optimal variance the gap to H closes like 1/T; with
   jaxgen's fixedlarge (Ho et al.'s code: sigma_1^2 = beta-tilde_2, about beta_1 / 2, in
   L_0, while Var[x_0 | x_1] is about beta_1) it stays near 0.13 nats at every T, and
   fixedsmall (beta-tilde_t throughout) near 0.5.
6. The posterior q(x_{t-1} | x_t, x_0) by Bayes' rule on a grid, q(x_t | x_{t-1})
   q(x_{t-1} | x_0) normalised, against the closed form: Ho et al.'s mean coefficient of
   x_t, sqrt(alpha_t) (1 - alpha-bar_{t-1}) / (1 - alpha-bar_t), and the lecture slide's,
   with sqrt(1 - beta-bar_t) in place of sqrt(alpha_t) (beta-bar_t read as the cumulative
   noise 1 - alpha-bar_t, so the coefficient is sqrt(alpha-bar_t); were the bar a typo,
   sqrt(1 - beta_t) is Ho et al.'s sqrt(alpha_t)); and against jaxgen's
   GaussianDiffusion.q_posterior.

Writes PNG plots into --outdir (matplotlib when installed, else gan_optimum's PIL plots),
prints one summary line per check with its measured error, and a last line of JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import special

from jaxgen import losses, viz, xla_options
from jaxgen.diffusion import process, schedules

LOG2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------------
# Part 1: the linear-Gaussian model and the ELBO of Gaussian q in closed form.

def mvn_log_density(x, mean, cov):
  """log N(x; mean, cov) in float64 for x, mean of shape (..., n), cov (..., n, n)."""
  x, mean, cov = (np.asarray(a, np.float64) for a in (x, mean, cov))
  chol = np.linalg.cholesky(cov)
  r = np.einsum("...ij,...j->...i", np.linalg.inv(chol), x - mean)
  log_det = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
  return -0.5 * (x.shape[-1] * LOG2PI + log_det + (r ** 2).sum(-1))


def gaussian_kl_full(m1, s1, m2, s2):
  """KL(N(m1, s1) || N(m2, s2)) in float64, full covariances (..., n, n)."""
  n = m1.shape[-1]
  s2_inv = np.linalg.inv(s2)
  diff = (m2 - m1)[..., None]
  return 0.5 * (np.trace(s2_inv @ s1, axis1=-2, axis2=-1)
                + (np.swapaxes(diff, -1, -2) @ s2_inv @ diff)[..., 0, 0] - n
                + np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1])


@dataclasses.dataclass(frozen=True)
class LinearGaussian:
  """z ~ N(0, I_k), x | z ~ N(W z + mu, sigma2 I_d), in float64."""
  w: np.ndarray  # (d, k)
  mu: np.ndarray  # (d,)
  sigma2: float

  @classmethod
  def make(cls, d=6, k=3, sigma2=0.25, seed=0) -> LinearGaussian:
    """W = U diag(scales): orthonormal columns U (a random rotation), scales 1..2."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return cls(u * np.linspace(2.0, 1.0, k), rng.standard_normal(d), float(sigma2))

  @property
  def dims(self):
    return self.w.shape

  def sample(self, n, rng):
    z = rng.standard_normal((n, self.dims[1]))
    return z @ self.w.T + self.mu + math.sqrt(self.sigma2) * rng.standard_normal(
        (n, self.dims[0]))

  def log_marginal(self, x):
    """log p(x) = log N(x; mu, W W^T + sigma2 I), exact."""
    cov = self.w @ self.w.T + self.sigma2 * np.eye(self.dims[0])
    return mvn_log_density(x, self.mu, cov)

  def posterior(self, x):
    """p(z | x) = N(mean (n, k), cov (k, k)): mean M^-1 W^T (x - mu), cov sigma2 M^-1."""
    m_inv = np.linalg.inv(self.w.T @ self.w + self.sigma2 * np.eye(self.dims[1]))
    return (x - self.mu) @ self.w @ m_inv.T, self.sigma2 * m_inv

  def log_joint(self, x, z):
    """log p(x | z) + log p(z) for x (..., d) and z (..., k), broadcasting."""
    d, k = self.dims
    r = x - z @ self.w.T - self.mu
    return (-0.5 * (d * (LOG2PI + math.log(self.sigma2)) + (r ** 2).sum(-1) / self.sigma2)
            - 0.5 * (k * LOG2PI + (z ** 2).sum(-1)))


def elbo_closed_form(model, x, mean, cov):
  """ELBO(q) = E_q log p(x | z) - KL(q || p(z)) for q = N(mean (n, k), cov (n, k, k)).

  E_q log p(x | z) = -d/2 log(2 pi sigma2)
                     - (|x - mu - W m|^2 + tr(W S W^T)) / (2 sigma2).
  """
  d, k = model.dims
  r = x - mean @ model.w.T - model.mu
  expected_ll = -0.5 * (d * (LOG2PI + math.log(model.sigma2))
                        + ((r ** 2).sum(-1)
                           + np.trace(model.w @ cov @ model.w.T, axis1=-2, axis2=-1))
                        / model.sigma2)
  kl_prior = 0.5 * (np.trace(cov, axis1=-2, axis2=-1) + (mean ** 2).sum(-1) - k
                    - np.linalg.slogdet(cov)[1])
  return expected_ll - kl_prior


def sample_gaussian(mean, cov, n, rng):
  """n samples of each N(mean_i, cov_i): shape (len(mean), n, k)."""
  chol = np.linalg.cholesky(cov)
  eps = rng.standard_normal((mean.shape[0], n, mean.shape[1]))
  return mean[:, None, :] + eps @ np.swapaxes(chol, -1, -2)


def log_weights(model, x, mean, cov, n, rng):
  """log w = log p(x, z) - log q(z | x) for n draws z ~ q per x: (len(x), n)."""
  z = sample_gaussian(mean, cov, n, rng)
  return (model.log_joint(x[:, None, :], z)
          - mvn_log_density(z, mean[:, None, :], cov[:, None]))


def random_q(model, x, rng, full):
  """Random Gaussians q(z | x) for each x: means scattered around the posterior mean,
  random positive-definite (full) or diagonal covariances."""
  n, k = x.shape[0], model.dims[1]
  post_mean, _ = model.posterior(x)
  mean = post_mean + rng.normal(0.0, 0.7, (n, k))
  if full:
    a = rng.normal(0.0, 0.4, (n, k, k))
    cov = a @ np.swapaxes(a, -1, -2) + 0.02 * np.eye(k)
  else:
    cov = np.eye(k) * np.exp(rng.normal(-1.5, 0.8, (n, 1, k)))
  return mean, cov


def identity_study(model, *, n_q, n_mc, seed):
  """log p(x) = ELBO(q) + KL(q || p(z|x)) for 2 n_q random q (half diagonal, half full),
  the ELBO by closed form and by Monte Carlo, and the ELBO at the true posterior."""
  rng = np.random.default_rng(seed)
  x = model.sample(2 * n_q, rng)
  log_px = model.log_marginal(x)
  post_mean, post_cov = model.posterior(x)
  post_cov = np.broadcast_to(post_cov, (len(x),) + post_cov.shape)
  parts = [random_q(model, x[:n_q], rng, full=False), random_q(model, x[n_q:], rng,
                                                             full=True)]
  mean = np.concatenate([p[0] for p in parts])
  cov = np.concatenate([p[1] for p in parts])
  elbo = elbo_closed_form(model, x, mean, cov)
  kl = gaussian_kl_full(mean, cov, post_mean, post_cov)
  mc, mc_se = np.zeros(len(x)), np.zeros(len(x))
  for i in range(len(x)):  # one x at a time: n_mc samples each
    lw = log_weights(model, x[i:i + 1], mean[i:i + 1], cov[i:i + 1], n_mc, rng)[0]
    mc[i], mc_se[i] = lw.mean(), lw.std(ddof=1) / math.sqrt(n_mc)
  # At the true posterior the bound is tight and log w = log p(x) for every sample.
  lw_post = log_weights(model, x, post_mean, post_cov, 1000, rng)
  return {
      "log_px": log_px, "elbo": elbo, "kl": kl, "elbo_mc": mc, "elbo_mc_se": mc_se,
      "identity_error": float(np.max(np.abs(log_px - elbo - kl))),
      "mc_max_abs_z": float(np.max(np.abs(mc - elbo) / mc_se)),
      "mc_max_abs_error": float(np.max(np.abs(mc - elbo))),
      "posterior_elbo_error": float(np.max(np.abs(
          elbo_closed_form(model, x, post_mean, post_cov) - log_px))),
      "posterior_kl": float(np.max(np.abs(
          gaussian_kl_full(post_mean, post_cov, post_mean, post_cov)))),
      "posterior_log_w_std": float(np.max(lw_post.std(1))),
      "posterior_log_w_error": float(np.max(np.abs(lw_post - log_px[:, None]))),
      "min_kl": float(kl.min()), "max_kl": float(kl.max()),
  }


def jaxgen_elbo_study(model, *, n_x, n_mc, seed):
  """jaxgen's VAE ELBO estimator, in float64, for diagonal Gaussian q.

  Per x, n_mc one-sample estimates losses.elbo(gaussian_log_prob(x, W z + mu, log sigma2),
  gaussian_kl(m, log v)) are averaged; the analytic KL and the decoder log-density are
  also compared with the float64 closed forms directly.
  """
  rng = np.random.default_rng(seed)
  x = model.sample(n_x, rng)
  mean, cov = random_q(model, x, rng, full=False)
  var = np.diagonal(cov, axis1=-2, axis2=-1)
  d, k = model.dims
  eps = rng.standard_normal((n_x, n_mc, k))
  z = mean[:, None] + np.sqrt(var)[:, None] * eps
  with jax.enable_x64(True):
    flat = lambda a: jnp.asarray(a.reshape(n_x * n_mc, -1), jnp.float64)
    xr = flat(np.broadcast_to(x[:, None], (n_x, n_mc, d)))
    dec = flat(z @ model.w.T + model.mu)
    ll = losses.gaussian_log_prob(xr, dec, jnp.full_like(dec, math.log(model.sigma2)))
    kl = losses.gaussian_kl(jnp.asarray(mean), jnp.log(jnp.asarray(var)))
    elbo, loss = losses.elbo(ll.reshape(n_x, n_mc), kl[:, None])
    elbo, loss, ll, kl = (np.asarray(a) for a in (elbo, loss, ll, kl))
    dtype = str(elbo.dtype)
  closed = elbo_closed_form(model, x, mean, cov)
  kl_closed = gaussian_kl_full(mean, cov, np.zeros_like(mean),
                               np.broadcast_to(np.eye(k), cov.shape))
  ll_closed = -0.5 * (d * (LOG2PI + math.log(model.sigma2))
                      + ((np.broadcast_to(x[:, None], (n_x, n_mc, d))
                          - (z @ model.w.T + model.mu)) ** 2).sum(-1) / model.sigma2)
  est, se = elbo.mean(1), elbo.std(1, ddof=1) / math.sqrt(n_mc)
  return {"dtype": dtype,
          "kl_error": float(np.max(np.abs(kl - kl_closed))),
          "log_prob_error": float(np.max(np.abs(ll.reshape(n_x, n_mc) - ll_closed))),
          "loss_is_minus_elbo": float(np.max(np.abs(loss + elbo))),
          "mc_max_abs_z": float(np.max(np.abs(est - closed) / se)),
          "mc_max_abs_error": float(np.max(np.abs(est - closed)))}


def diagonal_weight_second_moment(pm, pv, qm, qv):
  """E_q[(p(z)/q(z))^2] = int p^2 / q for diagonal Gaussians p = N(pm, pv), q = N(qm, qv),
  per row (finite when qv > pv / 2): prod_i sqrt(qv) / (sqrt(2 pi) pv) sqrt(2 pi / A)
  exp((B^2 / A - C) / 2), with A = 2/pv - 1/qv, B = 2 pm/pv - qm/qv and
  C = 2 pm^2/pv - qm^2/qv."""
  a = 2 / pv - 1 / qv
  b = 2 * pm / pv - qm / qv
  c = 2 * pm ** 2 / pv - qm ** 2 / qv
  log = (0.5 * np.log(qv) - np.log(pv) - 0.5 * np.log(a) + 0.5 * (b ** 2 / a - c))
  return np.exp(log.sum(-1))


def iwae_study(model, *, n_x, repeats, ks, shift=1.0, scale=2.0, seed=0):
  """IWAE_k = E log (1/k sum_i w_i) for q = N(posterior mean + shift posterior std,
  scale x posterior variance), per k averaged over ``repeats`` independent sets of
  max(ks) samples (IWAE_k on the first k of each set) and over n_x data points.

  Returns the mean bound per k, its standard error, the standard errors of the
  differences between consecutive k (paired: the same samples), the exact log p(x) and
  ELBO(q), and Burda et al.'s asymptotic gap Var(w) / (2 k p(x)^2) at each k.
  """
  rng = np.random.default_rng(seed)
  x = model.sample(n_x, rng)
  post_mean, post_cov = model.posterior(x)
  post_var = np.diagonal(post_cov)  # diagonal: W has orthogonal columns
  mean = post_mean + shift * np.sqrt(post_var)
  var = np.broadcast_to(scale * post_var, mean.shape)
  cov = var[:, :, None] * np.eye(model.dims[1])
  log_px = model.log_marginal(x)
  bounds = np.zeros((n_x, repeats, len(ks)))
  with jax.enable_x64(True):
    for i in range(n_x):
      lw = log_weights(model, x[i:i + 1], mean[i:i + 1], cov[i:i + 1],
                       repeats * max(ks), rng).reshape(repeats, max(ks))
      lw = jnp.asarray(lw, jnp.float64)
      bounds[i] = np.stack([np.asarray(losses.iwae_bound(lw[:, :k])) for k in ks], -1)
  gaps = log_px[:, None, None] - bounds  # (n_x, repeats, len(ks)), per x
  mean_gap = gaps.mean((0, 1))
  # Standard errors over the repeats, per x, combined over the n_x points.
  se = np.sqrt((gaps.var(1, ddof=1) / repeats).sum(0)) / n_x
  diffs = np.diff(bounds, axis=-1)
  diff_mean = diffs.mean((0, 1))
  diff_se = np.sqrt((diffs.var(1, ddof=1) / repeats).sum(0)) / n_x
  ew2 = diagonal_weight_second_moment(post_mean, post_var, mean, var)  # E (w / p(x))^2
  return {"ks": list(ks), "log_px": float(log_px.mean()),
          "elbo": float(elbo_closed_form(model, x, mean, cov).mean()),
          "kl": float(gaussian_kl_full(mean, cov, post_mean,
                                       np.broadcast_to(post_cov, cov.shape)).mean()),
          "iwae": (log_px.mean() - mean_gap).tolist(), "gap": mean_gap.tolist(),
          "gap_se": se.tolist(), "diff": diff_mean.tolist(), "diff_se": diff_se.tolist(),
          "min_diff_z": float(np.min(diff_mean / diff_se)),
          "asymptotic_gap": [float(np.mean(ew2 - 1) / (2 * k)) for k in ks]}


def train_encoder(model, *, steps, every, batch_size=256, lr=0.03, n_train=8192,
                  n_eval=2048, seed=0):
  """Trains an affine Gaussian encoder q(z | x) = N(A x + b, diag exp(C x + c)) with
  jaxgen's ELBO (one reparameterised sample, analytic KL) against the true decoder, by
  Adam on float32 minibatches. Every ``every`` steps the exact gap log p(x) - ELBO(q)
  and KL(q || p(z|x)), averaged over held-out data, are computed in float64.

  Returns a list of (step, gap, kl, training loss of the last minibatch).
  """
  d, k = model.dims
  rng = np.random.default_rng(seed)
  x_train = jnp.asarray(model.sample(n_train, rng), jnp.float32)
  x_eval = model.sample(n_eval, rng)
  log_px = model.log_marginal(x_eval)
  post_mean, post_cov = model.posterior(x_eval)
  w, mu = jnp.asarray(model.w, jnp.float32), jnp.asarray(model.mu, jnp.float32)
  log_s2 = math.log(model.sigma2)
  init_key, key = jax.random.split(jax.random.key(seed))
  params = {"a": 0.01 * jax.random.normal(init_key, (d, k)), "b": jnp.zeros(k),
            "c": jnp.zeros((d, k)), "c0": jnp.zeros(k)}

  def encode(p, x):
    return x @ p["a"] + p["b"], x @ p["c"] + p["c0"]

  def loss_fn(p, x, noise):
    mean, logvar = encode(p, x)
    z = mean + jnp.exp(0.5 * logvar) * noise
    ll = losses.gaussian_log_prob(x, z @ w.T + mu, jnp.full_like(x, log_s2))
    _, loss = losses.elbo(ll, losses.gaussian_kl(mean, logvar))
    return loss.mean()

  tx = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=1e-3))
  opt_state = tx.init(params)

  def step(carry, i):
    p, o = carry
    kx, kn = jax.random.split(jax.random.fold_in(key, i))
    x = x_train[jax.random.randint(kx, (batch_size,), 0, n_train)]
    loss, g = jax.value_and_grad(loss_fn)(p, x, jax.random.normal(kn, (batch_size, k)))
    updates, o = tx.update(g, o, p)
    return (optax.apply_updates(p, updates), o), loss

  @jax.jit
  def run(p, o, start):
    (p, o), loss = jax.lax.scan(step, (p, o), start + jnp.arange(every))
    return p, o, loss[-1]

  def exact_gap(p):
    p = {n: np.asarray(v, np.float64) for n, v in p.items()}
    mean, logvar = encode(p, x_eval)
    cov = np.exp(logvar)[:, :, None] * np.eye(k)
    gap = log_px - elbo_closed_form(model, x_eval, mean, cov)
    kl = gaussian_kl_full(mean, cov, post_mean, np.broadcast_to(post_cov, cov.shape))
    return float(gap.mean()), float(kl.mean())

  trace = [(0, *exact_gap(params), float("nan"))]
  for start in range(0, steps, every):
    params, opt_state, loss = run(params, opt_state, start)
    trace.append((start + every, *exact_gap(params), float(loss)))
  return trace


# ----------------------------------------------------------------------------------
# Part 2: 1-D Gaussian-mixture data under the diffusion process.

@dataclasses.dataclass(frozen=True)
class Mixture1D:
  """q(x_0) = sum_k w_k N(m_k, s_k^2); diffused by x_t = sqrt(ab) x_0 + sqrt(1-ab) eps,
  q(x_t) = sum_k w_k N(sqrt(ab) m_k, ab s_k^2 + 1 - ab)."""
  weights: np.ndarray
  means: np.ndarray
  stds: np.ndarray

  @classmethod
  def default(cls) -> Mixture1D:
    """Three unequal, well separated modes inside [-1, 1], as image data would be."""
    return cls(np.array([0.3, 0.5, 0.2]), np.array([-0.7, 0.1, 0.75]),
               np.array([0.08, 0.15, 0.05]))

  def sample(self, n, rng):
    k = rng.choice(len(self.weights), size=n, p=self.weights)
    return self.means[k] + self.stds[k] * rng.standard_normal(n)

  def diffused(self, ab):
    """Component means and variances of q(x_t) for alpha-bar_t = ab (a number, or an
    array broadcasting against x): arrays of shape ab.shape + (K,)."""
    ab = np.asarray(ab, np.float64)[..., None]
    return np.sqrt(ab) * self.means, ab * self.stds ** 2 + (1.0 - ab)

  def _log_components(self, x, ab):
    m, v = self.diffused(ab)
    x = np.asarray(x, np.float64)[..., None]
    return np.log(self.weights) - 0.5 * ((x - m) ** 2 / v + np.log(v) + LOG2PI), m, v

  def log_density(self, x, ab=1.0):
    """log q(x_t) (log q(x_0) at ab = 1)."""
    return special.logsumexp(self._log_components(x, ab)[0], axis=-1)

  def score(self, x, ab):
    """d/dx log q(x_t), exact."""
    log_c, m, v = self._log_components(x, ab)
    r = special.softmax(log_c, axis=-1)
    return (r * (m - np.asarray(x, np.float64)[..., None]) / v).sum(-1)

  def posterior_x0(self, x, ab):
    """E[x_0 | x_t = x] and Var[x_0 | x_t = x]: per component a Gaussian conditional,
    mixed with the responsibilities r_k(x) (law of total variance)."""
    log_c, m, v = self._log_components(x, ab)
    r = special.softmax(log_c, axis=-1)
    ab = np.asarray(ab, np.float64)[..., None]
    gain = np.sqrt(ab) * self.stds ** 2 / v
    mean_k = self.means + gain * (np.asarray(x, np.float64)[..., None] - m)
    var_k = self.stds ** 2 * (1.0 - ab) / v
    mean = (r * mean_k).sum(-1)
    return mean, (r * (var_k + mean_k ** 2)).sum(-1) - mean ** 2

  def grid(self, ab, per_std=40, width=10.0):
    """A uniform grid (x, h) holding q(x_t) to quadrature precision: spacing the
    narrowest component's std / per_std, over +-width stds of every component."""
    m, v = self.diffused(ab)
    sd = np.sqrt(v)
    h = sd.min() / per_std
    return np.arange((m - width * sd).min(), (m + width * sd).max(), h), h

  def expected_posterior_variance(self, ab):
    """E_{q(x_t)} Var[x_0 | x_t] by the trapezoidal rule on ``grid`` (the integrand
    decays like a Gaussian, so the uniform rule converges spectrally)."""
    x, h = self.grid(ab)
    _, var = self.posterior_x0(x, ab)
    return float(np.sum(np.exp(self.log_density(x, ab)) * var) * h)

  def entropy(self):
    """H(q(x_0)) = -E log q(x_0), by the trapezoidal rule: the data's true NLL."""
    x, h = self.grid(1.0)
    lq = self.log_density(x)
    return float(-np.sum(np.exp(lq) * lq) * h)

  def second_moment(self):
    return float(np.sum(self.weights * (self.means ** 2 + self.stds ** 2)))


def coefficients(betas):
  """The process in float64, paper indexing in arrays of length T (index i = t - 1):
  alpha-bar_t, alpha-bar_{t-1}, beta-tilde_t and Ho et al.'s posterior-mean coefficients
  of x_0 (coef_x0) and x_t (coef_xt = sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t))."""
  b = np.asarray(betas, np.float64)
  ab = np.cumprod(1.0 - b)
  ab_prev = np.append(1.0, ab[:-1])
  return {"betas": b, "ab": ab, "ab_prev": ab_prev,
          "beta_tilde": b * (1.0 - ab_prev) / (1.0 - ab),
          "coef_x0": b * np.sqrt(ab_prev) / (1.0 - ab),
          "coef_xt": np.sqrt(1.0 - b) * (1.0 - ab_prev) / (1.0 - ab),
          # The slide's: sqrt(1 - beta-bar_t) with beta-bar_t = 1 - alpha-bar_t.
          "coef_xt_slide": np.sqrt(ab) * (1.0 - ab_prev) / (1.0 - ab)}


VARIANCE_CHOICES = ("fixedlarge", "fixedsmall", "beta", "optimal")


def reverse_variances(c, kind, expected_var):
  """sigma_t^2 of p(x_{t-1} | x_t), t = 1..T.

  fixedlarge / fixedsmall: jaxgen's (= Ho et al.'s code): beta_t or beta-tilde_t for
  t >= 2 and beta-tilde_2 at t = 1 for both. beta: the paper's sigma_t^2 = beta_t at every
  t. optimal: the variance minimising E KL for the optimal mean, beta-tilde_t + coef_x0^2
  E Var[x_0 | x_t] (Analytic-DPM, Bao et al. 2022; at t = 1, E Var[x_0 | x_1]).
  """
  if kind == "fixedlarge":
    return np.append(c["beta_tilde"][1], c["betas"][1:])
  if kind == "fixedsmall":
    return np.append(c["beta_tilde"][1], c["beta_tilde"][1:])
  if kind == "beta":
    return c["betas"].copy()
  if kind == "optimal":
    return c["beta_tilde"] + c["coef_x0"] ** 2 * expected_var
  raise ValueError(kind)


def exact_bound(mix, betas, kinds=VARIANCE_CHOICES):
  """The terms of the DDPM bound with the optimal mean, exact (in nats).

  With mu*(x_t) = coef_x0 E[x_0 | x_t] + coef_xt x_t, the difference mu~_t - mu* is
  coef_x0 (x_0 - E[x_0 | x_t]), so with bt = beta-tilde_t,
    E KL(q(x_{t-1} | x_t, x_0) || N(mu*, s^2))
      = 1/2 (log(s^2 / bt) + bt / s^2 - 1) + coef_x0^2 E Var[x_0 | x_t] / (2 s^2);
  at t = 1, coef_x0 = 1, coef_xt = 0 and L_0 = 1/2 log(2 pi s^2) + E Var[x_0 | x_1] /
  (2 s^2); L_T = 1/2 ((1 - ab_T) + ab_T E[x_0^2] - 1 - log(1 - ab_T)).

  Returns, per variance choice, L_T, L_0, the (T-1,) terms L_1..L_{T-1} and the total.
  """
  c = coefficients(betas)
  ev = np.array([mix.expected_posterior_variance(a) for a in c["ab"]])
  ab_t = c["ab"][-1]
  l_t = 0.5 * ((1 - ab_t) + ab_t * mix.second_moment() - 1 - math.log1p(-ab_t))
  out = {"expected_var": ev}
  for kind in kinds:
    s2 = reverse_variances(c, kind, ev)
    l_0 = 0.5 * (LOG2PI + math.log(s2[0])) + ev[0] / (2 * s2[0])
    bt = c["beta_tilde"][1:]
    terms = (0.5 * (np.log(s2[1:] / bt) + bt / s2[1:] - 1)
             + c["coef_x0"][1:] ** 2 * ev[1:] / (2 * s2[1:]))
    out[kind] = {"prior": float(l_t), "decoder": float(l_0), "terms": terms,
                 "total": float(l_t + l_0 + terms.sum())}
  return out


def optimal_x0_fn(mix):
  """E[x_0 | x_t] as a jax function of (x_t (batch, 1), t (batch,)) for jaxgen's process
  (t indexed 0..T-1), in float32: the x0-prediction of the ideal network."""
  weights, means, stds = (jnp.asarray(a, jnp.float32)
                          for a in (mix.weights, mix.means, mix.stds))

  def fn(diffusion, xt, t):
    ab = diffusion.alphas_cumprod[t][:, None, None]  # (batch, 1, 1)
    x = xt[..., None]  # (batch, 1, 1) against components on the last axis
    m, v = jnp.sqrt(ab) * means, ab * stds ** 2 + (1 - ab)
    log_c = jnp.log(weights) - 0.5 * ((x - m) ** 2 / v + jnp.log(v))
    r = jax.nn.softmax(log_c, axis=-1)
    return (r * (means + jnp.sqrt(ab) * stds ** 2 / v * (x - m))).sum(-1)
  return fn


def bound_monte_carlo(mix, schedule, num_steps, variance, *, n, seed):
  """The DDPM bound through jaxgen's GaussianDiffusion.bpd, the ideal x0-predictor as
  the model: L_T and the KL terms L_1..L_{T-1} from bpd (one x_t per example and t);
  L_0 as the continuous Gaussian -log p(x_0 | x_1) from jaxgen's p_mean_variance and
  losses.gaussian_log_prob (bpd's L_0 is the discretised decoder of 8-bit images).

  Returns per-example totals (nats), the MC mean of each term L_1..L_{T-1}, L_T, L_0,
  and the per-example NLL -log q(x_0) of the same x_0.
  """
  diffusion = process.GaussianDiffusion.create(schedule, num_steps)
  x0_of = optimal_x0_fn(mix)
  rng = np.random.default_rng(seed)
  x0_np = mix.sample(n, rng)
  x0 = jnp.asarray(x0_np[:, None], jnp.float32)
  key_bpd, key_1 = jax.random.split(jax.random.key(seed))

  @jax.jit
  def run(x0):
    out = diffusion.bpd(lambda xt, t: x0_of(diffusion, xt, t), x0, key_bpd,
                        parameterization="x0", variance=variance)
    t0 = jnp.zeros((n,), jnp.int32)
    x1 = diffusion.q_sample(x0, t0, jax.random.normal(key_1, x0.shape))
    mean, logvar, _ = diffusion.p_mean_variance(x0_of(diffusion, x1, t0), x1, t0, "x0",
                                                variance, clip_x0=False)
    return out, -losses.gaussian_log_prob(x0, mean, logvar)

  out, l_0 = run(x0)
  nats = math.log(2.0)  # bpd is in bits per dimension, one dimension
  terms = np.asarray(out["terms"][1:], np.float64) * nats  # (T-1, n)
  prior = np.asarray(out["prior"], np.float64) * nats
  l_0 = np.asarray(l_0, np.float64)
  return {"total": prior + l_0 + terms.sum(0), "terms": terms.mean(1),
          "terms_se": terms.std(1, ddof=1) / math.sqrt(n),
          "prior": float(prior.mean()), "decoder": float(l_0.mean()),
          "nll": -mix.log_density(x0_np)}


def jaxgen_terms_check(mix, schedule, num_steps, variance, *, n, seed):
  """jaxgen's vb_terms_bpd at sampled (x_0, x_t) against the float64 closed form
  KL(N(mu~, bt) || N(mu*, s^2)) at the same points: max absolute difference in nats."""
  diffusion = process.GaussianDiffusion.create(schedule, num_steps)
  c = coefficients(schedules.get(schedule, num_steps))
  rng = np.random.default_rng(seed)
  t = rng.integers(1, num_steps, n)  # jaxgen index; the paper's t + 1 >= 2
  x0 = mix.sample(n, rng)
  ab = c["ab"][t]
  xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * rng.standard_normal(n)
  e_x0, _ = mix.posterior_x0(xt, ab)
  s2 = reverse_variances(c, variance, None)[t]  # fixedlarge or fixedsmall
  bt = c["beta_tilde"][t]
  mu_true = c["coef_x0"][t] * x0 + c["coef_xt"][t] * xt
  mu_model = c["coef_x0"][t] * e_x0 + c["coef_xt"][t] * xt
  kl = 0.5 * (np.log(s2 / bt) + bt / s2 - 1 + (mu_true - mu_model) ** 2 / s2)
  terms = jax.jit(diffusion.vb_terms_bpd, static_argnums=(4, 5))
  f32 = lambda a: jnp.asarray(a[:, None], jnp.float32)
  got = terms(f32(e_x0), f32(x0), f32(xt), jnp.asarray(t, jnp.int32), "x0", variance)
  err = np.abs(np.asarray(got, np.float64) * math.log(2.0) - kl)
  return {"max_abs_error": float(err.max()), "max_rel_error":
          float(np.max(err / np.maximum(kl, 1e-3))), "mean_term": float(kl.mean())}


def bayes_posterior(x0, xt, beta, ab_prev, per_std=50, width=14.0):
  """Mean and variance of q(x_{t-1} | x_t, x_0), proportional to
  q(x_t | x_{t-1}) q(x_{t-1} | x_0), normalised numerically on a uniform grid over
  x_{t-1}; nothing of the closed form enters. As a function of x_{t-1}, the first factor
  peaks at x_t / sqrt(1 - beta) with std sqrt(beta / (1 - beta)), the second at
  sqrt(ab_prev) x_0 with std sqrt(1 - ab_prev); the product lies between the peaks and
  is no narrower than the narrower factor / sqrt(2), which sets the grid.

  Returns the mean, the variance, the grid and the normalised density on it."""
  peaks = np.array([xt / math.sqrt(1 - beta), math.sqrt(ab_prev) * x0])
  narrow = min(math.sqrt(beta / (1 - beta)), math.sqrt(1 - ab_prev))
  h = narrow / per_std
  y = np.arange(peaks.min() - width * narrow, peaks.max() + width * narrow, h)
  log_p = (-0.5 * (xt - math.sqrt(1 - beta) * y) ** 2 / beta
           - 0.5 * (y - math.sqrt(ab_prev) * x0) ** 2 / (1 - ab_prev))
  p = np.exp(log_p - log_p.max())
  p /= p.sum()
  mean = float(np.sum(p * y))
  return mean, float(np.sum(p * (y - mean) ** 2)), y, p / h


def posterior_study(schedule="linear", num_steps=1000, ts=None, x0s=(-0.8, 0.3, 1.0),
                    seed=0):
  """Bayes' rule against Ho et al.'s and the slide's posterior means, the posterior
  variance beta-tilde_t, and jaxgen's q_posterior (float32), over paper timesteps ts
  (>= 2: at t = 1 the posterior is the point x_0), values x_0 and per (t, x_0) three x_t:
  one drawn from q(x_t | x_0) and the fixed -1.5 and 2.0."""
  ts = ts or [2, 5, 10, 50, 100, 250, 500, 750, num_steps]
  c = coefficients(schedules.get(schedule, num_steps))
  diffusion = process.GaussianDiffusion.create(schedule, num_steps)
  rng = np.random.default_rng(seed)
  rows = []
  for t in ts:
    i = t - 1
    for x0 in x0s:
      ab = c["ab"][i]
      drawn = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * rng.standard_normal()
      for xt in (drawn, -1.5, 2.0):
        mean, var, _, _ = bayes_posterior(x0, xt, c["betas"][i], c["ab_prev"][i])
        ho = c["coef_x0"][i] * x0 + c["coef_xt"][i] * xt
        slide = c["coef_x0"][i] * x0 + c["coef_xt_slide"][i] * xt
        rows.append((t, x0, xt, mean, var, ho, slide, c["beta_tilde"][i]))
  rows = np.array(rows)
  t_idx = jnp.asarray(rows[:, 0] - 1, jnp.int32)
  j_mean, j_var, _ = diffusion.q_posterior(jnp.asarray(rows[:, 1:2], jnp.float32),
                                           jnp.asarray(rows[:, 2:3], jnp.float32), t_idx)
  t, mean, var, ho, slide, bt = (rows[:, j] for j in (0, 3, 4, 5, 6, 7))
  err_ho, err_slide = np.abs(mean - ho), np.abs(mean - slide)
  per_t = [(int(s), float(err_ho[t == s].max()), float(err_slide[t == s].max()))
           for s in ts]
  return {"ts": list(ts), "per_t": per_t,
          "ho_mean_error": float(err_ho.max()),
          "slide_mean_error": float(err_slide.max()),
          "slide_mean_error_min_over_t_ge_50": float(min(e for s, _, e in per_t
                                                         if s >= 50)),
          "variance_rel_error": float(np.max(np.abs(var - bt) / bt)),
          "jaxgen_mean_error": float(np.max(np.abs(np.asarray(j_mean)[:, 0] - mean))),
          "jaxgen_variance_rel_error": float(np.max(
              np.abs(np.asarray(j_var)[:, 0] - var) / var)),
          "coef_xt_ho_vs_slide_at_T": (float(c["coef_xt"][-1]),
                                       float(c["coef_xt_slide"][-1]))}


def tweedie_check(mix, ab_values, n=2001):
  """E[x_0 | x_t] from the mixture's conditionals against Tweedie's formula
  (x_t + (1 - ab) d/dx log q(x_t)) / sqrt(ab) with the exact score."""
  err = 0.0
  for ab in ab_values:
    x = np.linspace(-3, 3, n)
    mean, _ = mix.posterior_x0(x, ab)
    err = max(err, float(np.max(np.abs(
        mean - (x + (1 - ab) * mix.score(x, ab)) / math.sqrt(ab)))))
  return err


# ----------------------------------------------------------------------------------
# Plots: matplotlib (without pyplot's global state) when installed, else the PIL
# plots of experiments/gan_optimum.py.

def _load_sibling(name):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  sys.modules.setdefault(name, module)  # its dataclasses resolve annotations through it
  spec.loader.exec_module(module)
  return module


def save_plot(path, series, title, xlabel="", ylabel="", logx=False, logy=False):
  """``series``: (label, x, y, style), style "line", "dashed" or "points"."""
  try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
  except ImportError:
    go = _load_sibling("gan_optimum")
    viz.save_png(go.line_plot(series, title, xlabel, ylabel, logx=logx, logy=logy), path)
    return
  fig = Figure(figsize=(7, 4.5), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  for label, x, y, style in series:
    fmt = {"line": "-", "dashed": "--", "points": "o"}[style]
    ax.plot(x, y, fmt, label=label, markersize=3)
  ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
  if logx:
    ax.set_xscale("log")
  if logy:
    ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)


def write_plots(r, outdir):
  os.makedirs(outdir, exist_ok=True)
  idn = r["identity"]
  kl = idn["kl"]
  save_plot(os.path.join(outdir, "elbo_gap_equals_kl.png"),
            [("KL(q || p(z|x))", [0, kl.max()], [0, kl.max()], "dashed"),
             ("log p(x) - ELBO, closed form", kl, idn["log_px"] - idn["elbo"], "points"),
             ("log p(x) - ELBO, Monte Carlo", kl, idn["log_px"] - idn["elbo_mc"],
              "points")],
            "PPCA: the ELBO gap of random Gaussian q is KL(q || p(z|x))",
            "KL(q || p(z|x)) (nats)", "log p(x) - ELBO (nats)")
  iw = r["iwae"]
  ks = np.array(iw["ks"])
  save_plot(os.path.join(outdir, "iwae_vs_k.png"),
            [("log p(x) - IWAE_k (mean over repeats)", ks, iw["gap"], "line"),
             ("Burda et al. asymptote Var(w)/(2k p(x)^2)", ks, iw["asymptotic_gap"],
              "dashed"),
             ("KL(q || p(z|x)) = gap at k = 1", ks, [iw["kl"]] * len(ks), "dashed")],
            "Importance-weighted bound: the gap to log p(x) falls with k",
            "k (samples)", "gap (nats)", logx=True, logy=True)
  tr = np.array(r["vae"])
  save_plot(os.path.join(outdir, "vae_encoder_gap.png"),
            [("log p(x) - ELBO (held-out mean)", tr[:, 0], tr[:, 1], "line"),
             ("KL(q(z|x) || p(z|x))", tr[:, 0], tr[:, 2], "dashed")],
            "Affine encoder trained with jaxgen's ELBO approaches p(z|x)",
            "step", "nats", logy=True)
  b = r["ddpm"]["exact_T1000"]
  mc = r["ddpm"]["mc"]
  t = np.arange(2, len(b["fixedlarge"]["terms"]) + 2)
  save_plot(os.path.join(outdir, "ddpm_terms.png"),
            [("L_{t-1}, exact (fixedlarge)", t, b["fixedlarge"]["terms"], "line"),
             ("L_{t-1}, Monte Carlo via jaxgen bpd", t[::10], mc["terms"][::10],
              "points"),
             ("L_{t-1}, exact (optimal variance)", t, b["optimal"]["terms"], "dashed")],
            "DDPM bound terms, optimal mean, 1-D mixture, linear T=1000", "t",
            "nats", logx=True, logy=True)
  sweep = r["ddpm"]["sweep"]
  series = []
  for sched in sweep:
    for kind in VARIANCE_CHOICES:
      pts = [(s["T"], s["gap"][kind]) for s in sweep[sched]]
      series.append((f"{sched}, {kind}", *zip(*pts), "line" if sched == "linear"
                     else "dashed"))
  save_plot(os.path.join(outdir, "ddpm_bound_vs_T.png"), series,
            "DDPM bound - true NLL H(q(x_0)), optimal mean", "T", "nats",
            logx=True, logy=True)
  post = r["posterior"]
  pt = np.array(post["per_t"])
  save_plot(os.path.join(outdir, "posterior_mean_error.png"),
            [("|Bayes - Ho et al. (sqrt(alpha_t))|", pt[:, 0], pt[:, 1] + 1e-17,
              "line"),
             ("|Bayes - slide (sqrt(1 - beta-bar_t))|", pt[:, 0], pt[:, 2] + 1e-17,
              "line")],
            "Posterior mean of q(x_{t-1}|x_t,x_0): closed forms vs Bayes' rule",
            "t", "max abs error", logx=True, logy=True)
  ex = post["example"]
  save_plot(os.path.join(outdir, "posterior_example.png"),
            [("Bayes' rule on a grid", ex["y"], ex["p"], "line"),
             ("N(Ho et al.'s mean, beta-tilde)", ex["y"], ex["p_ho"], "dashed"),
             ("N(slide's mean, beta-tilde)", ex["y"], ex["p_slide"], "dashed")],
            f"q(x_(t-1) | x_t={ex['xt']:.2f}, x_0={ex['x0']:.2f}), t={ex['t']}",
            "x_(t-1)", "density")
  mix = Mixture1D.default()
  x = np.linspace(-3, 3, 1201)
  save_plot(os.path.join(outdir, "diffused_marginals.png"),
            [(f"q(x_t), alpha-bar={ab:g}", x, np.exp(mix.log_density(x, ab)), "line")
             for ab in (1.0, 0.99, 0.9, 0.5, 0.1, 1e-4)],
            "The data and its diffused marginals (Gaussian mixtures)", "x", "density")


# ----------------------------------------------------------------------------------

def core_checks(quick=False, seed=0):
  """All measurements; ``quick`` shrinks sample sizes and training (seconds)."""
  r = {}
  model = LinearGaussian.make(seed=seed)
  r["identity"] = identity_study(model, n_q=16 if quick else 64,
                                 n_mc=20_000 if quick else 200_000, seed=seed)
  r["jaxgen_elbo"] = jaxgen_elbo_study(model, n_x=8 if quick else 32,
                                       n_mc=20_000 if quick else 100_000, seed=seed + 1)
  r["iwae"] = iwae_study(model, n_x=4 if quick else 8, repeats=300 if quick else 1500,
                         ks=(1, 2, 5, 10, 50, 100, 1000), seed=seed + 2)
  r["vae"] = train_encoder(model, steps=1000 if quick else 4000, every=100,
                           seed=seed + 3)

  mix = Mixture1D.default()
  ddpm = {"entropy": mix.entropy(),
          "tweedie_error": tweedie_check(mix, (0.9999, 0.99, 0.5, 0.01, 1e-4))}
  grid_x, grid_h = mix.grid(1.0)
  ddpm["density_mass_error"] = float(abs(np.exp(mix.log_density(grid_x)).sum() * grid_h
                                         - 1))
  ddpm["exact_T1000"] = exact_bound(mix, schedules.get("linear", 1000))
  sweep = {}
  for sched in ("linear", "cosine"):
    sweep[sched] = []
    for T in ((25, 100, 1000) if quick else (25, 50, 100, 250, 1000, 4000)):
      b = (ddpm["exact_T1000"] if (sched, T) == ("linear", 1000)
           else exact_bound(mix, schedules.get(sched, T)))
      sweep[sched].append({"T": T, **{k: b[k]["total"] for k in VARIANCE_CHOICES},
                           "gap": {k: b[k]["total"] - ddpm["entropy"]
                                   for k in VARIANCE_CHOICES},
                           "decoder": {k: b[k]["decoder"] for k in VARIANCE_CHOICES}})
  ddpm["sweep"] = sweep
  mc = bound_monte_carlo(mix, "linear", 1000, "fixedlarge", n=2000 if quick else 20_000,
                         seed=seed + 4)
  exact = ddpm["exact_T1000"]["fixedlarge"]
  se_total = mc["total"].std(ddof=1) / math.sqrt(len(mc["total"]))
  mc["summary"] = {
      "total": float(mc["total"].mean()), "total_se": float(se_total),
      "total_z": float((mc["total"].mean() - exact["total"]) / se_total),
      "nll": float(mc["nll"].mean()),
      "bound_minus_nll": float((mc["total"] - mc["nll"]).mean()),
      "bound_minus_nll_se": float((mc["total"] - mc["nll"]).std(ddof=1)
                                  / math.sqrt(len(mc["total"]))),
      "terms_max_abs_z": float(np.max(np.abs(mc["terms"] - exact["terms"])
                                      / mc["terms_se"]))}
  ddpm["mc"] = mc
  ddpm["jaxgen_terms"] = {v: jaxgen_terms_check(mix, "linear", 1000, v, n=2000,
                                                seed=seed + 5)
                          for v in ("fixedlarge", "fixedsmall")}
  r["ddpm"] = ddpm

  post = posterior_study(seed=seed + 6)
  # One example to draw: a late step, where the two coefficients differ most visibly.
  c = coefficients(schedules.get("linear", 1000))
  t, x0, xt = 600, 0.5, 1.2
  _, _, y, p = bayes_posterior(x0, xt, c["betas"][t - 1], c["ab_prev"][t - 1])
  sd = math.sqrt(c["beta_tilde"][t - 1])
  means = [c["coef_x0"][t - 1] * x0 + c[k][t - 1] * xt
           for k in ("coef_xt", "coef_xt_slide")]
  pdf = lambda m: np.exp(-0.5 * ((y - m) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
  post["example"] = {"t": t, "x0": x0, "xt": xt, "y": y, "p": p,
                     "p_ho": pdf(means[0]), "p_slide": pdf(means[1])}
  r["posterior"] = post
  return r


def summary(r):
  """(name, value, text) per check; text states the measurement and the claim."""
  idn, jx, iw, vae = r["identity"], r["jaxgen_elbo"], r["iwae"], r["vae"]
  d, post = r["ddpm"], r["posterior"]
  mc = d["mc"]["summary"]
  k1000 = iw["ks"].index(1000)
  sweep = {s: {e["T"]: e for e in v} for s, v in d["sweep"].items()}
  lin = sweep["linear"]
  t_max = max(lin)
  min_gap = min(e["gap"][k] for v in d["sweep"].values() for e in v
                for k in VARIANCE_CHOICES)
  rows = [
      ("elbo_identity", idn["identity_error"],
       f"max |log p(x) - ELBO(q) - KL(q||p(z|x))| over {len(idn['kl'])} random q "
       f"(KL {idn['min_kl']:.2f}..{idn['max_kl']:.1f} nats) = {idn['identity_error']:.1e}"
       " (float64 closed forms; ~1e-14)"),
      ("elbo_mc", idn["mc_max_abs_z"],
       f"ELBO by Monte Carlo vs closed form: max |error| {idn['mc_max_abs_error']:.1e} "
       f"nats, max |z| {idn['mc_max_abs_z']:.2f} (MC error only: |z| < ~4)"),
      ("elbo_at_posterior", idn["posterior_elbo_error"],
       f"ELBO(p(z|x)) - log p(x): {idn['posterior_elbo_error']:.1e}; log w at the "
       f"posterior: max |log w - log p(x)| {idn['posterior_log_w_error']:.1e} "
       f"(zero variance)"),
      ("jaxgen_elbo", jx["mc_max_abs_z"],
       f"jaxgen gaussian_kl / gaussian_log_prob vs closed forms ({jx['dtype']}): "
       f"{jx['kl_error']:.1e} / {jx['log_prob_error']:.1e}; jaxgen MC ELBO vs closed "
       f"form max |z| {jx['mc_max_abs_z']:.2f}"),
      ("iwae_monotone", iw["min_diff_z"],
       "IWAE_k - log p(x) for k = " + ", ".join(map(str, iw["ks"])) + ": "
       + ", ".join(f"{-g:.4f}" for g in iw["gap"])
       + f"; min (IWAE_k' - IWAE_k) / se = {iw['min_diff_z']:.1f} (> -3: monotone)"),
      ("iwae_asymptote", iw["gap"][k1000],
       f"log p(x) - IWAE_1000 = {iw['gap'][k1000]:.2e} +- {iw['gap_se'][k1000]:.0e} vs "
       f"Var(w)/(2k p(x)^2) = {iw['asymptotic_gap'][k1000]:.2e}; IWAE_1 - ELBO = "
       f"{-iw['gap'][0] - (iw['elbo'] - iw['log_px']):.1e} +- {iw['gap_se'][0]:.0e}"),
      ("vae_gap", vae[-1][1],
       f"encoder KL gap (log p(x) - ELBO, held out) {vae[0][1]:.3f} -> {vae[-1][1]:.2e} "
       f"nats in {vae[-1][0]} steps (factor {vae[0][1] / vae[-1][1]:.0f})"),
      ("tweedie", d["tweedie_error"],
       f"mixture E[x_0|x_t] vs Tweedie with the exact score: {d['tweedie_error']:.1e}"),
      ("ddpm_bound_ge_nll", min_gap,
       f"min over T, schedules, variances of bound - H(q(x_0)) = {min_gap:.2e} "
       f"(>= 0; H = {d['entropy']:.6f} nats, exact)"),
      ("ddpm_gap_T", lin[t_max]["gap"]["beta"],
       "bound - NLL at linear T = " + ", ".join(map(str, lin)) + ": "
       + "; ".join(f"{k} " + " ".join(f"{lin[T]['gap'][k]:.4f}" for T in lin)
                   for k in VARIANCE_CHOICES)
       + " (sigma_1^2 = beta_1 and optimal -> 0; jaxgen's fixedlarge keeps a "
       "T-independent L_0 excess)"),
      ("ddpm_mc", mc["total_z"],
       f"bound by MC through jaxgen bpd (fixedlarge, T=1000) {mc['total']:.4f} +- "
       f"{mc['total_se']:.4f} vs exact {d['exact_T1000']['fixedlarge']['total']:.4f}"
       f" (z {mc['total_z']:.2f}); terms max |z| {mc['terms_max_abs_z']:.1f}; MC bound - "
       f"MC NLL {mc['bound_minus_nll']:.4f} +- {mc['bound_minus_nll_se']:.4f}"),
      ("jaxgen_vb_terms", max(v["max_abs_error"] for v in d["jaxgen_terms"].values()),
       "jaxgen vb_terms_bpd (float32) vs float64 closed form per (x_0, x_t): max |error| "
       + ", ".join(f"{k} {v['max_abs_error']:.1e}" for k, v in d["jaxgen_terms"].items())
       + " nats"),
      ("posterior_ho", post["ho_mean_error"],
       f"posterior mean, Bayes' rule vs Ho et al. (sqrt(alpha_t)): max |error| "
       f"{post['ho_mean_error']:.1e}; variance vs beta-tilde: rel "
       f"{post['variance_rel_error']:.1e}"),
      ("posterior_slide", post["slide_mean_error"],
       f"posterior mean, Bayes' rule vs the slide (sqrt(1 - beta-bar_t)): max |error| "
       f"{post['slide_mean_error']:.2f} (min over t >= 50: "
       f"{post['slide_mean_error_min_over_t_ge_50']:.2f}): wrong"),
      ("jaxgen_q_posterior", post["jaxgen_mean_error"],
       f"jaxgen q_posterior (float32) vs Bayes' rule: mean "
       f"{post['jaxgen_mean_error']:.1e}, variance rel "
       f"{post['jaxgen_variance_rel_error']:.1e}"),
  ]
  return rows


def numbers(r):
  """The measured numbers as JSON-ready scalars and short lists."""
  idn, jx, iw, d, post = (r["identity"], r["jaxgen_elbo"], r["iwae"], r["ddpm"],
                          r["posterior"])
  return {
      "elbo_identity_error": idn["identity_error"],
      "elbo_mc_max_abs_z": idn["mc_max_abs_z"],
      "elbo_at_posterior_error": idn["posterior_elbo_error"],
      "posterior_log_w_std": idn["posterior_log_w_std"],
      "jaxgen_kl_error": jx["kl_error"], "jaxgen_log_prob_error": jx["log_prob_error"],
      "jaxgen_elbo_mc_max_abs_z": jx["mc_max_abs_z"],
      "iwae_ks": iw["ks"], "iwae_gap": iw["gap"], "iwae_gap_se": iw["gap_se"],
      "iwae_min_diff_z": iw["min_diff_z"], "iwae_asymptotic_gap": iw["asymptotic_gap"],
      "iwae_kl": iw["kl"],
      "vae_gap_start": r["vae"][0][1], "vae_gap_end": r["vae"][-1][1],
      "vae_kl_end": r["vae"][-1][2], "vae_steps": r["vae"][-1][0],
      "tweedie_error": d["tweedie_error"], "entropy": d["entropy"],
      "ddpm_sweep": {s: [{"T": e["T"], **{k: e["gap"][k] for k in VARIANCE_CHOICES}}
                         for e in v] for s, v in d["sweep"].items()},
      "ddpm_T1000": {k: {n: d["exact_T1000"][k][n] for n in ("prior", "decoder",
                                                             "total")}
                     for k in VARIANCE_CHOICES},
      "ddpm_mc": d["mc"]["summary"],
      "jaxgen_vb_terms_error": {k: v["max_abs_error"]
                                for k, v in d["jaxgen_terms"].items()},
      "posterior_ho_error": post["ho_mean_error"],
      "posterior_slide_error": post["slide_mean_error"],
      "posterior_variance_rel_error": post["variance_rel_error"],
      "jaxgen_q_posterior_error": post["jaxgen_mean_error"],
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--outdir", default="/tmp/variational_bound")
  parser.add_argument("--quick", action="store_true",
                      help="smaller samples and training (seconds; for tests)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  xla_options.configure_cpu()  # before JAX creates its CPU client
  start = time.perf_counter()
  r = core_checks(quick=args.quick, seed=args.seed)
  write_plots(r, args.outdir)
  rows = summary(r)
  print("== variational bounds: PPCA (d=6, k=3, sigma^2=0.25) and a 1-D 3-mode mixture "
        "under jaxgen's diffusion")
  print("  exact: closed forms in float64 (+ 1-D trapezoidal quadrature over x_t for "
        "the DDPM terms and H); Monte Carlo: 'MC' rows")
  for name, _, text in rows:
    print(f"  {name:>18}: {text}")
  print(f"plots in {args.outdir}; {time.perf_counter() - start:.0f} s")
  print(json.dumps(numbers(r)))
  return r


if __name__ == "__main__":
  main()
