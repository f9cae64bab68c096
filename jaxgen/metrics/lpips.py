"""LPIPS (Zhang et al. 2018), v0.1 on VGG16, as the ``lpips`` package computes it
(``lpips.LPIPS(net="vgg")``; taming-transformers' copy is the perceptual term of
CompVis' first-stage losses).

For images x0, x1 in [-1, 1] (N, H, W, 3):

* ``ScalingLayer``: (x - shift) / scale with shift (-0.030, -0.088, -0.188) and scale
  (0.458, 0.448, 0.450) per channel;
* VGG16's ``features`` as torchvision builds them (3x3 convolutions with padding 1 and
  ReLU; 2x2 max pooling, stride 2), read after relu1_2, relu2_2, relu3_3, relu4_3 and
  relu5_3 (torchvision's ``features[:4]``, ``[4:9]``, ``[9:16]``, ``[16:23]``,
  ``[23:30]``);
* each stage's features normalised over the channels, f / (||f|| + 1e-10), their
  squared difference, a linear head ``linK`` (a 1x1 convolution to one channel, no bias;
  the package's dropout before it is off in eval mode), averaged over the positions;
* the sum over the five stages: one distance per image pair (N,).

Grey images are repeated to three channels (``as_rgb``). The weights come from
torchvision's and the package's files through ``jaxgen.weights.lpips``
(``load_params``); the network computes in float32 at ``precision=HIGHEST``, as the
other metric networks.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.weights import lpips as lpips_weights

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# torchvision's vgg16 ``features``: (index, output channels) of each convolution, "M"
# for a max pooling; a stage ends with the ReLU after its last convolution.
VGG16 = ((0, 64), (2, 64), "M", (5, 128), (7, 128), "M", (10, 256), (12, 256),
         (14, 256), "M", (17, 512), (19, 512), (21, 512), "M", (24, 512), (26, 512),
         (28, 512))
STAGE_ENDS = (2, 7, 14, 21, 28)  # the convolutions after whose ReLU a stage is read
CHANNELS = (64, 128, 256, 512, 512)
EPS = 1e-10
HI = jax.lax.Precision.HIGHEST


class VGG16Features(nn.Module):
  """The five stages' ReLU outputs of torchvision's VGG16 ``features``."""

  @nn.compact
  def __call__(self, x):
    outs = []
    for layer in VGG16:
      if layer == "M":
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        continue
      index, width = layer
      x = nn.relu(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), precision=HI,
                          name=f"features_{index}")(x))
      if index in STAGE_ENDS:
        outs.append(x)
    return outs


def normalize(f):
  """Each position's feature vector over its norm (+ 1e-10)."""
  return f / (jnp.sqrt(jnp.sum(f ** 2, axis=-1, keepdims=True)) + EPS)


class LPIPS(nn.Module):
  """``(x0, x1) -> (N,)`` distances (``per_layer=True``: (5, N), one row per stage).
  Parameters: ``net`` (VGG16Features) and ``lin0`` .. ``lin4``."""

  @nn.compact
  def __call__(self, x0, x1, per_layer: bool = False):
    if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[-1] != 3:
      raise ValueError(f"LPIPS compares two batches of RGB images (N, H, W, 3) in "
                       f"[-1, 1] of one shape, got {x0.shape} and {x1.shape}.")
    shift, scale = jnp.asarray(SHIFT), jnp.asarray(SCALE)
    net = VGG16Features(name="net")
    f0, f1 = net((x0 - shift) / scale), net((x1 - shift) / scale)
    layers = []
    for k, (a, b) in enumerate(zip(f0, f1)):
      d = (normalize(a) - normalize(b)) ** 2
      layers.append(nn.Dense(1, use_bias=False, precision=HI, name=f"lin{k}")(d)
                    .mean(axis=(1, 2, 3)))
    layers = jnp.stack(layers)
    return layers if per_layer else layers.sum(0)


def as_rgb(x):
  """Grey images (N, H, W, 1) repeated to three channels; RGB ones as they are."""
  return jnp.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def check_params(params) -> dict:
  """``params`` if they have the shapes of ``LPIPS``'s parameters, else a ValueError
  naming the first difference (a file of another network or another version)."""
  want = jax.eval_shape(LPIPS().init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                        jnp.zeros((1, 32, 32, 3)))["params"]
  flat_want = {jax.tree_util.keystr(p): v.shape
               for p, v in jax.tree_util.tree_flatten_with_path(want)[0]}
  flat_have = {jax.tree_util.keystr(p): tuple(v.shape)
               for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  for key, shape in flat_want.items():
    if flat_have.get(key) != shape:
      raise ValueError(f"LPIPS weights: {key} has shape {flat_have.get(key)}, expected "
                       f"{shape} (VGG16 features and LPIPS v0.1 heads).")
  return {k: v for k, v in params.items() if k in want}  # the VGG classifier aside


def load_params(vgg=None, heads=None, download: bool = True) -> dict:
  """LPIPS' parameters from torchvision's VGG16 file and the package's heads file
  (paths; None: the known files of ``jaxgen.weights``), checked."""
  return check_params(lpips_weights.load(vgg, heads, download=download))


def distance(params, x0, x1):
  """LPIPS distances (N,) of images in [-1, 1] (grey or RGB)."""
  return LPIPS().apply({"params": params}, as_rgb(x0), as_rgb(x1))
