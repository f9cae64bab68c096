"""Metrics of a model's samples against a dataset: FID, IS and KID for ``--mode=eval``.

``config.eval.metrics`` lists the metrics (any of "fid", "is", "kid"); the other
``config.eval`` fields used here are ``feature_net`` ("mnist_classifier" or
"inception"), ``num_samples``, ``reference_split``, ``sample_batch_size``, and for
Inception ``inception_mode`` and ``weights``. Samples come from the family's pure
``generate``, jit-compiled once per batch shape; reference statistics of a dataset split
are cached under the weights cache (they depend only on the data and the network).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

import jax
import ml_collections
import numpy as np

from jaxgen import data, sharding
from jaxgen.metrics import features, fid, inception_score, kid, weights

METRICS = ("fid", "is", "kid")
MAX_CACHED_FEATURES = 10_000  # rows kept for KID; FID uses the exact mean and covariance


def feature_net(config, mesh=None) -> features.FeatureNet:
  e = config.eval
  return features.get(e.get("feature_net", "mnist_classifier"),
                      weights=e.get("weights") or None,
                      mode=e.get("inception_mode", "tf"),
                      batch_size=e.get("sample_batch_size", 100), mesh=mesh)


def real_images(data_config, split: str, batch_size: int = 500):
  """The split's images in [0, 1] at the model's resolution (resize applied; no
  binarisation, dequantisation or flips), in batches; and their number."""
  cfg = ml_collections.ConfigDict(data_config.to_dict())
  cfg.update(binarize="", dequantize=False, random_flip=False, scale="unit")
  source = data.get_source(cfg, split)
  n = len(source)

  def batches():
    for start in range(0, n, batch_size):
      idx = np.arange(start, min(start + batch_size, n))
      yield data.preprocess.process(source[idx], cfg, np.random.default_rng(0),
                                    train=False, indices=idx)["image"]
  return batches(), n


@dataclasses.dataclass
class Reference:
  mu: np.ndarray
  sigma: np.ndarray
  features: np.ndarray  # at most MAX_CACHED_FEATURES rows, for KID
  num: int


def _weights_digest(net: features.FeatureNet) -> str:
  """SHA-256 of the network's weights: statistics from other weights never match."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(net.variables)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def reference(net: features.FeatureNet, data_config, split: str) -> Reference:
  """Feature statistics of a dataset split, computed once and cached (keyed by the
  network, its weights, the dataset, its resolution and the split)."""
  key = hashlib.sha256(repr((net.name, _weights_digest(net), data_config.name,
                             data_config.get("distribution"),
                             tuple(data_config.get("resize") or ()),
                             data_config.get("center_crop", False), split)).encode())
  path = weights.cache_dir() / "stats" / f"{data_config.name}-{split}-{key.hexdigest()[:12]}.npz"
  if path.is_file():
    with np.load(path) as f:
      return Reference(f["mu"], f["sigma"], f["features"], int(f["num"]))
  images, n = real_images(data_config, split)
  feats = net(images, total=n)["features"]
  mu, sigma = fid.feature_statistics(feats)
  rows = np.random.default_rng(0).permutation(len(feats))[:MAX_CACHED_FEATURES]
  ref = Reference(mu, sigma, feats[np.sort(rows)], len(feats))
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp.npz")
  np.savez(tmp, mu=mu, sigma=sigma, features=ref.features, num=n)
  os.replace(tmp, path)
  return ref


def generate(trainer, state, rng, num: int, batch_size: int, mesh):
  """``num`` samples from ``trainer.generate``, in batches of ``batch_size`` (host)."""
  sharding.check_batch_size(batch_size, mesh, "eval.sample_batch_size")
  gen = jax.jit(trainer.generate, static_argnums=2,
                out_shardings=sharding.batch_sharding(mesh))
  for i in range(-(-num // batch_size)):
    x = np.asarray(gen(state, jax.random.fold_in(rng, i), batch_size))
    yield x[:num - i * batch_size]


def compute(trainer, state, config, mesh, rng) -> dict:
  """The metrics in ``config.eval.metrics`` for samples of ``state``, as a flat dict."""
  e = config.eval
  names = tuple(e.get("metrics", ()))
  if not names:
    return {}
  unknown = set(names) - set(METRICS)
  if unknown:
    raise ValueError(f"config.eval.metrics has unknown {sorted(unknown)}; use any of "
                     f"{', '.join(METRICS)}.")
  net = feature_net(config, mesh)
  num = e.get("num_samples", 1000)
  out = net(generate(trainer, state, rng, num, e.get("sample_batch_size", 100), mesh),
            total=num)
  result = {"feature_net": net.name, "num_samples": num}
  if "fid" in names or "kid" in names:
    split = e.get("reference_split", "train")
    ref = reference(net, config.data, split)
    result["reference"] = f"{config.data.name}/{split} ({ref.num} images)"
    if "fid" in names:
      result["fid"] = fid.frechet_distance(*fid.feature_statistics(out["features"]),
                                           ref.mu, ref.sigma)
    if "kid" in names:
      size = min(e.get("kid_subset_size", 1000), num, len(ref.features))
      result["kid"], result["kid_std"] = kid.kernel_inception_distance(
          out["features"], ref.features, e.get("kid_subsets", 100), size)
  if "is" in names:
    result["inception_score"], result["inception_score_std"] = (
        inception_score.inception_score(out["logits"], e.get("is_splits", 10)))
  return result
