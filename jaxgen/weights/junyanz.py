"""The generators of junyanz/pytorch-CycleGAN-and-pix2pix (Pix2Pix's U-Nets,
CycleGAN's ResNets) from their PyTorch state dicts (``latest_net_G.pth``).

``load_generator`` reads one through the restricted reader of torch_pickle.py (no
PyTorch needed, no code run), checks that it holds the architecture asked for, and
maps its keys onto the Flax generators of jaxgen/models/image_to_image.py: Conv2d
weights (O, I, kh, kw) -> (kh, kw, I, O), ConvTranspose2d weights (I, O, kh, kw) ->
flipped (kh, kw, I, O), BatchNorm weight / bias / running_mean / running_var -> scale
/ bias / mean / var. Instance norms have no weights (affine=False); the running
statistics that files written by old versions carry for them are ignored, as the
reference's test script drops them.
"""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import UserError
from jaxgen.models import image_to_image as nets
from jaxgen.weights import torch_pickle

ARCHS = ("unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks")


class GeneratorFileError(UserError):
  """A generator file that does not hold the architecture asked for."""


def _conv(w):
  return np.ascontiguousarray(np.asarray(w, np.float32).transpose(2, 3, 1, 0))


def _conv_t(w):
  return np.ascontiguousarray(np.asarray(w, np.float32).transpose(2, 3, 0, 1)[::-1,
                                                                              ::-1])


def describe(state: dict) -> str:
  """The architecture a state dict's keys and shapes say it holds."""
  if "model.model.0.weight" in state:
    depth, seq = 1, "model.model.1.model"
    while f"{seq}.1.weight" in state:  # level ``depth``'s down convolution
      depth, seq = depth + 1, seq + ".3.model"
    return f"unet_{2 ** depth} (a U-Net of {depth} levels)"
  blocks = {int(m.group(1)) for k in state
            for m in [re.match(r"model\.(\d+)\.conv_block\.", k)] if m}
  if "model.1.weight" in state and blocks:
    return f"resnet_{len(blocks)}blocks (a ResNet generator of {len(blocks)} blocks)"
  return "no generator of junyanz's networks.py (keys " + ", ".join(
      list(state)[:4]) + ", ...)"


def _strip(state: dict) -> dict:
  """Without DataParallel's ``module.`` prefix."""
  if all(k.startswith("module.") for k in state):
    return {k[len("module."):]: v for k, v in state.items()}
  return dict(state)


def _take(state, key, used):
  if key not in state:
    raise GeneratorFileError(f"the entry {key!r} is missing")
  used.add(key)
  return state[key]


def _batch_norm(state, prefix, used):
  get = lambda name: np.asarray(_take(state, f"{prefix}.{name}", used), np.float32)
  used.add(f"{prefix}.num_batches_tracked")
  return ({"bn": {"scale": get("weight"), "bias": get("bias")}},
          {"bn": {"mean": get("running_mean"), "var": get("running_var")}})


def unet_variables(state: dict, num_downs: int):
  """(Flax variables of ``UNetGenerator``, ngf, input_nc, output_nc) from a U-Net
  state dict with BatchNorm (the Pix2Pix releases)."""
  used, params, stats = set(), {}, {}
  prefixes, seq = ["model.model"], "model.model.1.model"  # each level's Sequential
  for _ in range(1, num_downs):
    prefixes.append(seq)
    seq += ".3.model"
  for i, p in enumerate(prefixes):
    if i == 0:
      params["down_0"] = {"kernel": _conv(_take(state, f"{p}.0.weight", used))}
      params["up_0"] = {"kernel": _conv_t(_take(state, f"{p}.3.weight", used)),
                        "bias": np.asarray(_take(state, f"{p}.3.bias", used))}
    elif i < num_downs - 1:
      params[f"down_{i}"] = {"kernel": _conv(_take(state, f"{p}.1.weight", used))}
      params[f"down_norm_{i}"], stats[f"down_norm_{i}"] = _batch_norm(state, f"{p}.2",
                                                                      used)
      params[f"up_{i}"] = {"kernel": _conv_t(_take(state, f"{p}.5.weight", used))}
      params[f"up_norm_{i}"], stats[f"up_norm_{i}"] = _batch_norm(state, f"{p}.6", used)
    else:  # innermost: down conv, up conv, up norm
      params[f"down_{i}"] = {"kernel": _conv(_take(state, f"{p}.1.weight", used))}
      params[f"up_{i}"] = {"kernel": _conv_t(_take(state, f"{p}.3.weight", used))}
      params[f"up_norm_{i}"], stats[f"up_norm_{i}"] = _batch_norm(state, f"{p}.4", used)
  _check_all_used(state, used)
  ngf = params["down_0"]["kernel"].shape[-1]
  return ({"params": params, "batch_stats": stats}, ngf,
          params["down_0"]["kernel"].shape[2], params["up_0"]["kernel"].shape[-1])


def resnet_variables(state: dict, n_blocks: int):
  """(Flax variables of ``ResnetGenerator``, ngf, input_nc, output_nc, dropout) from
  a ResNet state dict with instance norm (the CycleGAN releases)."""
  used = {k for k in state if k.endswith(("running_mean", "running_var",
                                          "num_batches_tracked"))}
  conv = lambda i: {"kernel": _conv(_take(state, f"model.{i}.weight", used)),
                    "bias": np.asarray(_take(state, f"model.{i}.bias", used))}
  params = {"conv_in": conv(1), "down_0": conv(4), "down_1": conv(7)}
  dropout = "model.10.conv_block.6.weight" in state
  second = 6 if dropout else 5
  for b in range(n_blocks):
    block = lambda j: {"kernel": _conv(_take(state, f"model.{10 + b}.conv_block.{j}"
                                                    f".weight", used)),
                       "bias": np.asarray(_take(state, f"model.{10 + b}.conv_block.{j}"
                                                       f".bias", used))}
    params[f"block_{b}"] = {"conv_0": block(1), "conv_1": block(second)}
  for u, i in enumerate((10 + n_blocks, 13 + n_blocks)):
    params[f"up_{u}"] = {"kernel": _conv_t(_take(state, f"model.{i}.weight", used)),
                         "bias": np.asarray(_take(state, f"model.{i}.bias", used))}
  params["conv_out"] = conv(17 + n_blocks)
  _check_all_used(state, used)
  k = params["conv_in"]["kernel"]
  return ({"params": params}, k.shape[-1], k.shape[2],
          params["conv_out"]["kernel"].shape[-1], dropout)


def _check_all_used(state, used):
  left = sorted(set(state) - used)
  if left:
    raise GeneratorFileError(f"it has entries this architecture does not use: "
                             f"{', '.join(left[:5])}{', ...' if len(left) > 5 else ''}")


def load_generator(path, arch: str):
  """(Flax module, variables) of the official generator file ``path``, which must
  hold ``arch`` (unet_256 / unet_128 / resnet_9blocks / resnet_6blocks)."""
  if arch not in ARCHS:
    raise ValueError(f"--arch={arch!r}; use one of {', '.join(ARCHS)}.")
  state = _strip(torch_pickle.load_state_dict(path))
  held = describe(state)
  if not held.startswith(arch + " "):
    raise GeneratorFileError(
        f"{path} holds {held}, not {arch}: pass --arch={held.split()[0]} if it is a "
        f"generator of that architecture, or the file of a {arch} generator.")
  try:
    if arch.startswith("unet"):
      depth = nets.UNET_DEPTHS[arch]
      variables, ngf, _, out_nc = unet_variables(state, depth)
      module = nets.UNetGenerator(out_nc, depth, ngf, "batch", use_dropout=True)
    else:
      blocks = nets.RESNET_BLOCKS[arch]
      variables, ngf, _, out_nc, dropout = resnet_variables(state, blocks)
      module = nets.ResnetGenerator(out_nc, ngf, blocks, "instance", dropout)
  except GeneratorFileError as e:
    raise GeneratorFileError(f"{path} is not a {arch} generator of junyanz's "
                             f"networks.py: {e}.") from None
  _check_shapes(module, variables, path)
  return module, jax.tree.map(jnp.asarray, variables)


def input_channels(variables) -> int:
  p = variables["params"]
  return (p["conv_in"] if "conv_in" in p else p["down_0"])["kernel"].shape[2]


def _check_shapes(module, variables, path):
  size = 2 ** module.num_downs if isinstance(module, nets.UNetGenerator) else 8
  want = jax.eval_shape(module.init, jax.random.key(0),
                        jnp.zeros((1, size, size, input_channels(variables))))
  shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), dict(tree))
  if shapes(variables) != shapes(want):
    raise GeneratorFileError(f"{path}: the tensor shapes do not fit one "
                             f"{type(module).__name__} (layers of inconsistent widths).")
