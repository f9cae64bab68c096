"""Feature networks for sample-based metrics, and batched extraction over the mesh.

``get(name)`` builds a ``FeatureNet``: called on images (one array, or an iterable of
arrays, of any total size) it returns their features (for FID and KID) and class
logits (for IS), computed in fixed-size batches by one jit-compiled function whose
batch is sharded over the device mesh. Host memory holds one batch of images at a time.
Every result carries ``net.name``, which says which network (and input convention)
produced it, since numbers from different networks are not comparable.

This module is the one registry of feature networks: the network modules
(``mnist_classifier``, ``inception``, ``clip_score``) define their networks and feature
functions and never import it. ``get("mnist_classifier")`` reads 28 x 28 digits and
canvases of digits side by side (``mnist_classifier.prepare`` says how: features
joined over the digits, logits of their joint label); ``get("styles_classifier")``
(the same network trained on mnist5k_styles' restyled digits) reads 28 x 28 RGB
digits. ``get("clip")`` gives CLIP ViT-B/32 image embeddings (``features`` only, no
``logits``: FID in CLIP space); ``clip_embedder`` gives both towers, for the CLIP
score.
"""
from __future__ import annotations

import functools
from typing import Callable, Iterable

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxgen import sharding
from jaxgen.metrics import clip_score, inception, mnist_classifier
from jaxgen import weights as weights_lib
from jaxgen.models import clip

NETWORKS = (*mnist_classifier.READERS, "inception", "clip")


def _batches(images, size: int, prepare: Callable) -> Iterable[np.ndarray]:
  """Prepared batches of at most ``size`` from an array or an iterable of arrays.

  Arrays are regrouped into full batches; images of different sizes are never mixed
  in one batch (each size then compiles once).
  """
  arrays = [images] if hasattr(images, "shape") else images
  pending, count = [], 0
  for array in arrays:
    array = prepare(np.asarray(array))
    while len(array):
      if pending and pending[0].shape[1:] != array.shape[1:]:
        yield np.concatenate(pending)
        pending, count = [], 0
      take = array[:size - count]
      array = array[len(take):]
      pending.append(take)
      count += len(take)
      if count == size:
        yield np.concatenate(pending)
        pending, count = [], 0
  if pending:
    yield np.concatenate(pending)


class FeatureNet:
  """``apply(variables, x) -> {"features": (N, d), "logits": (N, C), ...}`` in batches.

  ``prepare`` checks a host array of images and converts it to the network's input
  type. Batches are padded to ``batch_size`` (a multiple of the device count) and
  sharded over the mesh's ``data`` axis; while one batch computes, the previous one is
  fetched.
  """

  def __init__(self, name: str, apply: Callable, variables, prepare: Callable,
               batch_size: int = 100, mesh=None, progress: bool = True):
    self.name, self.prepare, self.progress = name, prepare, progress
    self.mesh = sharding.make_mesh() if mesh is None else mesh
    devices = self.mesh.devices.size
    if batch_size < 1 or batch_size % devices:
      raise ValueError(f"batch_size={batch_size} must be a positive multiple of the number "
                       f"of devices ({devices}), e.g. {max(devices, batch_size // devices * devices)}.")
    self.batch_size = batch_size
    self.variables = sharding.replicate(variables, self.mesh)
    self._apply = jax.jit(apply)
    self._sharding = sharding.batch_sharding(self.mesh)

  def __call__(self, images, total: int | None = None, progress: bool | None = None
               ) -> dict[str, np.ndarray]:
    """The outputs for ``images`` (one (N, H, W, C) array, or an iterable of them), in
    input order. ``total`` sizes the progress bar when ``images`` is an iterator."""
    if hasattr(images, "shape"):
      total = len(images)
    progress = self.progress if progress is None else progress
    parts, pending = {}, None

    def fetch(result, n):
      for key, value in result.items():
        parts.setdefault(key, []).append(sharding.to_host(value)[:n])
      bar.update(n)

    with tqdm(total=total, desc=f"features ({self.name})", unit="img",
              disable=not progress, leave=False) as bar:
      for batch in _batches(images, self.batch_size, self.prepare):
        n = len(batch)
        if n < self.batch_size:  # pad to the compiled shape; the padding is dropped
          batch = np.concatenate(
              [batch, np.zeros((self.batch_size - n, *batch.shape[1:]), batch.dtype)])
        result = self._apply(self.variables, sharding.put_global(batch, self._sharding))
        if pending is not None:
          fetch(*pending)
        pending = (result, n)
      if pending is not None:
        fetch(*pending)
    if not parts:
      if not hasattr(images, "shape"):
        raise ValueError("No images to compute features of.")
      prepared = self.prepare(images)
      shapes = jax.eval_shape(self._apply, self.variables,
                              jax.ShapeDtypeStruct((1, *prepared.shape[1:]),
                                                   prepared.dtype))
      return {k: np.zeros((0, *v.shape[1:]), v.dtype) for k, v in shapes.items()}
    return {key: np.concatenate(value) for key, value in parts.items()}


def get(name: str, *, weights=None, mode: str = "tf", batch_size: int = 100,
        mesh=None) -> FeatureNet:
  """The feature network ``name`` (see NETWORKS); ``weights`` overrides its weights
  file, ``mode`` is the Inception input convention ("tf" or "pytorch-fid")."""
  if name in mnist_classifier.READERS:
    reader = mnist_classifier.READERS[name]
    params = mnist_classifier.load_params(weights or reader.weights)
    return FeatureNet(reader.name, mnist_classifier.features_and_logits, params,
                      reader.inputs, batch_size, mesh)
  if name == "inception":
    inception.net_name(mode)  # checks the mode before any file is read
    path = weights_lib.resolve("inception", weights)
    net = inception_net(inception.load_variables(path), mode, batch_size, mesh)
    net.weights_path = path
    return net
  if name == "clip":
    return clip_image_net(clip_score.load_variables(weights), batch_size=batch_size,
                          mesh=mesh)
  raise ValueError(f"Unknown feature network {name!r}; use one of {', '.join(NETWORKS)}.")


def inception_net(variables, mode: str = "tf", batch_size: int = 50, mesh=None,
                  progress: bool = True) -> FeatureNet:
  """The FID Inception for flax variables already in memory ({"params", "batch_stats"}):
  pool3 ``features`` (N, 2048) and the Inception Score's ``logits`` (N, 1008), without
  the classifier's bias. The net also has ``mode``, ``weights_path`` (None here),
  ``fc_kernel`` (2048, 1008) and ``fc_bias``."""
  net = FeatureNet(inception.net_name(mode),
                   functools.partial(inception.features_and_logits, mode=mode), variables,
                   functools.partial(inception.prepare_batch, mode=mode), batch_size, mesh,
                   progress)
  net.mode, net.weights_path = mode, None
  net.fc_kernel = np.asarray(variables["params"]["fc"]["kernel"])
  net.fc_bias = np.asarray(variables["params"]["fc"]["bias"])
  return net


def clip_image_net(variables, config: clip.CLIPConfig = clip.VIT_B_32,
                   batch_size: int = 64, mesh=None, progress: bool = True) -> FeatureNet:
  """CLIP's image tower: ``features`` are the (unnormalised) image embeddings."""
  name, apply, prepare = clip_score.image_tower(config)
  return FeatureNet(name, apply, variables, prepare, batch_size, mesh, progress)


def clip_embedder(tokenizer=None, *, weights=None, variables=None,
                  config: clip.CLIPConfig = clip.VIT_B_32, batch_size: int = 64, mesh=None,
                  progress: bool = True) -> clip_score.CLIPEmbedder:
  """Both CLIP towers over one replicated copy of the weights, for the CLIP score.

  ``variables`` (in memory) or else ``weights`` (a Hugging Face ``model.safetensors``;
  default OpenAI's ViT-B/32 from the cache) give the weights; ``tokenizer`` (a
  ``jaxgen.data.clip_tokenizer.CLIPTokenizer``) turns captions into token ids.
  """
  if variables is None:
    variables = clip_score.load_variables(weights, config)
  mesh = sharding.make_mesh() if mesh is None else mesh
  variables = sharding.replicate(variables, mesh)  # shared by both towers
  nets = [FeatureNet(name, apply, variables, prepare, batch_size, mesh, progress)
          for name, apply, prepare in (clip_score.image_tower(config),
                                       clip_score.text_tower(config))]
  return clip_score.CLIPEmbedder(*nets, tokenizer=tokenizer, config=config)
