"""l1, psnr and ssim: each sample against the ground-truth ``target`` of the eval
example it was generated from (paired translation)."""
from __future__ import annotations

import numpy as np

from jaxgen.evaluators import Evaluator, register
from jaxgen.metrics import ssim


class Paired(Evaluator):
  """Means over samples of a per-sample distance to the eval example's ``target``."""
  needs = ("target",)
  name = ""

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.values = []
    low, high = ((-1.0, 1.0) if config.data.scale == "symmetric"
                 else (0.0, 1.0))
    self.to_unit = lambda x: (np.asarray(x, np.float64) - low) / (high - low)

  def update(self, samples, examples):
    self.values.append(self.per_sample(np.asarray(samples, np.float64),
                                       np.clip(self.to_unit(examples["target"]), 0, 1)))

  def result(self):
    return {self.name: float(np.mean(np.concatenate(self.values)))}


@register("l1")
class L1(Paired):
  name = "l1"

  def per_sample(self, x, y):
    return np.abs(x - y).mean(axis=(1, 2, 3))


@register("psnr")
class PSNR(Paired):
  name = "psnr"

  def per_sample(self, x, y):
    mse = ((x - y) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


@register("ssim")
class SSIM(Paired):
  name = "ssim"

  def per_sample(self, x, y):
    return np.asarray(ssim.ssim(x.astype(np.float32), y.astype(np.float32),
                                max_val=1.0))
