"""LPIPS' weights files (Zhang et al. 2018, richzhang/PerceptualSimilarity, the ``lpips``
package, v0.1 with VGG16), read without PyTorch into the layout of
``jaxgen.metrics.lpips``:

* ``vgg16``: torchvision's ImageNet VGG16 state dict (``vgg16-397923af.pth``, what
  ``torchvision.models.vgg16(pretrained=True)`` loads): the convolutions
  ``features.N.weight`` (O, I, 3, 3) / ``features.N.bias`` become
  ``{"features_N": {"kernel": (3, 3, I, O), "bias"}}``; the classifier is not read;
* ``lpips_vgg``: the package's linear heads (``lpips/weights/v0.1/vgg.pth``, which
  taming-transformers downloads as ``vgg.pth`` for its LPIPS loss):
  ``linK.model.1.weight`` (1, C, 1, 1) (``linK.model.0.weight`` without the dropout)
  becomes ``{"linK": {"kernel": (C, 1)}}``.

Both go through the restricted PyTorch pickle reader (``torch_pickle``) and the weights
cache (``jaxgen.weights.resolve``: put the files in the cache when offline, or pass
their paths). ``read_vgg16`` and ``read_heads`` check the keys they need, so a wrong
file is named as such.
"""
from __future__ import annotations

import re

import numpy as np

from jaxgen import weights
from jaxgen.weights import torch_pickle

weights.KNOWN["vgg16"] = weights.KnownFile(
    "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
    "397923af", "torchvision's ImageNet VGG16 weights (LPIPS' feature network)")
weights.KNOWN["lpips_vgg"] = weights.KnownFile(
    "lpips_vgg_v0.1.pth",
    "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
    "vgg.pth",
    # the file the lpips 0.1.4 package ships (lpips/weights/v0.1/vgg.pth)
    "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    "LPIPS v0.1 linear heads on VGG16 features")

NUM_HEADS = 5  # lin0 .. lin4: one per VGG16 stage (relu1_2 .. relu5_3)


def _read(path, what: str) -> dict:
  try:
    return torch_pickle.load_state_dict(path)
  except torch_pickle.TorchPickleError as e:
    raise weights.WeightsError(f"{what}: {e}") from None


def read_vgg16(path) -> dict:
  """``{"features_N": {"kernel", "bias"}}`` of every convolution in the
  ``features`` of a torchvision VGG state dict at ``path``."""
  state = _read(path, "VGG16 weights")
  params = {}
  for key, value in state.items():
    m = re.fullmatch(r"features\.(\d+)\.(weight|bias)", key)
    if not m:
      continue
    layer = params.setdefault(f"features_{m.group(1)}", {})
    if m.group(2) == "weight":
      if value.ndim != 4:
        raise weights.WeightsError(f"{path}: {key} has shape {value.shape}, not that of "
                                   f"a convolution (O, I, kh, kw).")
      layer["kernel"] = np.asarray(value, np.float32).transpose(2, 3, 1, 0)
    else:
      layer["bias"] = np.asarray(value, np.float32)
  if not params:
    raise weights.WeightsError(
        f"{path} holds no features.N.weight entries: it is not a torchvision VGG state "
        f"dict (found {sorted(state)[:4]}...).")
  return params


def read_heads(path) -> dict:
  """``{"linK": {"kernel": (C, 1)}}``, K = 0 .. 4, of LPIPS' heads file at ``path``."""
  state = _read(path, "LPIPS heads")
  params = {}
  for k in range(NUM_HEADS):
    key = next((f"lin{k}.model.{i}.weight" for i in (1, 0)
                if f"lin{k}.model.{i}.weight" in state), None)
    if key is None:
      raise weights.WeightsError(
          f"{path} has no lin{k}.model.1.weight: it is not LPIPS' linear heads file "
          f"(lpips/weights/v0.1/vgg.pth; found {sorted(state)[:4]}...).")
    w = np.asarray(state[key], np.float32)
    if w.ndim != 4 or w.shape[0] != 1 or w.shape[2:] != (1, 1):
      raise weights.WeightsError(f"{path}: {key} has shape {w.shape}, not (1, C, 1, 1).")
    params[f"lin{k}"] = {"kernel": w.reshape(1, -1).T}
  return params


def load(vgg=None, heads=None, download: bool = True) -> dict:
  """LPIPS' parameters ``{"net": VGG16 features, "lin0": ..., "lin4": ...}`` from the
  files ``vgg`` and ``heads`` (paths; None: the known files, from the cache or
  downloaded into it)."""
  return {"net": read_vgg16(weights.resolve("vgg16", vgg, download=download)),
          **read_heads(weights.resolve("lpips_vgg", heads, download=download))}
