"""PyTorch's parameter layouts and Flax's: one tensor at a time, and a whole state dict
into a parameter tree (``state_dict_params``).

A Flax parameter is named by its leaf: ``kernel`` (a conv's (*k, I, O) for torch's
(O, I, *k); a linear's (I, O) for torch's (O, I)), ``scale`` (a norm's ``weight``),
``embedding`` (an embedding's ``weight``), ``bias``. Readers of torch state dicts
(``jaxgen.weights.ldm``) rename keys their own way and convert the values here.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
from flax import traverse_util

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


def state_dict_params(state: Mapping, shapes: dict, key_of: Callable, *, header: str,
                      prefix: str = "", skip: Callable[[str], bool] = lambda k: False,
                      hint: str = "") -> dict:
  """Variables ``{"params": ...}`` of the parameter tree ``shapes`` (shapes or arrays)
  from the torch state dict ``state`` (key -> array), the Flax path ``p`` read from the
  key ``prefix + key_of(p)``; keys under ``prefix`` for which ``skip`` holds are
  ignored, keys outside it too. Every parameter must be present with its torch shape,
  and no other key; otherwise a ValueError: ``header``, then what is missing,
  unexpected or of the wrong shape, then ``hint``. Values become float32."""
  expected = traverse_util.flatten_dict(shapes)
  by_key = {key_of(p): p for p in expected}
  present = {k[len(prefix):]: k for k in state if k.startswith(prefix)}
  present = {k: v for k, v in present.items() if not skip(k)}
  missing = sorted(by_key.keys() - present.keys())
  unexpected = sorted(present.keys() - by_key.keys())
  params, wrong = {}, []
  for key in sorted(by_key.keys() & present.keys()):
    path = by_key[key]
    value = np.asarray(state[present[key]], np.float32)
    needed = torch_shape(path[-1], np.shape(expected[path]))
    if value.shape != needed:
      wrong.append(f"{prefix}{key} is {value.shape}, the model needs {needed}")
    else:
      params[path] = from_torch(path[-1], value)
  if missing or unexpected or wrong:
    def listing(name, items):
      more = f" and {len(items) - 8} more" if len(items) > 8 else ""
      return f"\n  {len(items)} {name}: {', '.join(items[:8])}{more}" if items else ""
    raise ValueError(
        f"{header}:{listing('missing keys', [prefix + k for k in missing])}"
        f"{listing('unexpected keys', [prefix + k for k in unexpected])}"
        f"{listing('shape mismatches', wrong)}{hint}")
  return {"params": traverse_util.unflatten_dict(params)}
