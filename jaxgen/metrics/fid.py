"""The Frechet distance between Gaussians fitted to network features, the core of FID.

``frechet_distance`` reproduces pytorch-fid's ``calculate_frechet_distance`` on the host
in float64; ``frechet_distance_eigh`` computes the same quantity with symmetric
eigendecompositions in jax, so that it can run on an accelerator.
"""
from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance (normalised by N - 1) of features of shape (N, d), in float64."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2:
    raise ValueError(f"features must have shape (num_samples, dim), got {features.shape}.")
  n, d = features.shape
  if n < 2:
    raise ValueError(f"A covariance needs at least 2 samples, got {n}.")
  if n < d + 1:
    warnings.warn(
        f"Only {n} samples of {d}-dimensional features: a full-rank covariance needs at "
        f"least {d + 1}, so the FID computed from these statistics is biased (and not "
        "comparable with values computed from more samples).", stacklevel=2)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def check_statistics(mu, sigma, name=""):
  """mu as (d,) and sigma as (d, d) float64 arrays, or a ValueError saying what is wrong."""
  mu = np.atleast_1d(np.asarray(mu, np.float64))
  sigma = np.atleast_2d(np.asarray(sigma, np.float64))
  if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
    raise ValueError(f"Inconsistent statistics{name}: mu has shape {mu.shape} and sigma "
                     f"{sigma.shape}; expected (d,) and (d, d).")
  if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
    raise ValueError(f"The statistics{name} contain NaN or infinite values: recompute "
                     f"them from finite features.")
  return mu, sigma


def _check_pair(mu1, sigma1, mu2, sigma2):
  mu1, sigma1 = check_statistics(mu1, sigma1, " (first)")
  mu2, sigma2 = check_statistics(mu2, sigma2, " (second)")
  if len(mu1) != len(mu2):
    raise ValueError(f"mean vectors have different lengths ({len(mu1)} vs {len(mu2)}): the "
                     "two statistics come from different feature networks.")
  return mu1, sigma1, mu2, sigma2


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), exactly as pytorch-fid computes it,
  clamped at 0."""
  mu1, sigma1, mu2, sigma2 = _check_pair(mu1, sigma1, mu2, sigma2)
  diff = mu1 - mu2
  # pytorch-fid calls sqrtm(..., disp=False), which differs only in returning an error
  # estimate (and not printing); SciPy 1.16 deprecated ``disp``, 1.18 removes it.
  covmean = linalg.sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    warnings.warn(f"FID: the product of the covariances is singular; adding {eps} to their "
                  "diagonals.", stacklevel=2)
    offset = eps * np.eye(len(mu1))
    covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    imag = np.max(np.abs(np.diagonal(covmean).imag))
    if imag > 1e-3:
      raise ValueError(f"FID: sqrt(S1 S2) has an imaginary component of {imag:.3g} on its "
                       "diagonal; are the covariances positive semi-definite?")
    covmean = covmean.real
  # Rounding leaves the distance of a set to itself slightly negative (-2e-4): a
  # distance is never below 0.
  return max(0.0, float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                        - 2 * np.trace(covmean)))


@jax.jit
def _frechet_distance_eigh(mu1, sigma1, mu2, sigma2):
  matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)
  w, v = jnp.linalg.eigh(sigma1)
  root1 = matmul(v * jnp.sqrt(jnp.clip(w, 0.0)), v.T)
  # sqrt(S1) S2 sqrt(S1) is symmetric PSD and similar to S1 S2, so the square roots of its
  # eigenvalues sum to Tr (S1 S2)^(1/2). Rounding can leave tiny negative eigenvalues.
  eigvals = jnp.linalg.eigvalsh(matmul(matmul(root1, sigma2), root1))
  tr_covmean = jnp.sum(jnp.sqrt(jnp.clip(eigvals, 0.0)))
  diff = mu1 - mu2
  return jnp.maximum(diff @ diff + jnp.trace(sigma1) + jnp.trace(sigma2) - 2 * tr_covmean,
                     0.0)  # as frechet_distance: never below 0


def frechet_distance_eigh(mu1, sigma1, mu2, sigma2) -> jax.Array:
  """The Frechet distance computed with eigh in jax (float64 if jax_enable_x64 is on)."""
  mu1, sigma1, mu2, sigma2 = _check_pair(mu1, sigma1, mu2, sigma2)
  dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
  return _frechet_distance_eigh(*(jnp.asarray(x, dtype) for x in (mu1, sigma1, mu2, sigma2)))


def save_statistics(path, mu, sigma) -> None:
  """Write mu and sigma to an .npz file in pytorch-fid's format (keys ``mu``, ``sigma``)."""
  mu, sigma = check_statistics(mu, sigma)
  np.savez_compressed(path, mu=mu, sigma=sigma)


def load_statistics(path) -> tuple[np.ndarray, np.ndarray]:
  """Read (mu, sigma) from a pytorch-fid .npz statistics file."""
  with np.load(path) as f:
    if "mu" not in f.files or "sigma" not in f.files:
      raise ValueError(f"{path} is not an FID statistics file: it has keys {sorted(f.files)}, "
                       "but pytorch-fid's .npz format needs 'mu' and 'sigma'.")
    mu, sigma = f["mu"], f["sigma"]
  return check_statistics(mu, sigma, f" in {path}")
