"""experiments/gan_optimum.py: V(G, D*) = -log 4 + 2 JSD, a trained discriminator moving
to D*, and the vanishing saturating gradient."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_module



@pytest.fixture(scope="module")
def go():
  return load_module("experiments/gan_optimum.py")


def _v_star(go, p_data, p_g):
  nodes, weights = go.quadrature_1d()
  lp, lq = p_data.log_density(nodes), p_g.log_density(nodes)
  return go.value_by_quadrature(go.optimal_logit(lp, lq), lp, lq, weights)


def test_value_at_the_optimal_discriminator_is_minus_log_4_plus_2_jsd(go):
  p_data, p_g = go.pair_1d()
  jsd = go.jsd_1d(p_data, p_g)
  assert 0.05 < jsd < math.log(2) - 0.05
  assert abs(_v_star(go, p_data, p_g) - (-math.log(4) + 2 * jsd)) < 1e-6
  # The extremes: p_g = p_data (JSD 0, V = -log 4), disjoint supports (JSD log 2, V 0).
  assert abs(_v_star(go, p_data, p_data) + math.log(4)) < 1e-9
  assert abs(go.jsd_1d(p_data, p_data)) < 1e-9
  far = go.GaussianMixture.make([-8.0], [0.3])
  assert abs(go.jsd_1d(p_data, far) - math.log(2)) < 1e-6
  assert abs(_v_star(go, p_data, far)) < 1e-6


def test_the_optimal_discriminator_maximises_the_value(go):
  p_data, p_g = go.pair_1d()
  nodes, weights = go.quadrature_1d()
  lp, lq = p_data.log_density(nodes), p_g.log_density(nodes)
  star = go.optimal_logit(lp, lq)
  v_star = go.value_by_quadrature(star, lp, lq, weights)
  assert go.discriminator_error(star, lp, lq, weights) == 0
  for other in (star + 0.3, star - 0.3, 0.5 * star, np.sin(nodes[:, 0]) + star):
    assert go.value_by_quadrature(other, lp, lq, weights) < v_star - 1e-4
  np.testing.assert_allclose(go.value_by_quadrature(0 * star, lp, lq, weights),
                             -math.log(4), atol=1e-9)


def test_2d_value_by_grid_quadrature_matches_monte_carlo_jsd(go):
  p_data, p_g = go.pair_2d("eight_gaussians")
  nodes, weights = go.quadrature_2d()
  lp, lq = p_data.log_density(nodes), p_g.log_density(nodes)
  # The grid holds both densities' mass.
  np.testing.assert_allclose([np.sum(weights * np.exp(lp)), np.sum(weights * np.exp(lq))],
                             1.0, atol=1e-6)
  v_star = go.value_by_quadrature(go.optimal_logit(lp, lq), lp, lq, weights)
  jsd, se = go.jsd_monte_carlo(p_data, p_g, 50_000, np.random.default_rng(0))
  assert se < 3e-3
  assert abs(v_star - (-math.log(4) + 2 * jsd)) < 4 * 2 * se


def test_generator_gradients_match_their_closed_forms(go):
  # Through l(x) = -4 - 3 x: per-sample |dL/dx| = 3 D (saturating), 3 (1 - D) (NS).
  gen = {"mu": jnp.float32(1.0), "log_sigma": jnp.float32(math.log(0.5))}
  z = jnp.linspace(-2.0, 2.0, 9)[:, None]
  g = go.generator_gradients(lambda x: -4.0 - 3.0 * x[:, 0], gen, z)
  x = 1.0 + 0.5 * np.linspace(-2.0, 2.0, 9)
  d = 1 / (1 + np.exp(4.0 + 3.0 * x))
  np.testing.assert_allclose(g["d_fake"], d, rtol=1e-5)
  np.testing.assert_allclose(g["minimax"]["per_sample"], 3 * d, rtol=1e-4)
  np.testing.assert_allclose(g["nonsaturating"]["per_sample"], 3 * (1 - d), rtol=1e-5)
  # d/dmu of the batch mean: mean of the per-sample gradients (all of one sign).
  for kind, w in (("minimax", d), ("nonsaturating", 1 - d)):
    d_mu, d_logs = np.mean(3 * w), np.mean(3 * w * 0.5 * np.linspace(-2, 2, 9))
    np.testing.assert_allclose(g[kind]["grad_params"], math.hypot(d_mu, d_logs),
                               rtol=1e-4)


@pytest.fixture(scope="module")
def quick_run(go, tmp_path_factory):
  outdir = tmp_path_factory.mktemp("gan_optimum")
  return outdir, go.main(["--quick", f"--outdir={outdir}"])


def test_main_quick_writes_the_plots(quick_run):
  outdir, results = quick_run
  for name in ("d_star_1d", "d_star_2d", "value_vs_step", "generator_gradients",
               "gan_1d_jsd"):
    assert (outdir / f"{name}.png").stat().st_size > 1000, name
  assert abs(results["1d"]["v_star"] + math.log(4) - 2 * results["1d"]["jsd"]) < 1e-6


def test_a_trained_discriminator_moves_to_the_optimum(quick_run):
  # After 300 steps V(G, D) has risen towards V(G, D*), from below, and E_m|D - D*|
  # has fallen (the 1-D pair is the easier one).
  for dim, shrink, gap in (("1d", 0.2, 0.05), ("2d", 0.6, 0.7)):
    r = quick_run[1][dim]
    (_, v0, e0), (_, v1, e1) = r["trace"][0], r["trace"][-1]
    assert v0 < v1 <= r["v_star"] + 1e-9 and r["v_star"] - v1 < gap, (dim, v0, v1)
    assert e1 < shrink * e0, (dim, e0, e1)


def test_nonsaturating_gradient_dominates_against_a_rejected_generator(quick_run):
  g = quick_run[1]["gradients"]
  assert g["d_fake"].mean() < 1e-2
  sat, ns = g["minimax"], g["nonsaturating"]
  assert ns["grad_x"] > 100 * sat["grad_x"]
  assert ns["grad_params"] > 100 * sat["grad_params"]


def test_nonsaturating_generator_leaves_the_rejected_start_first(quick_run):
  # From N(6, 0.5^2), almost disjoint from p_data: within 100 steps the NS generator
  # reaches the data (it may then oscillate), the saturating one barely moves.
  gan = quick_run[1]["gan"]
  sat = [t[3] for t in gan["minimax"]]
  ns = [t[3] for t in gan["nonsaturating"]]
  assert sat[0] > math.log(2) - 1e-3
  assert min(ns) < 0.5 and min(sat) > 0.68
