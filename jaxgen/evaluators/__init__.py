"""Sample-based evaluation: samples conditioned on eval inputs -> metrics, by name.

``config.eval.metrics`` lists evaluators by the name each registers with
``@register(name)`` in its own module, here or in a family's ``evaluators.py``:
  features.py       fid, is, kid: distances and scores in a feature network's space
                    (``eval.feature_net``: "mnist_classifier", "inception" or "clip");
  class_accuracy.py how often the shipped MNIST classifier gives the generated digit
                    the label it was conditioned on (class_accuracy), or an
                    autoencoder's reconstruction its input's label
                    (class_accuracy_recon);
  digit_classes.py  how many digit classes the samples cover (mode collapse), and
                    how varied each class is (class_coverage);
  precision_recall.py  k-NN precision (fidelity) and recall (diversity) in the
                    feature network's space;
  paired.py         l1, psnr, ssim of each sample against the ground-truth ``target``
                    of the eval example it was generated from;
  clip_score.py     CLIPScore of each sample against the caption it was generated from,
                    in the CLIP port or the CLIP stage ``eval.clip_stage`` names;
  clip_r_precision.py  whether a CLIP stage ranks each sample's own caption first among
                    it and 99 other captions of the split (and the real images' ceiling);
                    clip_stage.py loads that stage for both (these three modules sit in
                    the loop's layer: they call ``build.load_stage``);
  caption_accuracy.py  each caption attribute (digit, size, thickness, slant, position;
                    two digits and their order) re-measured on its sample, as the
                    captions of mnist5k_captions(2) were measured; the real ceiling;
  families/cyclegan/evaluators.py   styles (CycleGAN's G(a): its digit, read by the
                    restyled digits' reader; its content and style, un-styled).
``python -m jaxgen.evaluators.ceiling`` (ceiling.py) runs them on the real images of
``eval.split`` in place of samples: each metric's ceiling.
Samples come from the family's pure ``generate``, jit-compiled once, in batches of
``eval.sample_batch_size``. Conditional families (``trainer.conditioning_keys``) get
the conditioning of ``eval.num_samples`` examples of ``eval.split``, in a fixed
shuffled order (cycling if the split is smaller), so metrics are conditioned on real
inputs. An evaluator whose ``reads`` is "reconstructions" gets, in place of samples,
the reconstructions (``decode(encode(image))``) of those examples' images by a family
with the ``stages.Autoencoder`` protocol. Every result names the network that
produced it.
"""
from __future__ import annotations

import itertools

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxgen import data, registry, sharding, stages
from jaxgen.errors import ConfigError

EVALUATORS = registry.Registry("evaluator", lambda: [
    *registry.package_modules(__name__), *registry.family_modules("evaluators")])
register = EVALUATORS.register


def option(config, name: str):
  """``config.eval.<name>`` for an evaluator option, or its default: the ``options``
  of the registered evaluator that declares it (the one place each default lives)."""
  defaults = {}
  for _, evaluator in EVALUATORS.items():
    defaults.update(evaluator.options)
  if name not in defaults:
    raise KeyError(f"No evaluator has the option config.eval.{name}.")
  return config.eval.get(name, defaults[name])


# --- evaluators -------------------------------------------------------------------
class Evaluator:
  """Accumulates over batches of (samples in [0, 1], their eval examples), then
  returns named numbers. ``needs`` names the eval-example keys it reads; ``options``
  are its own fields of ``config.eval`` with their defaults; ``reads`` is "samples",
  or "reconstructions" (of the examples' ``image``, by an autoencoder: it then needs
  ``image``)."""
  needs: tuple = ()
  options: dict = {}
  reads: str = "samples"

  def __init__(self, config, mesh, nets):
    self.config, self.mesh, self.nets = config, mesh, nets

  def update(self, samples: np.ndarray, examples: dict):
    pass

  def result(self) -> dict:
    raise NotImplementedError


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


def reconstruction_metrics(names) -> list:
  """Those of the metrics ``names`` whose evaluators read reconstructions."""
  found = [(n, EVALUATORS.find(n)) for n in names]
  return [n for n, ev in found if getattr(ev, "reads", "samples") == "reconstructions"]


def check_autoencoder(trainer_class, config, names) -> None:
  """A ConfigError unless ``trainer_class`` has the ``stages.Autoencoder`` protocol,
  which the metrics ``names`` (reading reconstructions) need."""
  if names and not issubclass(trainer_class, stages.Autoencoder):
    raise ConfigError(f"config.eval.metrics has {', '.join(names)}, which score "
                      f"reconstructions, and the {config.family} family is no "
                      f"autoencoder (vae, vqvae, dvae and autoencoder_kl are): drop "
                      f"{'it' if len(names) == 1 else 'them'} from config.eval.metrics.")


def reconstructor(trainer, state, config, mesh, names):
  """A function: eval images (the data's range, a batch of ``eval.sample_batch_size``)
  -> their reconstructions by ``trainer``'s autoencoder in [0, 1], as host arrays.
  ``names``: the metrics that read them (the error names them)."""
  check_autoencoder(type(trainer), config, names)
  params = trainer.stage_params(state)
  low = -1.0 if config.data.scale == "symmetric" else 0.0
  batches = sharding.batch_sharding(mesh)
  run = jax.jit(lambda p, x: trainer.decode(p, trainer.encode(p, (x - low) / (1 - low))),
                out_shardings=batches)
  return lambda images: sharding.to_host(
      run(params, sharding.put_global(np.asarray(images, np.float32), batches)))


def compute(trainer, state, config, mesh, rng) -> dict:
  """The metrics that ``config.eval.metrics`` lists for samples of ``state``; with
  ``config.eval.guidance_scales`` (families that sample with classifier-free guidance),
  once per scale with the same seeds and conditioning, each number of the samples
  named ``NAME_guidance_S`` (the real images' ceilings, ``*_real*``, once). With
  ``config.eval.shuffled_baseline`` (conditional families), once more per scale with
  each sample conditioned on another example's inputs while the metrics read its own
  (``NAME_shuffled[_guidance_S]``): what the metrics give a model that ignores its
  conditioning but draws from the data's marginal, the floor beside the ceiling. With
  ``config.eval.rerank_candidates`` (families that re-rank candidates, DALL-E), once
  per count n with the same seeds and conditioning, each sample the best of n
  (``NAME[...]_rerank_N``)."""
  e = config.eval
  names = tuple(e.metrics)
  if not names:
    return {}
  for name in names:
    EVALUATORS.get(name)  # an unknown name: the error lists the known ones
  shuffled = bool(e.get("shuffled_baseline", False))
  if shuffled and not trainer.conditioning_keys:
    raise ConfigError(f"config.eval.shuffled_baseline conditions samples on shuffled "
                      f"inputs, and the {config.family} family samples unconditionally: "
                      f"set it False.")
  scales = tuple(float(s) for s in (e.get("guidance_scales") or ())) or (None,)
  result = {"num_samples": e.num_samples}
  counts = tuple(int(n) for n in (e.get("rerank_candidates") or ())) or (None,)
  if scales != (None,):
    result["guidance_scales"] = list(scales)
  if counts != (None,):
    result["rerank_candidates"] = list(counts)
  for shuffle in (False, True) if shuffled else (False,):
    for s, n in itertools.product(scales, counts):
      suffix = (("_shuffled" if shuffle else "")
                + (f"_guidance_{s:g}" if s is not None else "")
                + (f"_rerank_{n}" if n is not None else ""))
      for k, v in _compute(trainer, state, config, mesh, rng, names, s, shuffle,
                           n).items():
        # Numbers of the samples are per pass; those of real images are not.
        if isinstance(v, (int, float)) and k != "num_samples" and "_real" not in k:
          result[k + suffix] = v
        else:
          result.setdefault(k, v)
  return result


def _compute(trainer, state, config, mesh, rng, names, guidance_scale, shuffle,
             rerank=None) -> dict:
  e = config.eval
  num, batch_size = e.num_samples, e.sample_batch_size
  sharding.check_batch_size(batch_size, mesh, "eval.sample_batch_size")
  nets = {}
  evaluators = [EVALUATORS.get(n)(config, mesh, nets) for n in names]
  examples = conditioning(trainer, config, num,
                          tuple(k for ev in evaluators for k in ev.needs))
  cond_keys = trainer.conditioning_keys
  gen = trainer.compiled(trainer.generate, static_argnums=2,
                         out_shardings=sharding.batch_sharding(mesh))
  frozen = stages.frozen_params(trainer.stages)
  recon_names = reconstruction_metrics(names)
  reconstruct = (reconstructor(trainer, state, config, mesh, recon_names)
                 if recon_names else None)
  sampled = any(ev.reads == "samples" for ev in evaluators)
  # The shuffled baseline: each sample conditioned on the example half the split away.
  shift = len(data.get_source(config.data, e.split)) // 2 + 1 if shuffle else 0
  for i in tqdm(range(-(-num // batch_size)), desc="samples", leave=False):
    batch = examples(i * batch_size, batch_size)
    given = examples(i * batch_size + shift, batch_size) if shift else batch
    inputs = {k: given[k] for k in cond_keys}
    if guidance_scale is not None:
      inputs["guidance_scale"] = np.full(batch_size, guidance_scale, np.float32)
    if rerank is not None:
      inputs["rerank_candidates"] = np.full(batch_size, rerank, np.int32)
    inputs = (sharding.put_global(inputs, sharding.batch_sharding(mesh))
              if inputs else None)
    images = {}
    if sampled:
      images["samples"] = sharding.to_host(
          gen(state, jax.random.fold_in(rng, i), batch_size, inputs, frozen))
    if reconstruct is not None:
      images["reconstructions"] = reconstruct(batch["image"])
    keep = num - i * batch_size
    for ev in evaluators:
      ev.update(images[ev.reads][:keep], {k: v[:keep] for k, v in batch.items()})
  result = {"num_samples": num}
  for ev in evaluators:
    result.update(ev.result())
  return result
