"""The numerical core of the metrics against closed forms and independent computations."""
import math

import jax
import numpy as np
import pytest

from jaxgen.metrics import fid, inception_score, kid, ssim


def _random_covariance(rng, d, n=500):
  """A full-rank, non-diagonal covariance: that of n correlated Gaussian samples."""
  x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
  return np.cov(x, rowvar=False)


# ----------------------------------------------------------------------------------
# FID.

def test_fid_of_identical_statistics_is_zero():
  rng = np.random.default_rng(0)
  mu, sigma = rng.standard_normal(16), _random_covariance(rng, 16)
  assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-6
  assert abs(float(fid.frechet_distance_eigh(mu, sigma, mu, sigma))) < 1e-3 * np.trace(sigma)


def test_fid_with_equal_covariances_is_the_squared_mean_distance():
  rng = np.random.default_rng(1)
  mu1, mu2, sigma = rng.standard_normal(8), rng.standard_normal(8), _random_covariance(rng, 8)
  np.testing.assert_allclose(fid.frechet_distance(mu1, sigma, mu2, sigma),
                             np.sum((mu1 - mu2) ** 2), rtol=1e-9, atol=1e-9)


def test_fid_of_commuting_diagonal_gaussians_matches_closed_form():
  mu1, mu2 = np.array([0.0, 0.0]), np.array([1.0, 2.0])
  a, b = np.array([4.0, 1.0]), np.array([1.0, 9.0])
  expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # 5 + 1 + 4
  assert expected == 10.0
  np.testing.assert_allclose(fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), expected,
                             rtol=1e-12)
  np.testing.assert_allclose(fid.frechet_distance_eigh(mu1, np.diag(a), mu2, np.diag(b)),
                             expected, rtol=1e-5)


def test_fid_of_non_commuting_gaussians_matches_independent_computations():
  mu1, mu2 = np.array([0.5, -1.0]), np.array([0.0, 0.3])
  s1 = np.array([[2.0, 0.5], [0.5, 1.0]])
  s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
  assert not np.allclose(s1 @ s2, s2 @ s1)
  # For a 2x2 matrix with eigenvalues l1, l2 > 0, Tr sqrt(M) = sqrt(l1) + sqrt(l2)
  # = sqrt(Tr M + 2 sqrt(det M)).
  m = s1 @ s2
  tr_sqrt = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
  expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
  np.testing.assert_allclose(fid.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-12)
  # In 6-d: S1 S2 is similar to a symmetric PSD matrix, so its (general, non-symmetric)
  # eigenvalues are real and non-negative, and Tr sqrt(S1 S2) is the sum of their roots.
  rng = np.random.default_rng(2)
  s1, s2 = _random_covariance(rng, 6), _random_covariance(rng, 6)
  mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
  eigvals = np.linalg.eigvals(s1 @ s2)
  assert np.abs(eigvals.imag).max() < 1e-9 and eigvals.real.min() > 0
  expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
              - 2 * np.sum(np.sqrt(eigvals.real)))
  np.testing.assert_allclose(fid.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-10)


def test_fid_sqrtm_and_eigh_paths_agree():
  rng = np.random.default_rng(3)
  s1, s2 = _random_covariance(rng, 64), _random_covariance(rng, 64)
  mu1, mu2 = rng.standard_normal(64), rng.standard_normal(64)
  host = fid.frechet_distance(mu1, s1, mu2, s2)
  assert host > 0
  np.testing.assert_allclose(float(fid.frechet_distance_eigh(mu1, s1, mu2, s2)), host,
                             rtol=1e-4)
  with jax.enable_x64(True):
    value = fid.frechet_distance_eigh(mu1, s1, mu2, s2)
    assert value.dtype == np.float64
    np.testing.assert_allclose(float(value), host, rtol=1e-10)


def test_fid_rejects_imaginary_square_roots():
  # S2 is not PSD: sqrt(S1 S2) has an imaginary diagonal entry of 1.
  with pytest.raises(ValueError, match="imaginary component"):
    fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))


def test_fid_shape_errors():
  with pytest.raises(ValueError, match=r"different lengths \(8 vs 4\).*different feature"):
    fid.frechet_distance(np.zeros(8), np.eye(8), np.zeros(4), np.eye(4))
  with pytest.raises(ValueError, match=r"different lengths \(8 vs 4\)"):
    fid.frechet_distance_eigh(np.zeros(8), np.eye(8), np.zeros(4), np.eye(4))
  with pytest.raises(ValueError, match=r"Inconsistent statistics.*\(8,\).*\(4, 4\)"):
    fid.frechet_distance(np.zeros(8), np.eye(4), np.zeros(8), np.eye(8))


def test_feature_statistics_and_too_few_samples_warning():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((200, 10)).astype(np.float32)
  mu, sigma = fid.feature_statistics(x)
  assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (10, 10)
  x64 = x.astype(np.float64)
  np.testing.assert_allclose(mu, x64.mean(0), rtol=1e-12)
  centred = x64 - x64.mean(0)
  np.testing.assert_allclose(sigma, centred.T @ centred / 199, rtol=1e-10)
  with pytest.warns(UserWarning, match=r"at least 11.*biased"):
    fid.feature_statistics(x[:10])


def test_statistics_npz_round_trip_and_errors(tmp_path):
  rng = np.random.default_rng(5)
  mu, sigma = rng.standard_normal(5), _random_covariance(rng, 5)
  path = str(tmp_path / "stats.npz")
  fid.save_statistics(path, mu, sigma)
  with np.load(path) as f:  # pytorch-fid reads exactly these two keys
    assert sorted(f.files) == ["mu", "sigma"]
  mu2, sigma2 = fid.load_statistics(path)
  np.testing.assert_array_equal(mu2, mu)
  np.testing.assert_array_equal(sigma2, sigma)

  bad = str(tmp_path / "bad.npz")
  np.savez(bad, m=mu, s=sigma)
  with pytest.raises(ValueError, match=r"has keys \['m', 's'\].*'mu' and 'sigma'"):
    fid.load_statistics(bad)
  np.savez(bad, mu=mu, sigma=sigma[:4, :4])
  with pytest.raises(ValueError, match="Inconsistent statistics"):
    fid.load_statistics(bad)


# ----------------------------------------------------------------------------------
# Inception Score.

def test_inception_score_of_uniform_predictions_is_one():
  mean, std = inception_score.inception_score(np.zeros((100, 10)))
  assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_confident_even_predictions_is_num_classes():
  # Labels cycle through the 10 classes, so each of the 10 consecutive chunks of 100
  # holds exactly 10 of each: p(y) is uniform and p(y|x) one-hot in every chunk.
  labels = np.arange(1000) % 10
  probs = np.eye(10)[labels]
  mean, std = inception_score.inception_score(probs, splits=10, from_probs=True)
  assert mean == pytest.approx(10.0, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)
  mean, _ = inception_score.inception_score(60.0 * probs, splits=10)
  assert mean == pytest.approx(10.0, rel=1e-9)


def test_inception_score_splits_are_consecutive_chunks():
  # First half: confident and even (score 10); second half: uniform (score 1).
  probs = np.concatenate([np.eye(10)[np.arange(100) % 10], np.full((100, 10), 0.1)])
  mean, std = inception_score.inception_score(probs, splits=2, from_probs=True)
  assert mean == pytest.approx(5.5) and std == pytest.approx(4.5)  # population std


def test_inception_score_from_logits_equals_from_probs():
  rng = np.random.default_rng(6)
  logits = 3.0 * rng.standard_normal((120, 7))
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  from_logits = inception_score.inception_score(logits, splits=4)
  from_probs = inception_score.inception_score(probs, splits=4, from_probs=True)
  np.testing.assert_allclose(from_logits, from_probs, rtol=1e-12)
  # One split: exp of the mean KL(p(y|x) || p(y)), written out directly.
  py = probs.mean(0)
  kl = [np.sum(p * np.log(p / py)) for p in probs]
  assert inception_score.inception_score(logits, splits=1)[0] == pytest.approx(
      math.exp(np.mean(kl)), rel=1e-12)


def test_inception_score_errors():
  with pytest.raises(ValueError, match="5 samples for 10 splits"):
    inception_score.inception_score(np.zeros((5, 3)))
  with pytest.raises(ValueError, match="not probability vectors"):
    inception_score.inception_score(np.ones((20, 3)), splits=2, from_probs=True)


# ----------------------------------------------------------------------------------
# KID.

def _mmd2_double_loop(x, y, degree, gamma, coef0):
  """The unbiased MMD^2 of equal-size samples, one kernel evaluation at a time."""
  k = lambda u, v: (gamma * float(np.dot(u, v)) + coef0) ** degree
  m = len(x)
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
  return (xx + yy) / (m * (m - 1)) - 2 * xy / m ** 2


def test_kid_matches_a_direct_double_loop():
  rng = np.random.default_rng(7)
  x, y = rng.standard_normal((6, 4)), 0.5 + rng.standard_normal((7, 4))
  # One subset of all 6 points of each set (a permutation: MMD^2 does not change).
  mean, std = kid.kernel_inception_distance(x, y[:6], num_subsets=1, subset_size=6)
  assert mean == pytest.approx(_mmd2_double_loop(x, y[:6], 3, 1 / 4, 1), rel=1e-12)
  assert std == 0.0
  mean, _ = kid.kernel_inception_distance(x, y[:6], num_subsets=1, subset_size=6, degree=2,
                                          gamma=0.3, coef0=0.5)
  assert mean == pytest.approx(_mmd2_double_loop(x, y[:6], 2, 0.3, 0.5), rel=1e-12)
  # 6 vs 7 points: subsets shrink to 6, so y loses one (random) point.
  with pytest.warns(UserWarning, match="using subsets of 6"):
    mean, _ = kid.kernel_inception_distance(x, y, num_subsets=1)
  candidates = [_mmd2_double_loop(x, np.delete(y, i, 0), 3, 1 / 4, 1) for i in range(7)]
  assert min(abs(mean - c) for c in candidates) < 1e-12 * max(map(abs, candidates))


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
  rng = np.random.default_rng(8)
  f1, f2 = rng.standard_normal((600, 16)), rng.standard_normal((600, 16))
  f3 = 0.3 + rng.standard_normal((600, 16))
  same, _ = kid.kernel_inception_distance(f1, f2, num_subsets=20, subset_size=300)
  different, std = kid.kernel_inception_distance(f1, f3, num_subsets=20, subset_size=300)
  assert different > 10 * std > 0
  assert abs(same) < 0.05 * different
  # Seeded: the same seed gives the same subsets.
  assert kid.kernel_inception_distance(f1, f3, num_subsets=20, subset_size=300) == (
      different, std)


# ----------------------------------------------------------------------------------
# SSIM and MS-SSIM.

def _smooth_images(rng, shape, noise):
  """Images with structure at several scales (cumulated noise), plus a noisy copy."""
  a = np.cumsum(np.cumsum(rng.standard_normal(shape), -3), -2)
  a = (a - a.min()) / (a.max() - a.min())
  return a, np.clip(a + noise * rng.standard_normal(shape), 0, 1)


def test_ssim_of_an_image_with_itself_is_one():
  rng = np.random.default_rng(9)
  a, _ = _smooth_images(rng, (2, 24, 30, 3), 0.0)
  np.testing.assert_allclose(ssim.ssim(a, a, 1.0), [1.0, 1.0], atol=1e-6)
  value, ssim_map = ssim.ssim(a[0], a[0], 1.0, return_map=True)
  assert value.shape == () and ssim_map.shape == (14, 20, 3)
  np.testing.assert_allclose(ssim_map, 1.0, atol=1e-5)


def test_ssim_matches_scikit_image():
  skimage_metrics = pytest.importorskip("skimage.metrics")
  rng = np.random.default_rng(10)
  a, b = _smooth_images(rng, (2, 32, 41, 3), 0.1)
  a, b = 2 * a - 1, 2 * b - 1  # data range 2: exercises max_val
  values, maps = ssim.ssim(a.astype(np.float32), b.astype(np.float32), 2.0,
                           return_map=True)
  for i in range(2):
    # skimage Gaussian-filters the whole image (reflecting at the borders, 11 taps for
    # sigma 1.5 and truncate 3.5), then averages only the map cropped by
    # (win_size - 1) // 2 = 5 on each side. In that interior every window lies inside
    # the image, so its map is exactly tf's VALID map (H - 10, W - 10); with
    # use_sample_covariance=False both use population (co)variances, and the mean over
    # channels of per-channel means is the mean over H, W and C.
    ref, ref_map = skimage_metrics.structural_similarity(
        a[i], b[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=2.0, channel_axis=-1, full=True)
    np.testing.assert_allclose(maps[i], ref_map[5:-5, 5:-5], atol=1e-5)
    assert float(values[i]) == pytest.approx(ref, abs=1e-5)
    assert 0.2 < ref < 0.99


def test_ssim_of_large_images_streams_in_bands_with_a_progress_bar(capsys):
  """Issue 15: two 4000x4000 images ran for minutes with no sign of progress. The
  score CLI computes SSIM a band of rows at a time (10 rows of overlap), which must
  add up to the whole image's value, whatever the band height."""
  rng = np.random.default_rng(0)
  a = rng.random((3, 64, 41, 3)).astype(np.float32)
  b = np.clip(a + 0.3 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
  whole = np.asarray(ssim.ssim(a, b, 1.0))
  for budget in (2 ** 24, 64 * 41 * 3, 20 * 41 * 3, 11 * 41 * 3, 1):
    banded = ssim.ssim_streamed(a, b, 1.0, budget=budget, progress=False)
    np.testing.assert_allclose(banded, whole, rtol=1e-6, atol=1e-7, err_msg=str(budget))
  ssim.ssim_streamed(a, b, 1.0, budget=20 * 41 * 3)
  bar = capsys.readouterr().err
  assert "ssim" in bar and "162/162" in bar, bar  # 3 images x 54 map rows


def test_ssim_is_jit_friendly():
  rng = np.random.default_rng(11)
  a, b = _smooth_images(rng, (1, 20, 20, 1), 0.2)
  np.testing.assert_allclose(jax.jit(ssim.ssim)(a, b, 1.0), ssim.ssim(a, b, 1.0), rtol=1e-6)


def test_ms_ssim_is_one_for_identical_images_and_decreases_with_noise():
  rng = np.random.default_rng(12)
  a, _ = _smooth_images(rng, (1, 161, 170, 1), 0.0)
  ms = jax.jit(ssim.ms_ssim)
  np.testing.assert_allclose(ms(a, a, 1.0), [1.0], atol=1e-5)
  values = [float(ms(a, np.clip(a + s * rng.standard_normal(a.shape), 0, 1), 1.0)[0])
            for s in (0.02, 0.05, 0.1, 0.3)]
  assert 1.0 > values[0] > values[1] > values[2] > values[3] > 0.0
  # Anti-correlated images: negative contrast-structure is clipped to 0 (tf's relu).
  assert float(ms(a, 1.0 - a, 1.0)[0]) == 0.0
  # A single scale with weight 1 is plain SSIM.
  b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
  np.testing.assert_allclose(ssim.ms_ssim(a[0], b[0], 1.0, power_factors=(1.0,)),
                             ssim.ssim(a[0], b[0], 1.0), rtol=1e-6)


def _ms_ssim_reference(a, b, weights):
  """MS-SSIM of one greyscale (H, W) image in float64 numpy, data range 1.

  Local statistics from scipy's Gaussian filter (11 taps), cropped to the windows inside
  the image; odd sizes gain a copy of their last row or column before 2x2 averaging.
  """
  from scipy import ndimage
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  window = lambda x: ndimage.gaussian_filter(x, 1.5, truncate=3.5)[5:-5, 5:-5]
  values = []
  for k in range(len(weights)):
    if k:
      a, b = (np.pad(x, ((0, x.shape[0] % 2), (0, x.shape[1] % 2)), mode="edge")
              for x in (a, b))
      a, b = (x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2).mean((1, 3)) for x in (a, b))
    mu_a, mu_b = window(a), window(b)
    var_a, var_b = window(a * a) - mu_a ** 2, window(b * b) - mu_b ** 2
    cov = window(a * b) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    luminance = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
    values.append((luminance * cs if k == len(weights) - 1 else cs).mean())
  return np.prod(np.maximum(values, 0.0) ** np.asarray(weights))


def test_ms_ssim_matches_a_numpy_reference():
  rng = np.random.default_rng(13)
  a, b = _smooth_images(rng, (161, 170, 1), 0.1)  # odd sizes at several scales
  expected = _ms_ssim_reference(a[..., 0], b[..., 0], ssim.MS_SSIM_WEIGHTS)
  assert 0.3 < expected < 0.99
  assert float(ssim.ms_ssim(a, b, 1.0)) == pytest.approx(expected, abs=1e-5)
  with jax.enable_x64(True):
    assert float(ssim.ms_ssim(a, b, 1.0)) == pytest.approx(expected, rel=1e-10)


def test_ssim_errors():
  x = np.zeros((1, 16, 16, 3))
  with pytest.raises(ValueError, match="same shape"):
    ssim.ssim(x, np.zeros((1, 16, 16, 1)), 1.0)
  with pytest.raises(ValueError, match="rank 3 or 4"):
    ssim.ssim(x[0, ..., 0], x[0, ..., 0], 1.0)
  with pytest.raises(ValueError, match="at least 11x11.*got 10x16"):
    ssim.ssim(x[:, :10], x[:, :10], 1.0)
  with pytest.raises(ValueError, match="5 scales needs images of at least 161x161"):
    ssim.ms_ssim(np.zeros((160, 200, 1)), np.zeros((160, 200, 1)), 1.0)
  with pytest.raises(ValueError, match="2 scales needs images of at least 21x21"):
    ssim.ms_ssim(x, x, 1.0, power_factors=(0.5, 0.5))


def test_psnr_matches_scikit_image():
  """jaxgen.metrics.psnr (from per-image MSEs, as the autoencoders' eval steps and the
  psnr evaluator call it) against scikit-image's peak_signal_noise_ratio, per image,
  at two value ranges."""
  from jaxgen import losses
  from jaxgen.metrics import psnr as psnr_lib
  skimage_metrics = pytest.importorskip("skimage.metrics")
  rng = np.random.default_rng(0)
  a = rng.uniform(size=(3, 8, 8, 1)).astype(np.float32)
  b = np.clip(a + rng.normal(0, [[[[0.01]]], [[[0.1]]], [[[0.3]]]], a.shape), 0, 1)
  b = b.astype(np.float32)
  for scale in (1.0, 255.0):
    got = psnr_lib.psnr(losses.mse_per_example(a * scale, b * scale), max_val=scale)
    want = [skimage_metrics.peak_signal_noise_ratio(a[i] * scale, b[i] * scale,
                                                   data_range=scale) for i in range(3)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4)
  assert float(psnr_lib.psnr(np.float32(0.0))) == pytest.approx(100.0)
