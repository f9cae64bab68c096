"""The Inception Score, exp E_x KL(p(y|x) || p(y)), from classifier logits or probabilities.

It follows improved-gan and torch-fidelity: float64, the samples split into consecutive
chunks, p(y) the mean prediction within a chunk, and the mean and (population) standard
deviation of the per-chunk scores.
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax


def _log_or_zero(x):
  """log x where x > 0 and 0 where x = 0 (there it is only multiplied by p = 0)."""
  return np.log(np.where(x > 0, x, 1.0))


def inception_score(logits: np.ndarray, splits: int = 10, *,
                    from_probs: bool = False) -> tuple[float, float]:
  """(mean, std) of the Inception Score over ``splits`` chunks of (N, classes) predictions.

  With ``from_probs`` the input holds probabilities p(y|x) instead of logits.
  """
  x = np.asarray(logits, np.float64)
  if x.ndim != 2:
    raise ValueError(f"Predictions must have shape (num_samples, num_classes), got {x.shape}.")
  n = len(x)
  if splits < 1:
    raise ValueError(f"The Inception Score's splits must be at least 1, got {splits}.")
  if n < splits:
    raise ValueError(f"The Inception Score needs at least one sample per split: got {n} "
                     f"samples for {splits} splits.")
  if from_probs:
    if (x < 0).any() or not np.allclose(x.sum(axis=1), 1.0, atol=1e-3):
      raise ValueError("from_probs=True, but the rows are not probability vectors (they "
                       "must be non-negative and sum to 1); pass logits without from_probs.")
    p, log_p = x, _log_or_zero(x)
  else:
    log_p = log_softmax(x, axis=1)
    p = np.exp(log_p)
  scores = []
  for i in range(splits):
    chunk = slice(i * n // splits, (i + 1) * n // splits)
    log_py = _log_or_zero(p[chunk].mean(axis=0))
    kl = (p[chunk] * (log_p[chunk] - log_py)).sum(axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))
