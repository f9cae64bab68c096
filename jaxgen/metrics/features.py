"""Feature networks for sample-based metrics, and batched extraction over the mesh.

``get(name)`` builds a ``FeatureNet``: called on images (one array, or an iterable of
arrays, of any total size) it returns their features (for FID and KID) and class
logits (for IS), computed in fixed-size batches by one jit-compiled function whose
batch is sharded over the device mesh. Host memory holds one batch of images at a time.
Every result carries ``net.name``, which says which network (and input convention)
produced it, since numbers from different networks are not comparable.
"""
from __future__ import annotations

from typing import Callable, Iterable

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxgen import sharding

NETWORKS = ("mnist_classifier", "inception")


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
        parts.setdefault(key, []).append(np.asarray(value)[:n])
      bar.update(n)

    with tqdm(total=total, desc=f"features ({self.name})", unit="img",
              disable=not progress, leave=False) as bar:
      for batch in _batches(images, self.batch_size, self.prepare):
        n = len(batch)
        if n < self.batch_size:  # pad to the compiled shape; the padding is dropped
          batch = np.concatenate(
              [batch, np.zeros((self.batch_size - n, *batch.shape[1:]), batch.dtype)])
        result = self._apply(self.variables, jax.device_put(batch, self._sharding))
        if pending is not None:
          fetch(*pending)
        pending = (result, n)
      if pending is not None:
        fetch(*pending)
    if not parts:
      if not hasattr(images, "shape"):
        raise ValueError("No images to compute features of.")
      shapes = jax.eval_shape(self._apply, self.variables,
                              jax.ShapeDtypeStruct((1, *images.shape[1:]),
                                                   self.prepare(images).dtype))
      return {k: np.zeros((0, *v.shape[1:]), v.dtype) for k, v in shapes.items()}
    return {key: np.concatenate(value) for key, value in parts.items()}


def get(name: str, *, weights=None, mode: str = "tf", batch_size: int = 100,
        mesh=None) -> FeatureNet:
  """The feature network ``name`` (see NETWORKS); ``weights`` overrides its weights
  file, ``mode`` is the Inception input convention ("tf" or "pytorch-fid")."""
  if name == "mnist_classifier":
    from jaxgen.metrics import mnist_classifier as mc
    params = mc.load_params(weights or mc.WEIGHTS)

    def apply(variables, x):
      features, logits = mc.MNISTClassifier().apply({"params": variables}, x)
      return {"features": features, "logits": logits}
    return FeatureNet(mc.NAME, apply, params, mc.check_digits, batch_size, mesh)
  if name == "inception":
    from jaxgen.metrics import inception
    return inception.feature_net(weights=weights, mode=mode, batch_size=batch_size,
                                 mesh=mesh)
  raise ValueError(f"Unknown feature network {name!r}; use one of {', '.join(NETWORKS)}.")
