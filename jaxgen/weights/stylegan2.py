"""Official StyleGAN2(-ADA) network pickles (NVlabs' stylegan2-ada-pytorch ``.pkl``
files) read without PyTorch and without running any code from the file, and mapped
onto jaxgen's Flax networks (jaxgen/families/stylegan2/networks.py).

The training loop pickles a dict whose ``G``, ``D`` and ``G_ema`` are
``torch_utils.persistence`` objects: each pickles as a call of
``_reconstruct_persistent_obj(meta)`` where ``meta`` carries the class's *source code*
(``module_src``), which the reference executes on load. Here a restricted unpickler
resolves only the names such a file needs (that function, tensors and their storages,
ordered dicts, numpy scalars, EasyDicts) to inert data builders: ``meta['state']`` (the
module's ``__dict__``: parameters, buffers, child modules and plain attributes) is
kept, the source is never looked at. Tensors are read with jaxgen/weights/torch_pickle.py
(each storage is an embedded legacy ``torch.save``).

* ``load_network_pkl(path)`` -> {name: ``PersistentModule``} for the networks found.
* ``PersistentModule.state_dict()``: "mapping.fc0.weight" -> array, buffers included
  (``mapping.w_avg``, ``...noise_const``).
* ``generator_from_pickle`` / ``discriminator_from_pickle``: the Flax module built with
  the pickled network's hyper-parameters and its variables (``params``, and for G the
  ``buffers`` collection).
"""
from __future__ import annotations

import collections
import dataclasses
import io
import math
import os
import pickle

import numpy as np

from jaxgen import weights
from jaxgen.families.stylegan2 import networks as sg
from jaxgen.weights import torch_pickle as tp

NETWORKS = ("G", "D", "G_ema")


@dataclasses.dataclass
class PersistentModule:
  """One pickled ``torch.nn.Module`` of a persistence class, as data."""
  class_name: str
  state: dict

  @property
  def parameters(self) -> dict:
    return dict(self.state.get("_parameters") or {})

  @property
  def buffers(self) -> dict:
    return dict(self.state.get("_buffers") or {})

  @property
  def children(self) -> dict:
    return dict(self.state.get("_modules") or {})

  def attr(self, name, default=None):
    return self.state.get(name, default)

  def child(self, path: str) -> "PersistentModule":
    node = self
    for part in path.split("."):
      node = node.children[part]
    return node

  def state_dict(self, prefix: str = "") -> dict:
    """Parameters and buffers by dotted name, as numpy arrays (None entries, such as
    a missing bias, are left out)."""
    out = {}
    for name, value in {**self.parameters, **self.buffers}.items():
      if value is not None:
        out[prefix + name] = _array(value)
    for name, child in self.children.items():
      if isinstance(child, PersistentModule):
        out.update(child.state_dict(f"{prefix}{name}."))
    return out


def _array(value):
  if isinstance(value, tp.Tensor):
    return value.to_numpy()
  return np.asarray(value)


class _Reconstructed:
  """What ``_reconstruct_persistent_obj(meta)`` builds here: the meta's class name and
  module state only."""

  def __init__(self, meta):
    if not isinstance(meta, dict) or meta.get("type") != "class":
      raise pickle.UnpicklingError("a persistent object of an unknown kind")
    self.class_name = str(meta.get("class_name"))
    self.state = meta.get("state") or {}


def _load_from_bytes(data):
  """A storage: the embedded legacy ``torch.save`` of it."""
  storage = tp.load_legacy(io.BytesIO(data))
  if not isinstance(storage, tp.Storage):
    raise pickle.UnpicklingError("embedded bytes that are not a tensor storage")
  return storage


def _numpy_scalar(dtype, data=None):
  if not isinstance(dtype, np.dtype) or dtype.hasobject:
    raise pickle.UnpicklingError("a numpy scalar of a non-numeric type")
  return np.frombuffer(data, dtype)[0]


def _numpy_dtype(*args):
  dtype = np.dtype(*args)
  if dtype.hasobject:
    raise pickle.UnpicklingError("a numpy object dtype")
  return dtype


def _torch_dtype(name):
  return f"torch.{name}"


class _NetworkUnpickler(pickle.Unpickler):
  _ALLOWED = {
      ("torch_utils.persistence", "_reconstruct_persistent_obj"): _Reconstructed,
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("torch._utils", "_rebuild_tensor_v2"): tp.rebuild_tensor_v2,
      ("torch._utils", "_rebuild_parameter"): tp.rebuild_parameter,
      ("torch._utils", "_rebuild_parameter_with_state"):
          lambda data, requires_grad, hooks, state: data,
      ("torch.storage", "_load_from_bytes"): _load_from_bytes,
      ("numpy.core.multiarray", "scalar"): _numpy_scalar,
      ("numpy._core.multiarray", "scalar"): _numpy_scalar,
      ("numpy", "dtype"): _numpy_dtype,
      ("dnnlib.util", "EasyDict"): dict,
      ("builtins", "set"): set,
  }

  def find_class(self, module, name):
    if (module, name) in self._ALLOWED:
      return self._ALLOWED[(module, name)]
    if module == "torch" and name in ("float32", "float16", "float64", "int64",
                                      "int32", "uint8", "bool"):
      return _torch_dtype(name)
    raise pickle.UnpicklingError(
        f"it refers to {module}.{name}, which an NVlabs network pickle read as data "
        f"does not need (no code from the file is run)")

  def persistent_load(self, pid):
    raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.100}")


def _plain(obj):
  if isinstance(obj, _Reconstructed):
    return PersistentModule(obj.class_name, _plain(obj.state))
  if isinstance(obj, tp.Tensor):
    return obj
  if isinstance(obj, dict):
    return type(obj)((k, _plain(v)) for k, v in obj.items()) if isinstance(
        obj, collections.OrderedDict) else {k: _plain(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_plain(v) for v in obj)
  return obj


def load_network_pkl(path) -> dict:
  """The networks (``G``, ``D``, ``G_ema``) of an NVlabs StyleGAN2(-ADA) pickle, as
  ``PersistentModule``s; other entries of the snapshot dict are dropped."""
  try:
    with open(path, "rb") as f:
      data = _NetworkUnpickler(f).load()
  except (pickle.UnpicklingError, EOFError, tp.TorchPickleError, ValueError, TypeError,
          KeyError, AttributeError, IndexError) as e:
    raise tp.TorchPickleError(
        f"{path} is not a readable NVlabs network pickle ({type(e).__name__}: {e})."
    ) from e
  if not isinstance(data, dict) or not any(k in data for k in NETWORKS):
    raise tp.TorchPickleError(f"{path} holds no G, D or G_ema network (keys: "
                              f"{list(data) if isinstance(data, dict) else type(data)}).")
  return {k: _plain(data[k]) for k in NETWORKS if data.get(k) is not None}


def _nest(flat: dict) -> dict:
  out = {}
  for key, value in flat.items():
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = np.asarray(value, np.float32)
  return out


def _split(state: dict):
  """(params, buffers) from a flat state dict: w_avg and noise_const are buffers,
  the FIR filters (resample_filter) are constants of the Flax modules and dropped."""
  params, buffers = {}, {}
  for key, value in state.items():
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "resample_filter":
      continue
    (buffers if leaf in ("w_avg", "noise_const") else params)[key] = value
  return _nest(params), _nest(buffers)


def _conv_clamp(module: PersistentModule, path: str):
  clamp = module.child(path).attr("conv_clamp")
  return None if clamp is None else float(clamp)


def _channel_base_max(channels: dict):
  """(channel_base, channel_max) reproducing {res: channels} as min(base // res, max)."""
  cmax = max(channels.values())
  for base in sorted({c * r for r, c in channels.items()}):
    if all(min(base // r, cmax) == c for r, c in channels.items()):
      return base, cmax
  raise ValueError(f"The pickled channels {channels} follow no min(base // res, max).")


def generator_from_pickle(net: PersistentModule):
  """(``jaxgen.families.stylegan2.networks.Generator``, variables) of a pickled ``G`` / ``G_ema``."""
  if not net.class_name.endswith("Generator"):
    raise ValueError(f"{net.class_name} is not a StyleGAN2 generator.")
  synthesis, mapping = net.child("synthesis"), net.child("mapping")
  res = int(net.attr("img_resolution"))
  blocks = {2 ** i: synthesis.child(f"b{2 ** i}") for i in range(2, int(math.log2(res)) + 1)}
  channels = {r: int(_array(b.child("conv1").parameters["weight"]).shape[0])
              for r, b in blocks.items()}
  base, cmax = _channel_base_max(channels)
  module = sg.Generator(
      z_dim=int(net.attr("z_dim")), c_dim=int(net.attr("c_dim")),
      w_dim=int(net.attr("w_dim")), resolution=res,
      img_channels=int(net.attr("img_channels")),
      mapping_layers=int(mapping.attr("num_layers")),
      mapping_lr_multiplier=float(mapping.child("fc0").attr("bias_gain")),
      channel_base=base, channel_max=cmax,
      architecture=str(blocks[res].attr("architecture")),
      conv_clamp=_conv_clamp(synthesis, f"b{res}.conv1"))
  params, buffers = _split(net.state_dict())
  return module, {"params": params, sg.BUFFERS: buffers}


def discriminator_from_pickle(net: PersistentModule):
  """(``jaxgen.families.stylegan2.networks.Discriminator``, variables) of a pickled ``D``."""
  if not net.class_name.endswith("Discriminator"):
    raise ValueError(f"{net.class_name} is not a StyleGAN2 discriminator.")
  res = int(net.attr("img_resolution"))
  channels = {}
  for i in range(3, int(math.log2(res)) + 1):
    block = net.child(f"b{2 ** i}")
    channels[2 ** i] = int(_array(block.child("conv0").parameters["weight"]).shape[0])
  epilogue = net.child("b4")
  channels[4] = int(_array(epilogue.child("conv").parameters["weight"]).shape[0])
  base, cmax = _channel_base_max(channels)
  c_dim = int(net.attr("c_dim"))
  mbstd = epilogue.children.get("mbstd")
  module = sg.Discriminator(
      c_dim=c_dim, resolution=res, img_channels=int(net.attr("img_channels")),
      architecture=str(epilogue.attr("architecture")), channel_base=base,
      channel_max=cmax, conv_clamp=_conv_clamp(epilogue, "conv"),
      cmap_dim=int(epilogue.attr("cmap_dim")) or None,
      mbstd_group_size=(None if mbstd is None else mbstd.attr("group_size")),
      mbstd_num_channels=(0 if mbstd is None else int(mbstd.attr("num_channels"))),
      mapping_layers=(int(net.child("mapping").attr("num_layers")) if c_dim else 8))
  params, _ = _split(net.state_dict())
  return module, {"params": params}


def load_official(name_or_path: str, network: str = "G_ema"):
  """(module, variables) of ``network`` in a known official pickle (a name of
  jaxgen/weights/__init__.py's KNOWN: stylegan2_ada_ffhq, stylegan2_ada_cifar10) or a
  local .pkl path."""
  path = (name_or_path if os.path.exists(name_or_path)
          else weights.resolve(name_or_path))
  nets = load_network_pkl(path)
  if network not in nets:
    raise KeyError(f"{path} has no {network}; it has {sorted(nets)}.")
  build = discriminator_from_pickle if network == "D" else generator_from_pickle
  return build(nets[network])


def sample(module, variables, seeds, labels=None, truncation_psi: float = 1.0,
           truncation_cutoff=None, noise_mode: str = "const"):
  """Images in [0, 1] (N, R, R, C) of a pickled generator for the reference's seeds
  (z = np.random.RandomState(seed).randn(z_dim), as its generate.py draws them)."""
  import jax
  import jax.numpy as jnp
  z = np.stack([np.random.RandomState(s).randn(module.z_dim) for s in seeds])
  c = None
  if module.c_dim:
    if labels is None:
      raise ValueError(f"This generator is conditional ({module.c_dim} classes): pass "
                       f"labels.")
    c = jax.nn.one_hot(jnp.asarray(labels), module.c_dim)
  img = module.apply(variables, jnp.asarray(z, jnp.float32), c, truncation_psi,
                     truncation_cutoff, noise_mode=noise_mode,
                     rngs={"noise": jax.random.key(0)} if noise_mode == "random"
                     else None)
  return jnp.clip((img + 1) / 2, 0.0, 1.0)
