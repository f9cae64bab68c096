"""The diffusion process, its bound and its samplers, against closed forms."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import losses
from jaxgen.diffusion import samplers, schedules
from jaxgen.diffusion.process import GaussianDiffusion


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_closed_form_of_q_xt_given_x0_equals_composed_steps(schedule):
  betas = schedules.get(schedule, 1000)
  proc = GaussianDiffusion.from_betas(betas)
  coef, var = 1.0, 0.0  # x_t = coef x_0 + noise of variance var, one step at a time
  coefs, variances = [], []
  for b in betas:
    coef, var = coef * math.sqrt(1 - b), (1 - b) * var + b
    coefs.append(coef)
    variances.append(var)
  x0 = jnp.ones((1000, 1))
  t = jnp.arange(1000)
  mean, variance, logvar = proc.q_mean_variance(x0, t)
  np.testing.assert_allclose(mean[:, 0], coefs, rtol=2e-4, atol=1e-6)
  np.testing.assert_allclose(variance[:, 0], variances, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.exp(logvar[:, 0]), variances, rtol=1e-4, atol=1e-6)


def test_linear_schedule_is_hos_and_the_prior_term_vanishes():
  betas = schedules.linear(1000)
  assert betas[0] == 1e-4 and betas[-1] == 0.02
  proc = GaussianDiffusion.create("linear", 1000)
  x0 = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 4, 4, 3)), jnp.float32)
  assert float(proc.prior_bpd(x0).max()) < 1e-4
  assert float(GaussianDiffusion.create("cosine", 1000).prior_bpd(x0).max()) < 1e-4


def test_scaled_linear_is_latent_diffusions_schedule():
  betas = schedules.scaled_linear(1000)
  assert betas[0] == pytest.approx(0.00085) and betas[-1] == pytest.approx(0.012)
  assert np.allclose(np.diff(np.sqrt(betas)), np.diff(np.sqrt(betas))[0])
  # Lin et al. 2024 ("Common diffusion noise schedules and sample steps are flawed",
  # section 3.1): Stable Diffusion's schedule ends at sqrt(alpha-bar_T) = 0.0683.
  assert np.sqrt(np.prod(1 - betas)) == pytest.approx(0.0683, abs=5e-5)


@pytest.mark.parametrize("t", [1, 10, 500, 999])
def test_posterior_against_the_formula_and_bayes_rule(t):
  proc = GaussianDiffusion.create("linear", 1000)
  b = schedules.linear(1000)
  ab = np.cumprod(1 - b)
  x0, xt = 0.4, 0.3
  mean, var, _ = proc.q_posterior(jnp.array([[x0]]), jnp.array([[xt]]), jnp.array([t]))
  # Ho et al. eq. 7.
  mu7 = (math.sqrt(ab[t - 1]) * b[t] / (1 - ab[t]) * x0
         + math.sqrt(1 - b[t]) * (1 - ab[t - 1]) / (1 - ab[t]) * xt)
  var7 = (1 - ab[t - 1]) / (1 - ab[t]) * b[t]
  np.testing.assert_allclose(float(mean[0, 0]), mu7, rtol=1e-5)
  np.testing.assert_allclose(float(var[0, 0]), var7, rtol=1e-5)
  # Bayes' rule on a grid: q(x_{t-1}|x_t,x_0) ~ q(x_t|x_{t-1}) q(x_{t-1}|x_0).
  sd = math.sqrt(var7)
  grid = np.linspace(mu7 - 12 * sd, mu7 + 12 * sd, 200_001)
  logw = (-(xt - math.sqrt(1 - b[t]) * grid) ** 2 / (2 * b[t])
          - (grid - math.sqrt(ab[t - 1]) * x0) ** 2 / (2 * (1 - ab[t - 1])))
  w = np.exp(logw - logw.max())
  w /= w.sum()
  m_num = (w * grid).sum()
  np.testing.assert_allclose(float(mean[0, 0]), m_num, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(float(var[0, 0]), (w * (grid - m_num) ** 2).sum(),
                             rtol=1e-3)


@pytest.mark.parametrize("param", ["eps", "x0", "v"])
def test_parameterisations_invert(param):
  proc = GaussianDiffusion.create("cosine", 100)
  rng = np.random.default_rng(0)
  x0 = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  eps = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  t = jnp.array([0, 5, 20, 50, 90, 99])
  xt = proc.q_sample(x0, t, eps)
  x0_hat, eps_hat = proc.predict_x0_and_eps(proc.target(x0, eps, t, param), xt, t, param)
  np.testing.assert_allclose(x0_hat, x0, atol=2e-3)
  np.testing.assert_allclose(eps_hat, eps, atol=2e-3)


def test_mse_per_example_is_a_per_example_mean():
  a = jnp.zeros((2, 3, 4))
  b = jnp.ones((2, 3, 4)).at[1].set(3.0)
  np.testing.assert_allclose(losses.mse_per_example(a, b), [1.0, 9.0])


def test_discretized_gaussian_sums_to_one_over_the_levels():
  levels = jnp.linspace(-1, 1, 256).reshape(256, 1)
  logp = losses.discretized_gaussian_log_prob(levels, jnp.full((256, 1), 0.2),
                                              jnp.full((256, 1), math.log(0.1)))
  np.testing.assert_allclose(float(jnp.exp(logp).sum()), 1.0, rtol=1e-5)


# Gaussian data x0 ~ N(M, S^2) in every dimension: the optimal epsilon-predictor is
# E[eps | x_t] = sigma_t / (a_t^2 S^2 + sigma_t^2) (x_t - a_t M), a_t = sqrt(ab_t).
M, S = 0.3, 0.5


def _exact_eps(proc):
  def fn(x, t):
    ab = proc.alphas_cumprod[t].reshape(-1, *([1] * (x.ndim - 1)))
    a, sig = jnp.sqrt(ab), jnp.sqrt(1 - ab)
    return sig / (a * a * S * S + sig * sig) * (x - a * M)
  return fn


@pytest.mark.parametrize("variance", ["fixedlarge", "fixedsmall"])
def test_the_bound_matches_its_analytic_value_for_gaussian_data(variance):
  T = 100
  proc = GaussianDiffusion.create("linear", T)
  b = schedules.linear(T)
  ab = np.cumprod(1 - b)
  ab_prev = np.append(1.0, ab[:-1])
  post_var = b * (1 - ab_prev) / (1 - ab)
  model_var = np.append(post_var[1], b[1:]) if variance == "fixedlarge" else post_var
  # E KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t >= 1: the means differ by
  # c1 (x0 - x0_hat), and x0 - x0_hat = sig k S u - (1 - sig k) sig eps / a.
  analytic = 0.0
  for t in range(1, T):
    a, sig = math.sqrt(ab[t]), math.sqrt(1 - ab[t])
    k = sig / (a * a * S * S + sig * sig)
    c1 = b[t] * math.sqrt(ab_prev[t]) / (1 - ab[t])
    e2 = (sig * k * S) ** 2 + ((1 - sig * k) * sig / a) ** 2
    analytic += 0.5 * (math.log(model_var[t] / post_var[t]) + post_var[t] / model_var[t]
                       - 1 + c1 * c1 * e2 / model_var[t])
  aT, sT2 = ab[-1], 1 - ab[-1]
  prior = 0.5 * (sT2 + aT * (M * M + S * S) - 1 - math.log(sT2))
  x0 = M + S * jax.random.normal(jax.random.key(0), (4096, 4))
  out = jax.jit(lambda x, k: proc.bpd(_exact_eps(proc), x, k, variance=variance))(
      x0, jax.random.key(1))
  kl_terms = float(out["terms"][1:].sum(0).mean())
  np.testing.assert_allclose(kl_terms, analytic / math.log(2), rtol=0.03)
  np.testing.assert_allclose(float(out["prior"].mean()), prior / math.log(2), rtol=0.02)


def test_decoder_term_is_the_discretised_gaussian_of_the_model_mean():
  proc = GaussianDiffusion.create("linear", 100)
  x0 = jnp.asarray(np.linspace(-1, 1, 256)[::17].reshape(-1, 1), jnp.float32)
  t = jnp.zeros((x0.shape[0],), jnp.int32)
  xt = proc.q_sample(x0, t, jnp.zeros_like(x0))
  out = proc.vb_terms_bpd(jnp.zeros_like(x0), x0, xt, t)  # eps-prediction of 0
  mean, logvar, _ = proc.p_mean_variance(jnp.zeros_like(x0), xt, t, clip_x0=False)
  from scipy.stats import norm
  sd = float(np.exp(0.5 * logvar[0, 0]))
  lo = np.where(np.asarray(x0) < -0.99, -np.inf, np.asarray(x0) - 1 / 255)
  hi = np.where(np.asarray(x0) > 0.99, np.inf, np.asarray(x0) + 1 / 255)
  p = norm.cdf(hi, np.asarray(mean), sd) - norm.cdf(lo, np.asarray(mean), sd)
  np.testing.assert_allclose(out, -np.log(np.maximum(p[:, 0], 1e-12)) / math.log(2),
                             rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("sampler,kw", [
    ("ancestral", {}), ("ancestral", {"variance": "fixedsmall"}),
    ("ddim", {"num_steps": 1000}), ("ddim", {"num_steps": 1000, "eta": 1.0})])
def test_samplers_reproduce_gaussian_data(sampler, kw):
  """With the exact score, the samples have the data's mean and variance. (DDIM with
  fewer steps under-disperses: std 0.476 at 50 steps, 0.365 at 10, for S = 0.5.)"""
  proc = GaussianDiffusion.create("linear", 1000)
  x, frames = jax.jit(lambda k: samplers.get(sampler)(
      _exact_eps(proc), proc, (8192, 2), k, clip_x0=False, num_frames=5, **kw))(
          jax.random.key(0))
  x = np.asarray(x)
  assert abs(x.mean() - M) < 0.02 and abs(x.std() - S) / S < 0.03
  assert frames.shape == (5, 8192, 2)
  np.testing.assert_allclose(np.asarray(frames[-1]), x)
  assert abs(float(frames[0].std()) - 1) < 0.03  # the first frame is x_T ~ N(0, I)


def test_ddim_with_eta_zero_is_deterministic_given_x_T():
  proc = GaussianDiffusion.create("linear", 1000)
  x_T = jax.random.normal(jax.random.key(5), (16, 3))
  run = lambda key, eta: samplers.ddim(_exact_eps(proc), proc, (16, 3), key,
                                       num_steps=20, eta=eta, x_init=x_T)[0]
  np.testing.assert_array_equal(run(jax.random.key(1), 0.0), run(jax.random.key(2), 0.0))
  assert not np.allclose(run(jax.random.key(1), 1.0), run(jax.random.key(2), 1.0))


@pytest.mark.parametrize("sampler,steps,expected", [("ancestral", None, 64),
                                                    ("ddim", 7, 7), ("ddim", 64, 64),
                                                    ("dpmpp_2m", 7, 7)])
def test_number_of_network_evaluations(sampler, steps, expected):
  proc = GaussianDiffusion.create("linear", 64)
  calls = []

  def model_fn(x, t):
    jax.debug.callback(lambda: calls.append(1))
    return jnp.zeros_like(x)

  kw = {} if steps is None else {"num_steps": steps}
  x, _ = jax.jit(lambda k: samplers.get(sampler)(model_fn, proc, (2, 2), k, **kw))(
      jax.random.key(0))
  jax.block_until_ready(x)
  assert len(calls) == expected


def test_classifier_free_guidance_combines_the_two_predictions():
  calls = []

  def f(x, t, c):
    calls.append(len(x))
    return x * 0 + c["y"][:, None].astype(jnp.float32)

  cond, null = {"y": jnp.array([2, 2])}, {"y": jnp.array([10, 10])}
  x, t = jnp.zeros((2, 1)), jnp.zeros(2, jnp.int32)
  np.testing.assert_allclose(samplers.guided(f, cond, null, 4.0)(x, t), 10 + 4 * (2 - 10))
  # Ho & Salimans' (1 + w) c - w u with w = scale - 1.
  np.testing.assert_allclose(samplers.guided(f, cond, null, 4.0)(x, t), 4 * 2 - 3 * 10)
  # One scale per example; scale 1 is the conditional prediction, in one call.
  np.testing.assert_allclose(
      samplers.guided(f, cond, null, jnp.array([1.0, 0.0]))(x, t)[:, 0], [2, 10])
  calls.clear()
  np.testing.assert_allclose(samplers.guided(f, cond, null, 1)(x, t), 2)
  assert calls == [2]


def _dpm_solver_pp_2m_paper(x0_model, alphas_cumprod, timesteps, x, final_sigma_zero):
  """Algorithm 2 of Lu et al. 2022 (DPM-Solver++(2M), arXiv:2211.01095), in float64
  numpy, written from the paper: alpha_t = sqrt(ab_t), sigma_t = sqrt(1 - ab_t),
  lambda_t = log(alpha_t / sigma_t), h_i = lambda_{t_i} - lambda_{t_{i-1}}; the first
  step x_{t_1} = (sigma_1 / sigma_0) x - alpha_1 (e^{-h_1} - 1) x0(t_0); then with
  r_i = h_{i-1} / h_i, D_i = (1 + 1 / (2 r_i)) x0(t_{i-1}) - 1 / (2 r_i) x0(t_{i-2}) and
  x_{t_i} = (sigma_i / sigma_{i-1}) x - alpha_i (e^{-h_i} - 1) D_i. The steps go from
  each given timestep to the next and, after the last, to t = 0; or, with
  ``final_sigma_zero``, the last step is to the clean sample: its x0 prediction."""
  ab = np.asarray(alphas_cumprod, np.float64)
  targets = list(timesteps[1:]) + ([] if final_sigma_zero else [0])
  alpha, sigma = lambda t: math.sqrt(ab[t]), lambda t: math.sqrt(1 - ab[t])
  lam = lambda t: math.log(alpha(t) / sigma(t))
  x = np.asarray(x, np.float64)
  previous = None
  for i, (s, t) in enumerate(zip(timesteps, targets)):
    d = x0_model(x, s)
    h = lam(t) - lam(s)
    if i > 0:
      r = (lam(s) - lam(timesteps[i - 1])) / h
      d, previous = (1 + 1 / (2 * r)) * d - 1 / (2 * r) * previous, d
    else:
      previous = d
    x = sigma(t) / sigma(s) * x - alpha(t) * (math.exp(-h) - 1) * d
  return x0_model(x, timesteps[-1]) if final_sigma_zero else x


@pytest.mark.parametrize("final_sigma", ["sigma_min", "zero"])
def test_dpm_solver_pp_2m_is_the_papers_algorithm(final_sigma):
  """samplers.dpmpp_2m on an eps model against Algorithm 2 written from the paper (20
  steps, second order after the first; "zero": the last step returns its x0)."""
  proc = GaussianDiffusion.from_betas(schedules.scaled_linear(1000))
  ab = np.asarray(proc.alphas_cumprod, np.float64)
  rng = np.random.default_rng(0)
  c, x_T = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
  eps = lambda x, t, cos: 0.3 * x + 0.2 * c * cos(t / 100)
  x0_model = lambda x, t: (x - math.sqrt(1 - ab[t]) * eps(x, t, math.cos)) / math.sqrt(ab[t])
  ts = samplers.dpm_solver_timesteps(1000, 20)
  expected = _dpm_solver_pp_2m_paper(x0_model, ab, [int(t) for t in ts], x_T,
                                     final_sigma == "zero")
  model_fn = lambda x, t: eps(x, t[0].astype(jnp.float32), jnp.cos).astype(jnp.float32)
  got, _ = samplers.dpmpp_2m(model_fn, proc, x_T.shape, None, num_steps=20,
                             clip_x0=False, x_init=jnp.asarray(x_T, jnp.float32),
                             final_sigma=final_sigma)
  np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())
  # The first step is DDIM's (first order), as the paper says.
  one, _ = samplers.dpmpp_2m(model_fn, proc, x_T.shape, None, timesteps=ts[:2],
                             clip_x0=False, x_init=jnp.asarray(x_T, jnp.float32),
                             final_sigma="sigma_min", lower_order_final=False)
  two, _ = samplers.ddim(model_fn, proc, x_T.shape, jax.random.key(0), clip_x0=False,
                         x_init=jnp.asarray(x_T, jnp.float32), timesteps=ts[:1],
                         prev_timesteps=ts[1:2])
  assert not np.allclose(one, two)  # two steps against one
  first, _ = samplers.dpmpp_2m(model_fn, proc, x_T.shape, None, timesteps=ts[:1],
                               clip_x0=False, x_init=jnp.asarray(x_T, jnp.float32),
                               final_sigma="sigma_min")
  ddim0, _ = samplers.ddim(model_fn, proc, x_T.shape, jax.random.key(0), clip_x0=False,
                           x_init=jnp.asarray(x_T, jnp.float32), timesteps=ts[:1],
                           final_alpha_cumprod=proc.alphas_cumprod[0])
  np.testing.assert_allclose(first, ddim0, rtol=1e-5, atol=1e-6)


def test_diffusers_timestep_spacings():
  """ddim_schedule and dpm_solver_timesteps for Stable Diffusion's settings (T = 1000,
  steps_offset 1); tests/test_stable_diffusion.py checks them against diffusers."""
  ts, prev = samplers.ddim_schedule(1000, 50, "leading", steps_offset=1)
  assert ts[0] == 981 and ts[-1] == 1 and (prev == ts - 20).all()
  assert samplers.dpm_solver_timesteps(1000, 4).tolist() == [999, 749, 500, 250]
  assert samplers.ddim_schedule(1000, 4, "trailing")[0].tolist() == [999, 749, 499, 249]
  with pytest.raises(ValueError, match="leave 0..999"):
    samplers.ddim_schedule(1000, 1000, "leading", steps_offset=1)
