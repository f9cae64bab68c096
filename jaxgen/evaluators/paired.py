"""l1, psnr, ssim and lpips: each sample against the ground-truth ``target`` of the
eval example it was generated from (paired translation), or the example's key
``eval.paired_key`` names (``image``: the image an image-conditioned model drew from)."""
from __future__ import annotations

import jax
import numpy as np

from jaxgen import losses
from jaxgen.evaluators import Evaluator, option, register
from jaxgen.metrics import lpips, ssim
from jaxgen.metrics import psnr as psnr_lib


class Paired(Evaluator):
  """Means over samples of a per-sample distance to the eval example's ``target``
  (or ``eval.paired_key``)."""
  needs = ("target",)
  options = {"paired_key": "target"}
  name = ""

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.needs = (option(config, "paired_key"),)
    self.values = []
    low, high = ((-1.0, 1.0) if config.data.scale == "symmetric"
                 else (0.0, 1.0))
    self.to_unit = lambda x: (np.asarray(x, np.float64) - low) / (high - low)

  def update(self, samples, examples):
    self.values.append(self.per_sample(np.asarray(samples, np.float64),
                                       np.clip(self.to_unit(examples[self.needs[0]]),
                                               0, 1)))

  def result(self):
    return {self.name: float(np.mean(np.concatenate(self.values)))}


@register("l1")
class L1(Paired):
  name = "l1"

  def per_sample(self, x, y):
    return losses.mean_per_example(np.abs(x - y))


@register("psnr")
class PSNR(Paired):
  name = "psnr"

  def per_sample(self, x, y):
    return np.asarray(psnr_lib.psnr(losses.mse_per_example(x, y)))


@register("ssim")
class SSIM(Paired):
  name = "ssim"

  def per_sample(self, x, y):
    return np.asarray(ssim.ssim(x.astype(np.float32), y.astype(np.float32),
                                max_val=1.0))


@register("lpips")
class LPIPS(Paired):
  """LPIPS v0.1 on VGG16 (jaxgen/metrics/lpips.py; grey images as RGB), from
  torchvision's and lpips' weights files (``eval.lpips_vgg_weights``,
  ``eval.lpips_heads_weights``; "": the known files in the weights cache)."""
  name = "lpips"
  options = {**Paired.options, "lpips_vgg_weights": "", "lpips_heads_weights": ""}

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    if "lpips" not in nets:
      nets["lpips"] = lpips.load_params(option(config, "lpips_vgg_weights") or None,
                                        option(config, "lpips_heads_weights") or None)
    self.params = nets["lpips"]
    self.distance = jax.jit(lpips.distance)

  def per_sample(self, x, y):
    to_sym = lambda v: (2.0 * v - 1.0).astype(np.float32)
    return np.asarray(self.distance(self.params, to_sym(x), to_sym(y)), np.float64)
