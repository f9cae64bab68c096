"""experiments/variational_bound.py: log p(x) = ELBO + KL, the IWAE bound rising with
k, a trained encoder closing the gap, and the DDPM bound and posterior against Bayes'
rule."""
import json
import math

import jax
import numpy as np
import pytest

from conftest import load_module



@pytest.fixture(scope="module")
def vb():
  return load_module("experiments/variational_bound.py")


@pytest.fixture(scope="module")
def quick_run(vb, tmp_path_factory):
  outdir = tmp_path_factory.mktemp("variational_bound")
  x64_before = jax.config.jax_enable_x64
  results = vb.main(["--quick", f"--outdir={outdir}"])
  assert jax.config.jax_enable_x64 == x64_before  # float64 stayed local
  return outdir, results


def test_log_evidence_is_elbo_plus_posterior_kl(quick_run):
  r = quick_run[1]["identity"]
  assert r["identity_error"] < 1e-9
  assert r["max_kl"] > 1.0  # the q are far from the posterior: the identity is not 0 = 0
  assert r["mc_max_abs_z"] < 5  # Monte-Carlo ELBO: only sampling error
  # At the true posterior the bound is tight and every importance weight is p(x).
  assert r["posterior_elbo_error"] < 1e-10 and r["posterior_kl"] < 1e-10
  assert r["posterior_log_w_std"] < 1e-10


def test_the_identity_fails_for_a_wrong_posterior(vb):
  # Can fail: the KL to a perturbed "posterior" (the covariance without sigma^2) leaves
  # the identity far off, and any q other than p(z|x) has ELBO < log p(x).
  model = vb.LinearGaussian.make()
  x = model.sample(5, np.random.default_rng(1))
  mean, cov = model.posterior(x)
  cov = np.broadcast_to(cov, (5,) + cov.shape)
  log_px = model.log_marginal(x)
  wrong = vb.gaussian_kl_full(mean, cov, mean, cov / model.sigma2)
  q_mean, q_cov = mean + 0.1, cov * 1.2
  elbo = vb.elbo_closed_form(model, x, q_mean, q_cov)
  kl = vb.gaussian_kl_full(q_mean, q_cov, mean, cov)
  np.testing.assert_allclose(log_px, elbo + kl, atol=1e-10)
  assert np.min(np.abs(log_px - vb.elbo_closed_form(model, x, mean, cov) - wrong)) > 0.1
  assert np.all(elbo < log_px - 1e-3)


def test_jaxgen_elbo_pieces_in_float64(quick_run):
  r = quick_run[1]["jaxgen_elbo"]
  assert r["dtype"] == "float64"
  assert r["kl_error"] < 1e-12 and r["log_prob_error"] < 1e-10
  assert r["loss_is_minus_elbo"] == 0
  assert r["mc_max_abs_z"] < 5


def test_iwae_rises_with_k_towards_log_evidence(quick_run):
  r = quick_run[1]["iwae"]
  gap, se = np.array(r["gap"]), np.array(r["gap_se"])
  assert r["ks"] == [1, 2, 5, 10, 50, 100, 1000]
  # Monotone up to Monte-Carlo error (paired differences), and a lower bound.
  assert r["min_diff_z"] > -3
  assert np.all(gap > -3 * se)
  # k = 1 is the ELBO, whose gap is KL(q || p(z|x)); at k = 1000 the gap is small and
  # of the size of Burda et al.'s asymptote.
  assert abs(gap[0] - r["kl"]) < 4 * se[0] and r["kl"] > 1.0
  assert gap[-1] < 0.02 and gap[-1] < gap[0] / 100
  asymptote = r["asymptotic_gap"][-1]
  assert abs(gap[-1] - asymptote) < 4 * se[-1] + 0.5 * asymptote


def test_trained_encoder_approaches_the_posterior(quick_run):
  trace = quick_run[1]["vae"]
  (_, gap0, kl0, _), (_, gap1, kl1, _) = trace[0], trace[-1]
  assert abs(gap0 - kl0) < 1e-8 and abs(gap1 - kl1) < 1e-8  # gap = KL(q || p(z|x))
  assert gap0 > 5 and gap1 < 0.1 and gap1 < gap0 / 100


def test_ddpm_bound_is_above_the_true_nll(quick_run):
  d = quick_run[1]["ddpm"]
  assert d["tweedie_error"] < 1e-10 and d["density_mass_error"] < 1e-10
  for sched, sweep in d["sweep"].items():
    for e in sweep:
      for kind in ("fixedlarge", "fixedsmall", "beta"):
        assert e["gap"][kind] > 0, (sched, e["T"], kind)
        # The optimal variance minimises every term.
        assert e["optimal"] <= e[kind] + 1e-12, (sched, e["T"], kind)
      assert e["gap"]["optimal"] > 0
    # With sigma_t^2 = beta_t (and the optimal variance) the bound closes as T grows...
    for kind in ("beta", "optimal"):
      gaps = [e["gap"][kind] for e in sweep]
      assert all(a > b for a, b in zip(gaps, gaps[1:])), (sched, kind, gaps)
      assert gaps[-1] < 0.03
    # ...jaxgen's (Ho et al.'s code) fixedlarge keeps sigma_1^2 = beta-tilde_2, about
    # beta_1 / 2, in L_0, and with it a T-independent excess.
    assert sweep[-1]["gap"]["fixedlarge"] > 0.1


def test_ddpm_monte_carlo_through_jaxgen_matches_the_exact_bound(quick_run):
  d = quick_run[1]["ddpm"]
  mc = d["mc"]["summary"]
  assert abs(mc["total_z"]) < 4
  assert mc["terms_max_abs_z"] < 6  # the largest of 999 per-term z-scores
  for v in d["jaxgen_terms"].values():
    assert v["max_abs_error"] < 1e-4  # float32


def test_posterior_mean_of_ho_et_al_matches_bayes_and_the_slide_does_not(quick_run):
  p = quick_run[1]["posterior"]
  assert p["ho_mean_error"] < 1e-9 and p["variance_rel_error"] < 1e-9
  assert p["slide_mean_error"] > 0.5
  assert p["slide_mean_error_min_over_t_ge_50"] > 1e-2
  assert all(slide > 1e4 * max(ho, 1e-15) for _, ho, slide in p["per_t"])
  assert p["jaxgen_mean_error"] < 1e-5 and p["jaxgen_variance_rel_error"] < 1e-5


def test_bayes_grid_recovers_a_known_gaussian_product(vb):
  # The grid posterior on its own: N(x_t; a y, b) N(y; m, s^2) has a known mean.
  beta, ab_prev, x0, xt = 0.02, 0.5, 0.4, -0.3
  mean, var, _, _ = vb.bayes_posterior(x0, xt, beta, ab_prev)
  prec = (1 - beta) / beta + 1 / (1 - ab_prev)
  ref = (math.sqrt(1 - beta) * xt / beta + math.sqrt(ab_prev) * x0 / (1 - ab_prev)) / prec
  assert abs(mean - ref) < 1e-12 and abs(var - 1 / prec) < 1e-12


def test_main_writes_plots_and_json(vb, quick_run):
  outdir, results = quick_run
  for name in ("elbo_gap_equals_kl", "iwae_vs_k", "vae_encoder_gap", "ddpm_terms",
               "ddpm_bound_vs_T", "posterior_mean_error", "posterior_example",
               "diffused_marginals"):
    assert (outdir / f"{name}.png").stat().st_size > 1000, name
  numbers = json.loads(json.dumps(vb.numbers(results)))
  assert numbers["posterior_slide_error"] > 0.5
