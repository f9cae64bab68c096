"""precision_recall: improved precision and recall (Kynkaanniemi et al. 2019; the
numerical core is jaxgen/metrics/precision_recall.py) of the samples against the real
images of ``eval.reference_split``, in the feature network's space
(``eval.feature_net``: the MNIST classifier for digits, Inception for natural images).

Precision is the share of samples that fall in the real images' k-NN manifold (how
many samples look real: fidelity); recall the share of real images that fall in the
samples' manifold (how much of the data the samples cover: diversity). As in the
paper, the two sets have one size: the larger (usually the real split, of which the
features cache keeps at most ``features.MAX_CACHED_FEATURES``) is subsampled, with a
fixed seed, to the smaller. Reported: ``precision``, ``recall``,
``precision_recall_k`` (``eval.precision_recall_k``, the paper's 3),
``precision_recall_num`` (the size of each set), ``feature_net`` and ``reference``.
"""
from __future__ import annotations

import numpy as np

from jaxgen.errors import ConfigError
from jaxgen.evaluators import option, register
from jaxgen.evaluators.features import Features
from jaxgen.metrics import precision_recall


@register("precision_recall")
class PrecisionRecall(Features):
  """k-NN precision and recall in ``eval.feature_net``'s features (shared with fid,
  is and kid: one extraction)."""
  options = {**Features.options, "precision_recall_k": 3}

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.k = k = option(config, "precision_recall_k")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
      raise ConfigError(f"config.eval.precision_recall_k={k!r} must be a positive "
                        f"whole number of nearest neighbours (the paper's: 3).")
    if config.eval.num_samples <= k:
      raise ConfigError(f"precision_recall with k = {k} nearest neighbours needs more "
                        f"than {k} samples; config.eval.num_samples is "
                        f"{config.eval.num_samples}: raise it (1,000 or more for "
                        f"numbers that sampling noise moves little).")

  def result(self):
    k = self.k
    ref, info = self.reference()
    fake, real = self.outputs("features"), ref.features
    n = min(len(fake), len(real))
    if n <= k:
      raise ConfigError(f"precision_recall with k = {k} needs more than {k} real "
                        f"images; {info['reference']} gives {len(real)}: use a larger "
                        f"config.eval.reference_split.")
    rng = np.random.default_rng(0)
    pick = lambda x: x if len(x) == n else x[np.sort(rng.permutation(len(x))[:n])]
    p, r = precision_recall.precision_recall(pick(real), pick(fake), k)
    return {**info, "precision": p, "recall": r, "precision_recall_k": k,
            "precision_recall_num": n}
