"""fid, kid and is: the samples in a feature network's space (``eval.feature_net``)
against a dataset split's (``eval.reference_split``). The split's feature statistics
are computed once and cached under the weights cache, keyed by the network's weights,
the dataset, its resolution and the split."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import jax
import ml_collections
import numpy as np

from jaxgen import data, weights
from jaxgen.evaluators import Evaluator, option, register
from jaxgen.metrics import features, fid, inception_score, kid

MAX_CACHED_FEATURES = 10_000  # rows kept for KID; FID uses the exact mean and covariance


def feature_net(config, mesh=None, name=None) -> features.FeatureNet:
  own = option(config, "feature_net")
  name = name or own
  return features.get(name, weights=(option(config, "weights") or None)
                      if name == own else None,
                      mode=option(config, "inception_mode"),
                      batch_size=config.eval.sample_batch_size, mesh=mesh)


def real_data(data_config) -> ml_collections.ConfigDict:
  """A copy of ``config.data`` that gives the real images as the metrics see them: in
  [0, 1] at the model's resolution (resize applied; no binarisation, dequantisation,
  jitter or flips)."""
  cfg = ml_collections.ConfigDict(data_config.to_dict())
  cfg.update(binarize="", dequantize=False, random_flip=False, scale="unit")
  if "jitter_resize" in cfg:
    cfg.jitter_resize = ()
  return cfg


def real_images(data_config, split: str, batch_size: int = 500, key: str = "image"):
  """The split's images ``key`` as ``real_data`` gives them, in batches; and their
  number."""
  cfg = real_data(data_config)
  source = data.get_source(cfg, split)
  n = len(source)

  def batches():
    for start in range(0, n, batch_size):
      idx = np.arange(start, min(start + batch_size, n))
      yield data.preprocess.process(source[idx], cfg, np.random.default_rng(0),
                                    train=False, indices=idx)[key]
  return batches(), n


@dataclasses.dataclass
class Reference:
  mu: np.ndarray
  sigma: np.ndarray
  features: np.ndarray  # at most MAX_CACHED_FEATURES rows, for KID
  num: int
  classes: np.ndarray | None = None  # those rows' argmax logits, where there are logits


def _weights_digest(net: features.FeatureNet) -> str:
  """SHA-256 of the network's weights: statistics from other weights never match."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(net.variables)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def reference(net: features.FeatureNet, data_config, split: str,
              key: str = "image") -> Reference:
  """Feature statistics of a dataset split's images ``key``, computed once and cached
  (keyed by the network, its weights, the data config's fields and the split); with
  the kept rows' predicted classes where the network gives logits (a file cached
  without them is computed again)."""
  # Every field that shapes the images (a derived set's seed and layouts too), as the
  # metrics read them; not the loader's (workers, where tfds keeps its files).
  fields = {k: v for k, v in real_data(data_config).to_dict().items()
            if k not in ("workers", "tfds_data_dir")}
  digest = hashlib.sha256(repr((net.name, _weights_digest(net),
                                json.dumps(fields, sort_keys=True, default=str), split,
                                key)).encode())
  path = (weights.cache_dir() / "stats" /
          f"{data_config.name.replace('/', '_')}-{split}-{digest.hexdigest()[:12]}.npz")
  if path.is_file():
    with np.load(path) as f:
      if "classes" in f.files:
        return Reference(f["mu"], f["sigma"], f["features"], int(f["num"]),
                         f["classes"] if f["classes"].ndim else None)
  images, n = real_images(data_config, split, key=key)
  out = net(images, total=n)
  feats = out["features"]
  mu, sigma = fid.feature_statistics(feats)
  rows = np.sort(np.random.default_rng(0).permutation(len(feats))[:MAX_CACHED_FEATURES])
  classes = out["logits"][rows].argmax(-1) if "logits" in out else None
  ref = Reference(mu, sigma, feats[rows], len(feats), classes)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp.npz")
  np.savez(tmp, mu=mu, sigma=sigma, features=ref.features, num=n,
           classes=np.asarray(-1) if classes is None else classes)  # -1: no logits
  os.replace(tmp, path)
  return ref


class Features(Evaluator):
  """Collects the configured feature network's outputs; fid / is / kid share them."""
  options = {
      "feature_net": "mnist_classifier",  # metrics.features.NETWORKS: mnist_classifier, ...
      "weights": "",                      # that network's weights file ('' = registry)
      "inception_mode": "tf",             # tf | pytorch-fid input convention
      "reference_split": "train",         # the real images FID and KID compare with
      "kid_subset_size": 1000, "kid_subsets": 100,
      "is_splits": 10,
  }

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.net = nets.setdefault("feature_net", feature_net(config, mesh))
    self.parts = nets.setdefault("feature_parts", {})
    self.owner = nets.setdefault("feature_owner", self) is self

  def update(self, samples, examples):
    if self.owner:  # one extraction for all of fid, is and kid
      for key, value in self.net(samples, progress=False).items():
        self.parts.setdefault(key, []).append(value)

  def outputs(self, key):
    return np.concatenate(self.parts[key])

  def reference(self):
    return split_reference(self.config, self.net)


def split_reference(config, net: features.FeatureNet) -> tuple[Reference, dict]:
  """``reference`` of the real images of ``eval.reference_split`` in ``net``'s space
  (the examples' ``target`` where the data has one, else their ``image``), and the
  result fields that name it."""
  split = option(config, "reference_split")
  key = "target" if "target" in data.example_spec(config.data) else "image"
  ref = reference(net, config.data, split, key)
  return ref, {"feature_net": net.name,
               "reference": f"{config.data.name}/{split} ({ref.num} images)"}


@register("fid")
class FID(Features):
  def result(self):
    ref, info = self.reference()
    feats = self.outputs("features")
    return {**info, "fid": fid.frechet_distance(*fid.feature_statistics(feats),
                                                ref.mu, ref.sigma)}


@register("kid")
class KID(Features):
  def result(self):
    ref, info = self.reference()
    feats = self.outputs("features")
    size = min(option(self.config, "kid_subset_size"), len(feats), len(ref.features))
    value, std = kid.kernel_inception_distance(
        feats, ref.features, option(self.config, "kid_subsets"), size)
    return {**info, "kid": value, "kid_std": std}


@register("is")
class InceptionScore(Features):
  def result(self):
    value, std = inception_score.inception_score(self.outputs("logits"),
                                                 option(self.config, "is_splits"))
    return {"feature_net": self.net.name, "inception_score": value,
            "inception_score_std": std}
