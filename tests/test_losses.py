"""Shared losses against closed forms and independent computations."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from jaxgen import losses

jax.config.update("jax_enable_x64", False)


def test_gaussian_kl_matches_numerical_integration():
  mean, logvar = 0.7, -0.4
  q = stats.norm(mean, math.exp(0.5 * logvar))
  p = stats.norm(0, 1)
  kl_num, _ = integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - p.logpdf(z)), -12, 12)
  kl = losses.gaussian_kl(jnp.array([[mean]]), jnp.array([[logvar]]))
  np.testing.assert_allclose(kl, [kl_num], rtol=1e-5)
  # Sums over dimensions, and vanishes exactly at the prior.
  kl2 = losses.gaussian_kl(jnp.array([[mean, 0.0]]), jnp.array([[logvar, 0.0]]))
  np.testing.assert_allclose(kl2, [kl_num], rtol=1e-5)


def test_gaussian_log_prob_matches_scipy():
  x, m, lv = np.array([[0.3, -1.2]]), np.array([[0.0, 0.5]]), np.array([[0.2, -1.0]])
  ref = stats.norm(m, np.exp(0.5 * lv)).logpdf(x).sum()
  np.testing.assert_allclose(losses.gaussian_log_prob(x, m, lv), [ref], rtol=1e-6)


def test_bernoulli_log_prob_with_extreme_logits():
  logits = jnp.array([[-200.0, -3.0, 0.0, 3.0, 200.0]])
  x = jnp.array([[0.0, 1.0, 1.0, 0.0, 1.0]])
  got = losses.bernoulli_log_prob(x, logits)
  p = 1 / (1 + np.exp(-np.array([-3.0, 0.0, 3.0])))
  ref = np.log(p[0]) + np.log(p[1]) + np.log(1 - p[2])  # extremes contribute ~0
  np.testing.assert_allclose(got, [ref], rtol=1e-6)
  assert np.isfinite(losses.bernoulli_log_prob(1 - x, logits)).all()


@pytest.mark.parametrize("low,high", [(-1.0, 1.0), (0.0, 1.0)])
def test_discretized_logistic_sums_to_one_and_matches_cdf(low, high):
  levels = jnp.linspace(low, high, 256)
  mean, log_scale = 0.1 * (high - low) + low, math.log(0.05)
  logp = jax.vmap(lambda v: losses.discretized_logistic_log_prob(
      v.reshape(1, 1), jnp.full((1, 1), mean), jnp.full((1, 1), log_scale),
      low, high)[0])(levels)
  np.testing.assert_allclose(np.exp(logp).sum(), 1.0, rtol=1e-5)
  # An interior bin equals the logistic CDF difference over the bin.
  half = (high - low) / 510
  d = stats.logistic(mean, 0.05)
  k = 40
  ref = d.cdf(float(levels[k]) + half) - d.cdf(float(levels[k]) - half)
  np.testing.assert_allclose(np.exp(logp[k]), ref, rtol=1e-4)
  # Far tails stay finite.
  far = losses.discretized_logistic_log_prob(jnp.full((1, 1), high), jnp.full((1, 1), low),
                                            jnp.full((1, 1), -7.0), low, high)
  assert np.isfinite(far).all()


# A linear-Gaussian model where everything is known in closed form:
#   p(z) = N(0, 1),  p(x | z) = N(a z + b, s^2)  =>  p(x) = N(b, a^2 + s^2),
#   p(z | x) = N(a (x - b) / (a^2 + s^2), s^2 / (a^2 + s^2)).
A, B, S = 1.5, 0.3, 0.5


def _model_terms(rng, x, q_mean, q_logvar, n):
  z = q_mean + jnp.exp(0.5 * q_logvar) * jax.random.normal(rng, (n, 1))
  ll = losses.gaussian_log_prob(jnp.full((n, 1), x), A * z + B,
                                jnp.full((n, 1), 2 * math.log(S)))
  kl = losses.gaussian_kl(jnp.full((n, 1), q_mean), jnp.full((n, 1), q_logvar))
  log_w = (ll + losses.standard_normal_log_prob(z)
           - losses.gaussian_log_prob(z, q_mean, q_logvar))
  return ll, kl, log_w


def test_elbo_matches_the_closed_form_of_a_linear_gaussian_model():
  x = 1.1
  log_px = stats.norm(B, math.sqrt(A * A + S * S)).logpdf(x)
  post_mean, post_var = A * (x - B) / (A * A + S * S), S * S / (A * A + S * S)
  q_mean, q_var = post_mean + 0.4, post_var * 1.8  # a deliberately imperfect q
  ll, kl, _ = _model_terms(jax.random.key(0), x, q_mean, math.log(q_var), 400_000)
  elbo, loss = losses.elbo(ll, kl)
  kl_q_post = (0.5 * (q_var / post_var + (q_mean - post_mean) ** 2 / post_var - 1
                      - math.log(q_var / post_var)))
  np.testing.assert_allclose(float(elbo.mean()), log_px - kl_q_post, atol=5e-3)
  np.testing.assert_allclose(loss, -elbo, rtol=1e-6)
  # beta weights the KL term in the loss only.
  _, loss_half = losses.elbo(ll, kl, beta=0.5)
  np.testing.assert_allclose(loss_half, -(ll - 0.5 * kl), rtol=1e-6)


def test_iwae_bound_is_above_the_elbo_and_exact_at_the_posterior():
  x = 1.1
  log_px = stats.norm(B, math.sqrt(A * A + S * S)).logpdf(x)
  post_mean, post_var = A * (x - B) / (A * A + S * S), S * S / (A * A + S * S)
  # At the exact posterior every importance weight equals p(x).
  _, _, lw = _model_terms(jax.random.key(1), x, post_mean, math.log(post_var), 64)
  np.testing.assert_allclose(losses.iwae_bound(lw[None]), [log_px], atol=1e-5)
  # Away from it: ELBO <= IWAE_K, increasing in K, and below log p(x).
  q_mean, q_logvar = post_mean - 0.5, math.log(post_var * 0.5)
  ll, kl, lw = _model_terms(jax.random.key(2), x, q_mean, q_logvar, 2000 * 50)
  elbo = float(losses.elbo(ll, kl)[0].mean())
  bounds = [float(losses.iwae_bound(lw.reshape(-1, k)).mean()) for k in (1, 5, 50)]
  assert abs(bounds[0] - elbo) < 0.02  # K = 1 is the ELBO (sampled)
  assert elbo < bounds[1] < bounds[2] < log_px


def test_bits_per_dim():
  assert losses.bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
  # Dequantised data on [0, 1]: a uniform density (nll 0) is 8 bits per dim.
  assert losses.bits_per_dim(0.0, 10, math.log(1 / 256)) == pytest.approx(8.0)
