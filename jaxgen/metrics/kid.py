"""The Kernel Inception Distance: an unbiased MMD^2 between feature sets, polynomial kernel.

It follows torch-fidelity (after Binkowski et al. 2018): the kernel (gamma x.y + coef0)^degree,
the unbiased MMD^2 estimate on random equal-size subsets of the two feature sets, and the
mean and (population) standard deviation over subsets, all in float64.
"""
from __future__ import annotations

import warnings

import numpy as np


def _polynomial_mmd2(x, y, degree, gamma, coef0):
  """Unbiased MMD^2 of two equal-size samples: within-set sums exclude the diagonal."""
  m = len(x)
  k_xx = (gamma * (x @ x.T) + coef0) ** degree
  k_yy = (gamma * (y @ y.T) + coef0) ** degree
  k_xy = (gamma * (x @ y.T) + coef0) ** degree
  within = k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)
  return within / (m * (m - 1)) - 2 * k_xy.sum() / m ** 2


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, degree: int = 3,
                              gamma: float | None = None, coef0: float = 1,
                              seed: int = 0) -> tuple[float, float]:
  """(mean, std) of the unbiased polynomial-kernel MMD^2 over random feature subsets.

  Each subset draws ``subset_size`` rows of each set without replacement; ``gamma``
  defaults to 1 / dim.
  """
  f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
  if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
    raise ValueError(f"Features must have shapes (n1, d) and (n2, d), got {f1.shape} and "
                     f"{f2.shape}.")
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be at least 1, got {num_subsets}.")
  n = min(len(f1), len(f2))
  if subset_size > n:
    warnings.warn(f"KID: subset_size {subset_size} exceeds the smaller feature set ({n} "
                  f"samples); using subsets of {n}.", stacklevel=2)
    subset_size = n
  if subset_size < 2:
    raise ValueError(f"KID needs subsets of at least 2 samples, got {subset_size}.")
  gamma = 1.0 / f1.shape[1] if gamma is None else gamma
  rng = np.random.default_rng(seed)
  mmds = [_polynomial_mmd2(f1[rng.choice(len(f1), subset_size, replace=False)],
                           f2[rng.choice(len(f2), subset_size, replace=False)],
                           degree, gamma, coef0)
          for _ in range(num_subsets)]
  return float(np.mean(mmds)), float(np.std(mmds))
