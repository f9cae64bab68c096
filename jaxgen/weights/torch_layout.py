"""PyTorch's parameter layouts and Flax's: one tensor at a time.

A Flax parameter is named by its leaf: ``kernel`` (a conv's (*k, I, O) for torch's
(O, I, *k); a linear's (I, O) for torch's (O, I)), ``scale`` (a norm's ``weight``),
``embedding`` (an embedding's ``weight``), ``bias``. Readers of torch state dicts
(``jaxgen.weights.ldm``) rename keys their own way and convert the values here.
"""
from __future__ import annotations

import numpy as np

TORCH_LEAF = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}


def from_torch(leaf: str, value) -> np.ndarray:
  """The Flax value of the torch tensor ``value`` for a parameter named ``leaf``."""
  value = np.asarray(value)
  if leaf == "kernel" and value.ndim >= 2:  # (O, I, *k) -> (*k, I, O); (O, I) -> (I, O)
    value = value.transpose(*range(2, value.ndim), 1, 0)
  return np.asarray(value, order="C")  # (ascontiguousarray would make a scalar 1-d)


def torch_shape(leaf: str, shape) -> tuple[int, ...]:
  """The torch shape of a Flax parameter named ``leaf`` of shape ``shape``."""
  shape = tuple(int(s) for s in shape)
  if leaf == "kernel" and len(shape) >= 2:
    return (shape[-1], shape[-2], *shape[:-2])
  return shape
