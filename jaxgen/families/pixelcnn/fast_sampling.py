"""Cached sampling for PixelCNN++ (Ramachandran et al. 2017, "Fast Generation for
Convolutional Autoregressive Models"): every layer keeps its activation map, and a
generated pixel costs only the activations that the next output needs and that the
pixels so far have not fixed yet.

The choice: the ``u`` stream sees only the rows above, so each of its layers
computes one whole row (at its resolution) when an image row starts, and the ``ul``
stream computes one position per layer per pixel, (i >> s, j >> s) at resolution
1/2^s. Instead of the paper's per-layer queues and its rule of updating a strided
layer only when a new pixel reaches it, the maps are plain zero-bordered arrays read
and written with dynamic slices and a coarse position is recomputed at every step
(recomputing a final value gives it again), so that the whole sampler is one
compiled pair of ``lax.fori_loop``s with static shapes.

Why it is exact: every activation at a position depends only on the pixels before
it in raster order (the shifted convolutions' construction; tests/test_pixelcnn.py
checks it at the output), so a value is final when first computed. The outputs
equal the full network's up to float32 rounding (a position's convolution is a dot
over its patch): tests/test_pixelcnn_cached.py checks samples and outputs against
``PixelCNNTrainer.sample_levels(cached=False)``, the full network at every pixel.

Cost per pixel: one position per ``ul`` layer plus 1/W of a row per ``u`` layer,
against the whole network on the whole canvas (about 110x faster for
configs/pixelcnnpp_mnist.py at batch 16 on a loaded 2-core CPU, by
experiments/pixelcnn_sampling.py). Memory: one map per layer output and per gated
resnet's inner activation, batch x (H + 1) x (W + 2) x features floats at full
resolution.
"""
from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jaxgen.families.pixelcnn.pixelcnnpp import (PixelCNNPP, concat_elu, conv_valid,
                                                 deconv_valid, shifted_crop, wn_weight)


def normalized(params):
  """``params`` with each weight-normalised layer's (V, g, b) as (w, b)."""
  if not isinstance(params, Mapping):
    return params
  if set(params) == {"V", "g", "b"}:
    return {"w": wn_weight(params["V"], params["g"]), "b": params["b"]}
  return {k: normalized(v) for k, v in params.items()}


@dataclasses.dataclass(eq=False)
class Op:
  """One layer of the plan: ``kind`` first_u | first_ul | stride | res | deconv,
  writing map ``out`` at resolution 1/2^``scale`` from map ``src`` (res: also its
  inner map ``mid`` and the ``shortcut`` maps, concatenated, for its 1x1 layer)."""
  kind: str
  params: dict
  scale: int
  out: int
  src: int = -1
  mid: int = -1
  shortcut: tuple = ()


@dataclasses.dataclass
class Plan:
  u_ops: list  # in the network's order, computed a row at a time
  ul_ops: list  # computed a position at a time
  scales: list  # the resolution of each map
  output: dict  # the final 1x1 layer


def build_plan(net: PixelCNNPP, params) -> Plan:
  """The layers of ``PixelCNNPP.__call__`` in its order, with the parameters of each
  (normalised ``params``; Flax names them by kind and creation order)."""
  made = collections.Counter()

  def take(kind):
    name = f"{kind}_{made[kind]}"
    made[kind] += 1
    return params[name]

  scales = []

  def new_map(scale):
    scales.append(scale)
    return len(scales) - 1

  def res(ops, x, shortcut, scale):
    op = Op("res", take("GatedResnet"), scale, new_map(scale), x, new_map(scale),
            tuple(shortcut))
    ops.append(op)
    return op.out

  u_ops, ul_ops = [], []
  u_ops.append(Op("first_u", take("WNConv"), 0, new_map(0)))
  ul_ops.append(Op("first_ul", {"above": take("WNConv"), "left": take("WNConv")}, 0,
                   new_map(0)))
  u_list, ul_list = [u_ops[0].out], [ul_ops[0].out]
  for scale in range(net.num_scales):
    if scale:
      u_ops.append(Op("stride", take("WNConv"), scale, new_map(scale), u_list[-1]))
      ul_ops.append(Op("stride", take("WNConv"), scale, new_map(scale), ul_list[-1]))
      u_list.append(u_ops[-1].out)
      ul_list.append(ul_ops[-1].out)
    for _ in range(net.num_resnet):
      u_list.append(res(u_ops, u_list[-1], (), scale))
      ul_list.append(res(ul_ops, ul_list[-1], (u_list[-1],), scale))
  u, ul = u_list.pop(), ul_list.pop()
  for step in range(net.num_scales):
    scale = net.num_scales - 1 - step
    if step:
      u_ops.append(Op("deconv", take("WNDeconv"), scale, new_map(scale), u))
      ul_ops.append(Op("deconv", take("WNDeconv"), scale, new_map(scale), ul))
      u, ul = u_ops[-1].out, ul_ops[-1].out
    for _ in range(net.num_resnet if step == 0 else net.num_resnet + 1):
      u = res(u_ops, u, (u_list.pop(),), scale)
      ul = res(ul_ops, ul, (u, ul_list.pop()), scale)
  output = take("WNDense")
  unused = set(params) - {f"{kind}_{k}" for kind, n in made.items() for k in range(n)}
  if unused:
    raise ValueError(f"The cached PixelCNN++ sampler does not know the layers "
                     f"{sorted(unused)} of this network: fast_sampling.build_plan must "
                     f"follow PixelCNNPP.__call__.")
  return Plan(u_ops, ul_ops, scales, output)


# Every map is stored with a zero border: one row on top, one column on each side, so
# that value (r, c) sits at [r + 1, c + 1] and the shifted convolutions' padding is
# read, not built. (concat_elu(0) = 0: the border is also the activations' padding.)
def _rows(cache, start, count):
  """Bordered rows [start, start + count) of a map, every column."""
  return jax.lax.dynamic_slice_in_dim(cache, start, count, axis=1)


def _patch(cache, top, left, height, width):
  """The bordered patch of a map with corner (top, left)."""
  n, _, _, ch = cache.shape
  return jax.lax.dynamic_slice(cache, (0, top, left, 0), (n, height, width, ch))


def _put(cache, value, r, c=0):
  """``value`` (N, rows, cols, C) written with its corner at (r, c)."""
  return jax.lax.dynamic_update_slice(cache, value.astype(cache.dtype),
                                      (0, r + 1, c + 1, 0))


def _patch_conv(patch, layer):
  """The convolution at one position: (N, kh, kw, C) -> (N, 1, 1, F), as one dot."""
  w = layer["w"]
  out = patch.reshape(patch.shape[0], -1) @ w.reshape(-1, w.shape[-1]) + layer["b"]
  return out[:, None, None]


def _gate(x_here, c2):
  a, b = jnp.split(c2, 2, axis=-1)
  return x_here + a * jax.nn.sigmoid(b)


def _label_bias(op, labels):
  hw = op.params.get("hw")
  return 0.0 if hw is None or labels is None else hw[labels][:, None, None]


def _row_pass(plan, i, caches, xin, labels, width):
  """The ``u`` layers at image row ``i`` (row i >> s at resolution 1/2^s), from the
  rows above in ``caches`` and the canvas ``xin``; returns the updated caches."""
  caches = dict(caches)
  for op in plan.u_ops:
    r, cols = i >> op.scale, width >> op.scale
    p = op.params
    if op.kind == "first_u":  # down-shifted 2x3 of image rows r - 2, r - 1
      y = conv_valid(_rows(xin, jnp.maximum(r - 1, 0), 2), p["w"], p["b"])
      y = jnp.where(r >= 1, y, 0.0)
    elif op.kind == "stride":  # rows 2r - 1, 2r of the finer map
      y = conv_valid(_rows(caches[op.src], 2 * r, 2), p["w"], p["b"], 2)[:, :, :cols]
    elif op.kind == "deconv":  # row r // 2 of the coarser map, then its row r % 2
      half = _rows(caches[op.src], (r >> 1) + 1, 1)[:, :, 1:(cols >> 1) + 1]
      w = p["w"]
      y = shifted_crop(deconv_valid(half, w, p["b"]), 2, cols, "down", w.shape[1])
      y = jax.lax.dynamic_slice_in_dim(y, r & 1, 1, axis=1)
    else:
      x_win = _rows(caches[op.src], r, 2)
      y = conv_valid(concat_elu(x_win), p["WNConv_0"]["w"], p["WNConv_0"]["b"])
      if op.shortcut:
        short = jnp.concatenate([_rows(caches[k], r + 1, 1)[:, :, 1:cols + 1]
                                 for k in op.shortcut], -1)
        y = y + concat_elu(short) @ p["WNDense_0"]["w"] + p["WNDense_0"]["b"]
      caches[op.mid] = _put(caches[op.mid], y, r)
      c2 = conv_valid(concat_elu(_rows(caches[op.mid], r, 2)), p["WNConv_1"]["w"],
                      p["WNConv_1"]["b"]) + _label_bias(op, labels)
      y = _gate(x_win[:, 1:, 1:cols + 1], c2)
    caches[op.out] = _put(caches[op.out], y, r)
  return caches


def _position_pass(plan, i, j, caches, xin, labels):
  """The ``ul`` layers at pixel (i, j) (position (i >> s, j >> s) at resolution
  1/2^s) and the output there; returns the updated caches and the output (N, P)."""
  caches = dict(caches)
  for op in plan.ul_ops:
    r, c = i >> op.scale, j >> op.scale
    p = op.params
    if op.kind == "first_ul":  # 1x3 of row r - 1 (down-shifted) + 2x1 of column c - 1
      above = _patch_conv(_patch(xin, r, c, 1, 3), p["above"])
      left = _patch_conv(_patch(xin, r, c, 2, 1), p["left"])
      y = jnp.where(r >= 1, above, 0.0) + jnp.where(c >= 1, left, 0.0)
    elif op.kind == "stride":  # rows 2r - 1, 2r and columns 2c - 1, 2c of the finer map
      y = _patch_conv(_patch(caches[op.src], 2 * r, 2 * c, 2, 2), p)
    elif op.kind == "deconv":  # position (r // 2, c // 2) of the coarser map
      y = deconv_valid(_patch(caches[op.src], (r >> 1) + 1, (c >> 1) + 1, 1, 1),
                       p["w"], p["b"])
      y = jax.lax.dynamic_slice(y, (0, r & 1, c & 1, 0), (y.shape[0], 1, 1, y.shape[3]))
    else:
      x_win = _patch(caches[op.src], r, c, 2, 2)
      y = _patch_conv(concat_elu(x_win), p["WNConv_0"])
      short = jnp.concatenate([_patch(caches[k], r + 1, c + 1, 1, 1)
                               for k in op.shortcut], -1)
      y = y + concat_elu(short) @ p["WNDense_0"]["w"] + p["WNDense_0"]["b"]
      caches[op.mid] = _put(caches[op.mid], y, r, c)
      c2 = (_patch_conv(concat_elu(_patch(caches[op.mid], r, c, 2, 2)), p["WNConv_1"])
            + _label_bias(op, labels))
      y = _gate(x_win[:, 1:, 1:], c2)
    caches[op.out] = _put(caches[op.out], y, r, c)
  out = jax.nn.elu(y[:, 0, 0]) @ plan.output["w"] + plan.output["b"]
  return caches, out


def sample(net: PixelCNNPP, params, rng, canvas, visible, labels, net_input, draw,
           dtype=jnp.float32, return_outputs: bool = False):
  """Levels (N, H, W, C) drawn pixel by pixel with the cached network.

  ``canvas`` (N, H, W, C) int: the given levels (completion) or zeros; ``visible``
  (N, H, W) bool: the pixels kept from ``canvas``; ``labels`` (N,) or None;
  ``net_input`` maps levels to the network's input; ``draw(key, out)`` maps a key
  and the outputs at one pixel (N, P), float32, to its levels (N, C). Pixel t in
  raster order draws with ``jax.random.fold_in(rng, t)``, as the full sampler does.
  ``dtype``: the compute dtype of the parameters and the maps. With
  ``return_outputs`` also the network's output at every pixel (N, H, W, P) as it was
  when the pixel was drawn."""
  n, h, w, c = canvas.shape
  plan = build_plan(net, normalized(params))
  with_ones = lambda lv: jnp.concatenate(
      [net_input(lv).astype(dtype), jnp.ones((*lv.shape[:3], 1), dtype)], -1)
  xin = jnp.pad(with_ones(canvas), ((0, 0), (1, 0), (1, 1), (0, 0)))
  caches = {k: jnp.zeros((n, (h >> s) + 1, (w >> s) + 2, net.features), dtype)
            for k, s in enumerate(plan.scales)}
  u_maps = {op.mid for op in plan.u_ops} | {op.out for op in plan.u_ops}
  num_out = plan.output["b"].shape[0]
  outs = jnp.zeros((n, h, w, num_out) if return_outputs else (0,), jnp.float32)

  def row(i, state):
    levels, xin, caches, outs = state
    caches = _row_pass(plan, i, caches, xin, labels, w)
    fixed = {k: v for k, v in caches.items() if k in u_maps}

    def pixel(j, state):
      levels, xin, moving, outs = state
      moving, out = _position_pass(plan, i, j, {**fixed, **moving}, xin, labels)
      moving = {k: v for k, v in moving.items() if k not in u_maps}
      out = out.astype(jnp.float32)
      new = draw(jax.random.fold_in(rng, i * w + j), out)
      here = jax.lax.dynamic_slice(levels, (0, i, j, 0), (n, 1, 1, c))
      new = jnp.where(visible[:, i, j, None, None, None], here,
                      new.reshape(n, 1, 1, c).astype(levels.dtype))
      levels = jax.lax.dynamic_update_slice(levels, new, (0, i, j, 0))
      xin = _put(xin, with_ones(new), i, j)
      if return_outputs:
        outs = jax.lax.dynamic_update_slice(outs, out[:, None, None], (0, i, j, 0))
      return levels, xin, moving, outs

    moving = {k: v for k, v in caches.items() if k not in u_maps}
    levels, xin, moving, outs = jax.lax.fori_loop(0, w, pixel,
                                                  (levels, xin, moving, outs))
    return levels, xin, {**fixed, **moving}, outs

  levels, _, _, outs = jax.lax.fori_loop(0, h, row, (canvas, xin, caches, outs))
  return (levels, outs) if return_outputs else levels
