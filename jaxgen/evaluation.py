"""Sample-based evaluation: samples conditioned on eval inputs -> metrics, by registry.

``config.eval.metrics`` lists evaluators by name (``EVALUATORS``):
  fid, is, kid      distances and scores in a feature network's space
                    (``eval.feature_net``: "mnist_classifier" or "inception");
  class_accuracy    how often the shipped MNIST classifier gives the generated digit
                    the label it was conditioned on;
  l1, psnr, ssim    paired metrics of each sample against the ground-truth ``target``
                    of the eval example it was generated from;
  clip_score        CLIPScore (Hessel et al.: 2.5 max(cos, 0), prefix "A photo
                    depicts ") of each sample against the caption it was generated
                    from, in the CLIP port (``eval.clip_weights``, ``eval.clip_bpe``:
                    Hugging Face safetensors and OpenAI's BPE file; default the cache).
Samples come from the family's pure ``generate``, jit-compiled once, in batches of
``eval.sample_batch_size``. Conditional families (``trainer.conditioning_keys``) get
the conditioning of ``eval.num_samples`` examples of ``eval.split``, in a fixed
shuffled order (cycling if the split is smaller), so metrics are conditioned on real
inputs. Reference
statistics of a dataset split are cached under the weights cache, keyed by the
feature network's weights. Every result names the network that produced it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

import jax
import ml_collections
import numpy as np

from jaxgen import data, sharding, stages
from jaxgen.metrics import features, fid, inception_score, kid, ssim, weights

MAX_CACHED_FEATURES = 10_000  # rows kept for KID; FID uses the exact mean and covariance


# The evaluators' own options in config.eval, with their defaults (this is the one
# place they live): a config sets one only to change it.
OPTIONS = {
    "feature_net": "mnist_classifier",  # fid/is/kid features: mnist_classifier,
                                        # inception or clip
    "weights": "",                      # that network's weights file ('' = registry)
    "inception_mode": "tf",             # tf | pytorch-fid input convention
    "reference_split": "train",         # the real images FID and KID compare with
    "kid_subset_size": 1000, "kid_subsets": 100,
    "is_splits": 10,
    "clip_bpe": "", "clip_weights": "",  # clip_score's files ('' = registry)
}


def option(config, name: str):
  """``config.eval.<name>`` for an evaluator option, or its default (``OPTIONS``)."""
  return config.eval.get(name, OPTIONS[name])


def feature_net(config, mesh=None, name=None) -> features.FeatureNet:
  own = option(config, "feature_net")
  name = name or own
  return features.get(name, weights=(option(config, "weights") or None)
                      if name == own else None,
                      mode=option(config, "inception_mode"),
                      batch_size=config.eval.sample_batch_size, mesh=mesh)


def real_images(data_config, split: str, batch_size: int = 500, key: str = "image"):
  """The split's images ``key`` in [0, 1] at the model's resolution (resize applied;
  no binarisation, dequantisation, jitter or flips), in batches; and their number."""
  cfg = ml_collections.ConfigDict(data_config.to_dict())
  cfg.update(binarize="", dequantize=False, random_flip=False, scale="unit")
  if "jitter_resize" in cfg:
    cfg.jitter_resize = ()
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


def _weights_digest(net: features.FeatureNet) -> str:
  """SHA-256 of the network's weights: statistics from other weights never match."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(net.variables)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def reference(net: features.FeatureNet, data_config, split: str,
              key: str = "image") -> Reference:
  """Feature statistics of a dataset split's images ``key``, computed once and cached
  (keyed by the network, its weights, the dataset, its resolution and the split)."""
  digest = hashlib.sha256(repr((net.name, _weights_digest(net), data_config.name,
                                data_config.get("distribution"),
                                tuple(data_config.get("resize") or ()),
                                data_config.get("center_crop", False), split,
                                key)).encode())
  path = (weights.cache_dir() / "stats" /
          f"{data_config.name.replace('/', '_')}-{split}-{digest.hexdigest()[:12]}.npz")
  if path.is_file():
    with np.load(path) as f:
      return Reference(f["mu"], f["sigma"], f["features"], int(f["num"]))
  images, n = real_images(data_config, split, key=key)
  feats = net(images, total=n)["features"]
  mu, sigma = fid.feature_statistics(feats)
  rows = np.random.default_rng(0).permutation(len(feats))[:MAX_CACHED_FEATURES]
  ref = Reference(mu, sigma, feats[np.sort(rows)], len(feats))
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp.npz")
  np.savez(tmp, mu=mu, sigma=sigma, features=ref.features, num=n)
  os.replace(tmp, path)
  return ref


# --- evaluators -------------------------------------------------------------------
class Evaluator:
  """Accumulates over batches of (samples in [0, 1], their eval examples), then
  returns named numbers. ``needs`` names the eval-example keys it reads."""
  needs: tuple = ()

  def __init__(self, config, mesh, nets):
    self.config, self.mesh, self.nets = config, mesh, nets

  def update(self, samples: np.ndarray, examples: dict):
    pass

  def result(self) -> dict:
    raise NotImplementedError


class _Features(Evaluator):
  """Collects the configured feature network's outputs; fid / is / kid share them."""

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
    split = option(self.config, "reference_split")
    spec = data.example_spec(self.config.data)
    key = "target" if "target" in spec else "image"
    ref = reference(self.net, self.config.data, split, key)
    return ref, {"feature_net": self.net.name,
                 "reference": f"{self.config.data.name}/{split} ({ref.num} images)"}


class FID(_Features):
  def result(self):
    ref, info = self.reference()
    feats = self.outputs("features")
    return {**info, "fid": fid.frechet_distance(*fid.feature_statistics(feats),
                                                ref.mu, ref.sigma)}


class KID(_Features):
  def result(self):
    ref, info = self.reference()
    feats = self.outputs("features")
    size = min(option(self.config, "kid_subset_size"), len(feats), len(ref.features))
    value, std = kid.kernel_inception_distance(
        feats, ref.features, option(self.config, "kid_subsets"), size)
    return {**info, "kid": value, "kid_std": std}


class InceptionScore(_Features):
  def result(self):
    value, std = inception_score.inception_score(self.outputs("logits"),
                                                 option(self.config, "is_splits"))
    return {"feature_net": self.net.name, "inception_score": value,
            "inception_score_std": std}


class ClassAccuracy(Evaluator):
  """The shipped MNIST classifier's agreement with the conditioning label."""
  needs = ("label",)

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.net = nets.setdefault("mnist_classifier",
                               feature_net(config, mesh, "mnist_classifier"))
    self.correct = self.count = 0

  def update(self, samples, examples):
    if samples.shape[1:] != (28, 28, 1):
      raise ValueError(f"class_accuracy classifies 28x28x1 digits with the shipped MNIST "
                       f"classifier; these samples are {samples.shape[1:]}. Remove it "
                       f"from config.eval.metrics.")
    predicted = self.net(samples, progress=False)["logits"].argmax(-1)
    self.correct += int((predicted == examples["label"]).sum())
    self.count += len(samples)

  def result(self):
    return {"class_accuracy": self.correct / self.count,
            "class_accuracy_net": self.net.name}


class _Paired(Evaluator):
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


class L1(_Paired):
  name = "l1"

  def per_sample(self, x, y):
    return np.abs(x - y).mean(axis=(1, 2, 3))


class PSNR(_Paired):
  name = "psnr"

  def per_sample(self, x, y):
    mse = ((x - y) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


class SSIM(_Paired):
  name = "ssim"

  def per_sample(self, x, y):
    return np.asarray(ssim.ssim(x.astype(np.float32), y.astype(np.float32),
                                max_val=1.0))


class ClipScore(Evaluator):
  """CLIPScore of samples against the captions (the eval examples' ``text`` decoded by
  the dataset's tokenizer) in the CLIP ViT-B/32 port."""
  needs = ("text",)

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    from jaxgen.data.clip_tokenizer import CLIPTokenizer
    from jaxgen.metrics import clip_score
    e = config.eval
    dataset = data.get_dataset(config.data)
    if not hasattr(dataset, "tokenizer"):
      raise ValueError(f"clip_score needs captions, and {config.data.name!r} has none: "
                       f"use a captioned dataset (mnist5k_captions).")
    self.captions = dataset.tokenizer()
    self.module = clip_score
    self.embedder = features.clip_embedder(
        CLIPTokenizer.from_openai_bpe(
            clip_score.bpe_file(option(config, "clip_bpe") or None)),
        weights=option(config, "clip_weights") or None, mesh=mesh, progress=False,
        batch_size=e.sample_batch_size)
    self.images, self.texts = [], []

  def update(self, samples, examples):
    self.images.append(self.embedder.embed_images(samples))
    self.texts += self.captions.decode_batch(examples["text"])

  def result(self):
    m = self.module
    text = self.embedder.embed_texts([m.CLIPSCORE_PREFIX + t for t in self.texts])
    score = m.clip_score(np.concatenate(self.images), text, "clipscore")
    return {"clip_score": score.value, "clip_score_net": m.NAME}


class Styles(Evaluator):
  """The class of G(a) once un-styled, on mnist5k_styles' aligned test split: each
  sample's example is found in ``styles_ground_truth`` by its plain digit (domain_a),
  the sample (uint8) is un-styled with that example's true colour and texture
  (``mnist5k_derived.unstyle``) and read by the shipped MNIST classifier, against the
  true label (``class_accuracy_unstyled``); ``l1_unstyled`` is its mean |unstyle(G(a))
  - digit| on [0, 1]. For CycleGAN's G (``generate`` conditioned on domain_a)."""
  needs = ("domain_a",)

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    from jaxgen.data.mnist5k_derived import styles_ground_truth
    from jaxgen.metrics import features
    if config.data.name != "mnist5k_styles" or config.data.resize:
      raise ValueError("The styles evaluator reads mnist5k_styles at 28x28: use "
                       "config.data.name='mnist5k_styles' without config.data.resize.")
    split = config.eval.split
    self.gt = styles_ground_truth(split, int(config.data.derived_seed))
    self.index = {d.tobytes(): i for i, d in enumerate(self.gt["digit"])}
    if len(self.index) != len(self.gt["digit"]):
      raise ValueError(f"Two digits of the {split} split are identical: examples "
                       f"cannot be matched to their ground truth.")
    self.net = nets.setdefault("mnist_classifier",
                               features.get("mnist_classifier", mesh=mesh))
    self.symmetric = config.data.scale == "symmetric"
    self.correct, self.l1, self.count = 0, 0.0, 0

  def _indices(self, domain_a):
    a = np.asarray(domain_a, np.float64)
    a = (a + 1) / 2 if self.symmetric else a
    digits = np.round(a[..., :1] * 255).astype(np.uint8)
    try:
      return np.asarray([self.index[d.tobytes()] for d in digits])
    except KeyError:
      raise ValueError("An eval example's domain_a is no digit of the ground truth: "
                       "the styles evaluator needs the unjittered, unflipped split.")

  def update(self, samples, examples):
    from jaxgen.data.mnist5k_derived import unstyle
    idx = self._indices(examples["domain_a"])
    styled = np.round(np.clip(np.asarray(samples), 0, 1) * 255).astype(np.uint8)
    ink = unstyle(styled, self.gt["colour"][idx], self.gt["texture"][idx])
    logits = self.net(ink.astype(np.float32) / 255, progress=False)["logits"]
    self.correct += int((logits.argmax(-1) == self.gt["label"][idx]).sum())
    self.l1 += float(np.abs(ink.astype(np.float64) - self.gt["digit"][idx]).sum()
                     / (255 * ink[0].size))
    self.count += len(idx)

  def result(self):
    return {"class_accuracy_unstyled": self.correct / self.count,
            "l1_unstyled": self.l1 / self.count,
            "class_accuracy_unstyled_net": self.net.name}


EVALUATORS = {"fid": FID, "is": InceptionScore, "kid": KID,
              "class_accuracy": ClassAccuracy, "l1": L1, "psnr": PSNR, "ssim": SSIM,
              "clip_score": ClipScore, "styles": Styles}


# --- orchestration ----------------------------------------------------------------
def conditioning(trainer, config, num: int, needs: tuple):
  """A function (start, size) -> the eval examples of the samples start..start+size
  (conditioning keys and what the evaluators read): ``eval.split`` in a fixed
  shuffled order, cycling."""
  keys = tuple(dict.fromkeys((*trainer.conditioning_keys, *needs)))
  if not keys:
    return lambda start, size: {}
  spec = data.example_spec(config.data)
  split = config.eval.split
  absent = [k for k in keys if k not in spec]
  if absent:
    raise ValueError(f"config.eval.metrics needs the key(s) {absent} of each eval "
                     f"example, which {config.data.name!r} does not have (it has "
                     f"{sorted(spec)}): use a dataset that has them, or drop those "
                     f"metrics.")
  source = data.get_source(config.data, split)
  # A fixed shuffle: splits may be sorted by class (MNIST-5k's are), and consecutive
  # samples of one class would bias scores computed over chunks (IS splits).
  order = np.random.default_rng([config.seed, 17]).permutation(len(source))

  def examples(start, size):
    idx = order[np.arange(start, start + size) % len(source)]
    batch = data.preprocess.process(source[idx], config.data,
                                    np.random.default_rng([config.seed, start, 13]),
                                    train=False, indices=idx)
    return {k: batch[k] for k in keys}
  return examples


def compute(trainer, state, config, mesh, rng) -> dict:
  """The metrics that ``config.eval.metrics`` lists for samples of ``state``."""
  e = config.eval
  names = tuple(e.metrics)
  if not names:
    return {}
  unknown = sorted(set(names) - set(EVALUATORS))
  if unknown:
    raise ValueError(f"config.eval.metrics has unknown {unknown}; use any of "
                     f"{', '.join(EVALUATORS)}.")
  num, batch_size = e.num_samples, e.sample_batch_size
  sharding.check_batch_size(batch_size, mesh, "eval.sample_batch_size")
  nets = {}
  evaluators = [EVALUATORS[n](config, mesh, nets) for n in names]
  examples = conditioning(trainer, config, num,
                          tuple(k for ev in evaluators for k in ev.needs))
  cond_keys = trainer.conditioning_keys
  gen = jax.jit(trainer.generate, static_argnums=2,
                out_shardings=sharding.batch_sharding(mesh))
  frozen = stages.frozen_params(trainer.stages)
  from tqdm.auto import tqdm
  for i in tqdm(range(-(-num // batch_size)), desc="samples", leave=False):
    batch = examples(i * batch_size, batch_size)
    inputs = (sharding.put_global({k: batch[k] for k in cond_keys},
                                  sharding.batch_sharding(mesh))
              if cond_keys else None)
    x = sharding.to_host(gen(state, jax.random.fold_in(rng, i), batch_size, inputs,
                             frozen))
    keep = num - i * batch_size
    for ev in evaluators:
      ev.update(x[:keep], {k: v[:keep] for k, v in batch.items()})
  result = {"num_samples": num}
  for ev in evaluators:
    result.update(ev.result())
  return result
