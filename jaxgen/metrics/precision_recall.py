"""Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and
Recall Metric for Assessing Generative Models"), from two sets of feature vectors.

Each set's manifold is the union of balls around its points, each ball reaching the
point's k-th nearest neighbour in the same set (the point itself not counted).
Precision is the share of generated points inside the real manifold; recall the share
of real points inside the generated one. As the authors' code
(kynkaat/improved-precision-and-recall-metric, ``precision_recall.py``): Euclidean
distances, a point on a ball's surface is inside (``<=``), and the paper's k = 3.
(clovaai's ``prdc`` counts only points strictly inside; the two differ only on ties,
e.g. duplicated points.) Distances are computed in float64, in blocks of rows, so
memory stays ``block x len(other set)``.

``mean_pairwise_distance``, the spread of one set in the same space, is what the
``class_coverage`` evaluator compares within each class.
"""
from __future__ import annotations

import numpy as np

BLOCK = 1024  # rows of a distance block


def _as_features(x, name: str) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or len(x) == 0:
    raise ValueError(f"{name} must be a non-empty (N, d) array of feature vectors, got "
                     f"shape {x.shape}.")
  return x


def squared_distances(a, b) -> np.ndarray:
  """Squared Euclidean distances (len(a), len(b)) in float64, clipped at 0."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
  return np.maximum(d, 0.0)


def distance_blocks(a, b=None):
  """(start, squared distances from rows start .. start + BLOCK - 1 of ``a`` to every
  row of ``b``) for each block of rows; without ``b``, ``a`` to itself, each point's
  distance to itself exactly 0."""
  a = np.asarray(a, np.float64)
  for start in range(0, len(a), BLOCK):
    d = squared_distances(a[start:start + BLOCK], a if b is None else b)
    if b is None:
      rows = np.arange(len(d))
      d[rows, start + rows] = 0.0
    yield start, d


def knn_radii(features, k: int = 3) -> np.ndarray:
  """Each point's distance to its k-th nearest neighbour among the others (N,)."""
  x = _as_features(features, "features")
  if not 1 <= k < len(x):
    raise ValueError(f"k = {k} nearest neighbours need at least {k + 1} feature "
                     f"vectors, got {len(x)}.")
  radii = np.empty(len(x))
  for start, d in distance_blocks(x):  # a point's own distance is its 0-th neighbour
    radii[start:start + len(d)] = np.partition(d, k, axis=1)[:, k]
  return np.sqrt(radii)


def inside(points, centres, radii) -> np.ndarray:
  """Whether each point lies in at least one ball (centre, radius), (len(points),)."""
  r2 = np.asarray(radii, np.float64) ** 2
  found = np.empty(len(points), bool)
  for start, d in distance_blocks(points, centres):
    found[start:start + len(d)] = (d <= r2[None, :]).any(1)
  return found


def mean_pairwise_distance(features) -> float:
  """The mean Euclidean distance between two different points of a set (N >= 2)."""
  x = _as_features(features, "features")
  if len(x) < 2:
    raise ValueError(f"a mean pairwise distance needs at least 2 points, got {len(x)}.")
  total = sum(np.sqrt(d).sum() for _, d in distance_blocks(x))
  return float(total / (len(x) * (len(x) - 1)))


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
  """(precision, recall) of the generated features ``fake`` against ``real``, each
  (N, d); the paper compares sets of equal size."""
  real, fake = _as_features(real, "real"), _as_features(fake, "fake")
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"real and fake features differ in width: {real.shape} and "
                     f"{fake.shape}.")
  precision = inside(fake, real, knn_radii(real, k)).mean()
  recall = inside(real, fake, knn_radii(fake, k)).mean()
  return float(precision), float(recall)
