"""DDIM inversion (jaxgen/diffusion/inversion.py) against two references: the
closed-form probability-flow map of Gaussian data, which DDIM's ODE follows exactly in
the limit of many steps, and the DDIM update written out from the paper (Song et al.
2021, eq. 13: x / sqrt(a) moves by d sigma times eps, sigma = sqrt((1 - a) / a))."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import inversion, samplers
from jaxgen.diffusion.process import GaussianDiffusion

MU, S = 0.3, 0.5  # the data: x0 ~ N(MU, S^2) in each dimension


def gaussian_eps(process):
  """The exact denoiser of N(MU, S^2) data: E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a)
  MU) / (a S^2 + 1 - a)."""
  def fn(x, t):
    a = process.alphas_cumprod[t].reshape(-1, *(1,) * (x.ndim - 1))
    return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * MU) / (a * S ** 2 + 1 - a)
  return fn


def exact_latent(process, x0, t):
  """The probability-flow ODE's x_t of the image x0 for N(MU, S^2) data: the
  standardised value (x - mean) / std is the same at every noise level."""
  a = float(process.alphas_cumprod[t])
  return np.sqrt(a) * MU + np.sqrt(a * S ** 2 + 1 - a) * (np.asarray(x0) - MU) / S


@pytest.fixture(scope="module")
def images():
  return (MU + S * np.random.default_rng(0).normal(size=(4, 6))).astype(np.float32)


def test_inversion_approaches_the_exact_ode_map_as_steps_grow(images):
  process = GaussianDiffusion.create("cosine", 1000)
  want = exact_latent(process, images, 999)
  errors = []
  for n in (10, 100, 1000):
    x_t = inversion.ddim_invert(gaussian_eps(process), process, jnp.asarray(images),
                                num_steps=n)
    errors.append(float(np.abs(np.asarray(x_t) - want).max()))
  # first order: ten times the steps, a tenth of the error
  assert errors[0] > 5 * errors[1] > 25 * errors[2], errors
  assert errors[2] < 5e-3, errors
  # the map is not the identity: a trivial "inversion" would fail here
  assert np.abs(want - images).max() > 0.3


def test_inversion_then_eta0_ddim_reconstructs(images):
  process = GaussianDiffusion.create("cosine", 1000)
  model = gaussian_eps(process)
  errors = []
  for n in (100, 1000):
    x_t = inversion.ddim_invert(model, process, jnp.asarray(images), num_steps=n)
    back, _ = samplers.ddim(model, process, images.shape, jax.random.key(0),
                            num_steps=n, eta=0.0, clip_x0=False, x_init=x_t)
    errors.append(float(np.abs(np.asarray(back) - images).max()))
  assert errors[0] > 5 * errors[1] and errors[1] < 5e-3, errors
  # ... and a sampler with eta > 0 does not: it draws new noise on the way
  noisy, _ = samplers.ddim(model, process, images.shape, jax.random.key(0),
                           num_steps=1000, eta=1.0, clip_x0=False, x_init=x_t)
  assert np.abs(np.asarray(noisy) - images).max() > 0.05


def paper_inversion(model, alphas_cumprod, x0, timesteps):
  """Song et al.'s eq. 13 run from the image up the (descending) ``timesteps``, in
  float64: x(t_up) / sqrt(a_up) = x / sqrt(a) + (sigma_up - sigma) eps(x, t), eps
  asked at the lower level's timestep (0 at the image, where a = 1, sigma = 0)."""
  a_all = np.asarray(alphas_cumprod, np.float64)
  x = np.asarray(x0, np.float64)
  levels = [-1, *timesteps[::-1]]  # the image, then upwards
  for lo, hi in zip(levels[:-1], levels[1:]):
    a = 1.0 if lo < 0 else a_all[lo]
    a_up = a_all[hi]
    sigma, sigma_up = np.sqrt((1 - a) / a), np.sqrt((1 - a_up) / a_up)
    eps = model(x, max(lo, 0))
    x = np.sqrt(a_up) * (x / np.sqrt(a) + (sigma_up - sigma) * eps)
  return x


def test_inversion_matches_the_papers_update_for_any_model():
  process = GaussianDiffusion.create("linear", 200)
  w = np.random.default_rng(1).normal(size=(5, 5)) / 2

  def model_np(x, t):  # a nonlinear, time-dependent eps model
    return np.tanh(x @ w + 0.01 * t)

  def model_jax(x, t):
    return jnp.tanh(x @ jnp.asarray(w, jnp.float32) + 0.01 * t[:, None])

  x0 = np.random.default_rng(2).uniform(-1, 1, size=(3, 5)).astype(np.float32)
  for n in (1, 4, 13):
    ts = samplers.ddim_timesteps(200, n)
    want = paper_inversion(model_np, process.alphas_cumprod, x0, ts)
    got = inversion.ddim_invert(model_jax, process, jnp.asarray(x0), num_steps=n)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def test_x0_and_v_parameterisations_invert_as_eps():
  """The same denoiser written as x0 or v gives the same inversion."""
  process = GaussianDiffusion.create("cosine", 100)
  eps_fn = gaussian_eps(process)

  def as_param(kind):
    def fn(x, t):
      a = process.alphas_cumprod[t][:, None]
      eps = eps_fn(x, t)
      x0 = (x - jnp.sqrt(1 - a) * eps) / jnp.sqrt(a)
      return x0 if kind == "x0" else jnp.sqrt(a) * eps - jnp.sqrt(1 - a) * x0
    return fn

  x0 = jnp.asarray(np.random.default_rng(3).normal(size=(2, 4)), jnp.float32)
  ref = inversion.ddim_invert(eps_fn, process, x0, num_steps=20)
  for kind in ("x0", "v"):
    got = inversion.ddim_invert(as_param(kind), process, x0, num_steps=20,
                                parameterization=kind)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_a_custom_schedule_is_run_backwards():
  """With diffusers' leading spacing and a final alpha-bar below 1, decoding from the
  inversion with the same arguments returns the image (Gaussian data, many steps)."""
  process = GaussianDiffusion.create("cosine", 1000)
  model = gaussian_eps(process)
  ts, prev = samplers.ddim_schedule(1000, 500, "leading", 1)
  final = float(process.alphas_cumprod[0])
  x0 = jnp.asarray((MU + S * np.random.default_rng(4).normal(size=(2, 3))), jnp.float32)
  x_t = inversion.ddim_invert(model, process, x0, timesteps=ts, prev_timesteps=prev,
                              final_alpha_cumprod=final)
  np.testing.assert_allclose(x_t, exact_latent(process, x0, int(ts[0])), atol=1e-2)
  back, _ = samplers.ddim(model, process, x0.shape, jax.random.key(0), eta=0.0,
                          clip_x0=False, x_init=x_t, timesteps=ts, prev_timesteps=prev,
                          final_alpha_cumprod=final)
  np.testing.assert_allclose(back, x0, atol=1e-2)
  with pytest.raises(ValueError, match="previous timesteps"):
    inversion.ddim_invert(model, process, x0, timesteps=ts, prev_timesteps=prev[:-1])
