"""The compute policy of ``config.compute``: the dtype the networks compute in, the
default matmul precision, and the random-number implementation.

Parameters and optimiser state are float32 whatever the policy: ``Policy.apply``
casts the float parameters and inputs of one network call to the compute dtype and
its float outputs back to float32, so gradients and updates stay float32. ``auto``
picks per platform: bfloat16 on GPU and TPU, float32 on the CPU, and the platform's
default matmul precision. The metric networks (Inception, CLIP, the
MNIST classifier) do not go through the policy and keep ``precision=HIGHEST``.

A backend may sum low-precision values in their own dtype (XLA's CPU backend sums
bfloat16 in bfloat16: a bias's gradient, the sum of its broadcast's cotangent, stalls
at 256). ``accumulate_in_float32`` rewrites a function's sums to accumulate in float32
whatever the backend, and its dots and convolutions too where the backend would
accumulate those in low precision (``products_accumulate_low``: XLA's CPU backend
already accumulates them in float32, as GPUs and TPUs do, so asking again for a float32
result changes no number there); the training loop compiles its step through
``Policy.accumulate``.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex

from jaxgen.errors import ConfigError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
MATMUL = ("default", "high", "highest")
PRNG_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")
DEFAULTS = {"dtype": "auto", "matmul_precision": "auto", "prng_impl": "threefry2x32"}


def block(**changes):
  """``config.compute`` with its defaults (configs/common.py uses this)."""
  import ml_collections
  unknown = sorted(set(changes) - set(DEFAULTS))
  if unknown:
    raise KeyError(f"config.compute has no field(s) {unknown}; its fields are "
                   f"{', '.join(DEFAULTS)}")
  return ml_collections.ConfigDict({**DEFAULTS, **changes})


@dataclasses.dataclass(frozen=True)
class Policy:
  compute_dtype: object = jnp.float32
  matmul_precision: str | None = None  # None: leave JAX's default
  prng_impl: str = "threefry2x32"

  @property
  def casts(self) -> bool:
    return self.compute_dtype != jnp.float32

  def apply(self, module, variables, *args, **kwargs):
    """``module.apply(variables, *args, **kwargs)`` in the compute dtype. Float32
    is the identity (no casts), so CPU runs are unchanged bit for bit."""
    if not self.casts:
      return module.apply(variables, *args, **kwargs)
    keep = {k: kwargs.pop(k) for k in ("rngs", "mutable", "method") if k in kwargs}
    out = module.apply(cast(variables, self.compute_dtype),
                       *cast(args, self.compute_dtype),
                       **cast(kwargs, self.compute_dtype), **keep)
    return cast(out, jnp.float32)

  def accumulate(self, fn):
    """``fn`` as the loop compiles it under this policy: ``accumulate_in_float32(fn)``
    for a low-precision compute dtype, ``fn`` itself for float32 (unchanged)."""
    return accumulate_in_float32(fn) if self.casts else fn

  def key(self, seed: int):
    return jax.random.key(seed, impl=self.prng_impl)


def cast(tree, dtype):
  """The floating arrays of ``tree`` as ``dtype``; everything else as it is."""
  def one(x):
    if isinstance(x, (jax.Array, np.ndarray)) and jnp.issubdtype(x.dtype, jnp.floating):
      return x.astype(dtype)
    return x
  return jax.tree.map(one, tree)


def resolve(config, platform: str | None = None, dtypes=tuple(DTYPES)) -> Policy:
  """The policy of ``config.compute`` on ``platform`` (default: JAX's backend), for a
  family that computes in ``dtypes``: ``auto`` falls back to float32 where the
  platform's choice is not among them, an explicit other dtype is an error. A config
  without the block (an older run's config.json) gets the defaults."""
  fields = {**DEFAULTS, **dict(config.get("compute") or {})}
  problems = check_block(fields)
  if problems:
    raise ConfigError(" ".join(problems))
  platform = platform or jax.default_backend()
  accelerator = platform in ("gpu", "cuda", "rocm", "tpu")
  dtype = fields["dtype"]
  if dtype == "auto":
    dtype = "bfloat16" if accelerator and "bfloat16" in dtypes else "float32"
  elif dtype not in dtypes:
    raise ConfigError(
        f"config.compute.dtype={dtype!r}: the {config.get('family')} family computes "
        f"in {', '.join(dtypes)} only; use --config.compute.dtype=float32 (or auto).")
  matmul = fields["matmul_precision"]
  if matmul == "auto":
    matmul = None  # the platform's default
  return Policy(DTYPES[dtype], matmul, fields["prng_impl"])


BIAS_SHAPE = (8, 28, 28, 4)  # a batch of 8 MNIST-sized feature maps, NHWC
BIAS_POSITIONS = 8 * 28 * 28


@functools.cache
def bias_gradient_error(dtype: str, accumulated: bool = False) -> float:
  """The relative error, on JAX's default backend, of the gradient of a bias added
  to ``BIAS_POSITIONS`` activations in ``dtype``: JAX transposes the bias's broadcast
  into a sum in that dtype, which XLA's CPU backend accumulates in it when it sums a
  rank-4 array over three axes (a bfloat16 sum of many small terms stalls at 256),
  though not a rank-2 one. ``accumulated``: the gradient through
  ``accumulate_in_float32``, as the training loop computes it."""
  x = jnp.full(BIAS_SHAPE, 0.01, DTYPES[dtype])
  grad = jax.grad(lambda b: jnp.sum(
      jnp.tanh(x + b.astype(x.dtype)).astype(jnp.float32)))
  grad = jax.jit(accumulate_in_float32(grad) if accumulated else grad)
  exact = BIAS_POSITIONS * (1 - np.tanh(0.01) ** 2)
  return float(np.max(np.abs(np.asarray(grad(jnp.zeros(BIAS_SHAPE[-1]))) - exact)) /
               exact)


LOW_FLOATS = frozenset(map(jnp.dtype, (jnp.bfloat16, jnp.float16)))
SUMS = ("reduce_sum", "cumsum", "reduce_window_sum")  # rebound on float32 operands
PRODUCTS = ("dot_general", "conv_general_dilated")  # rebound to return float32
PRODUCT_TERMS = 4096  # the probe's dot length (exact in bfloat16 and float16)


@functools.cache
def products_accumulate_low(dtype: str, backend: str | None = None) -> bool:
  """Whether ``backend`` (default: JAX's) accumulates a dot or a convolution's weight
  gradient of ``dtype`` values in that dtype: a dot of ``PRODUCT_TERMS`` ones, and the
  centre tap's gradient of a 3x3 convolution over ``BIAS_POSITIONS`` positions of
  ones, are exact when the backend accumulates in float32 (and stall at 256 in
  bfloat16 when it does not)."""
  low = DTYPES[dtype]
  device = jax.devices(backend)[0]
  with jax.ensure_compile_time_eval(), jax.default_device(device):
    ones = jnp.ones((1, PRODUCT_TERMS), low)
    dot = jnp.dot(ones, ones.T)[0, 0]
    images = jnp.ones(BIAS_SHAPE[:-1] + (1,), low)
    conv = lambda w: jnp.sum(lax.conv_general_dilated(
        images, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    ).astype(jnp.float32))
    tap = jax.grad(conv)(jnp.ones((3, 3, 1, 1), low))[1, 1, 0, 0]
    return not (float(dot) == PRODUCT_TERMS and float(tap) == BIAS_POSITIONS)


def accumulate_in_float32(fn, products=None):
  """``fn`` with its sums of bfloat16 or float16 values accumulated in float32, on any
  backend: the same arguments (arrays), outputs and output dtypes. Its dots and
  convolutions too for the dtypes in ``products`` (default: those that JAX's backend
  would accumulate in low precision, ``products_accumulate_low``). Its jaxpr is
  rewritten (``widen_sums``) and evaluated in the caller's trace, so an enclosing
  ``jax.jit`` keeps its shardings and donations."""
  if products is None:
    products = frozenset(d for d in LOW_FLOATS if products_accumulate_low(d.name))
  products = frozenset(map(jnp.dtype, products))

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args, **kwargs)
    outs = jex.jaxpr_as_fun(widen_sums(closed, products=products))(
        *jax.tree.leaves((args, kwargs)))
    return jax.tree.unflatten(jax.tree.structure(shapes), outs)
  return wrapped


def widen_sums(jaxpr, memo=None, products=frozenset()):
  """``jaxpr`` (a Jaxpr or ClosedJaxpr) with each low-precision ``SUMS`` eqn and
  scatter-add, and each ``PRODUCTS`` eqn of a dtype in ``products``, replaced by the
  same computation accumulated in float32 and converted back, in the sub-jaxprs of
  its eqns' params too (jit, cond, scan, while, checkpoint, custom_jvp/vjp calls);
  what is unchanged stays the same object."""
  memo = {} if memo is None else memo
  if id(jaxpr) in memo:
    return memo[id(jaxpr)][1]
  if isinstance(jaxpr, jex.ClosedJaxpr):
    inner = widen_sums(jaxpr.jaxpr, memo, products)
    new = jaxpr if inner is jaxpr.jaxpr else jaxpr.replace(jaxpr=inner)
  else:
    eqns = []
    for eqn in jaxpr.eqns:
      params = {k: _widen_param(v, memo, products) for k, v in eqn.params.items()}
      if any(params[k] is not v for k, v in eqn.params.items()):
        eqn = eqn.replace(params=params)
      eqns.extend(_in_float32(eqn, products) or [eqn])
    same = len(eqns) == len(jaxpr.eqns) and all(map(lambda a, b: a is b, eqns,
                                                    jaxpr.eqns))
    new = jaxpr if same else jaxpr.replace(eqns=eqns)
  memo[id(jaxpr)] = (jaxpr, new)  # (the original kept alive: its id stays its own)
  return new


def _widen_param(value, memo, products):
  if isinstance(value, (jex.Jaxpr, jex.ClosedJaxpr)):
    return widen_sums(value, memo, products)
  if isinstance(value, tuple):  # cond's branches
    new = tuple(_widen_param(v, memo, products) for v in value)
    return value if all(map(lambda a, b: a is b, new, value)) else new
  return value


def _low(x) -> bool:
  return getattr(x, "dtype", None) in LOW_FLOATS


def _in_float32(eqn, products):
  """The eqns computing ``eqn``'s outputs with float32 accumulation, traced from its
  operands' types and spliced between its own in- and outvars; None where it sums
  nothing in low precision (products: of a dtype in ``products``) or the rewrite does
  not trace."""
  name, params = eqn.primitive.name, eqn.params
  up = lambda x: x.astype(jnp.float32) if _low(x) else x
  if not any(_low(v.aval) for v in eqn.invars):
    return None
  if name in SUMS:
    compute = lambda *xs: eqn.primitive.bind(*map(up, xs), **params)
  elif name == "scatter-add":  # its update_jaxpr adds in the operand's dtype
    compute = lambda op, idx, upd: lax.scatter_add(
        up(op), idx, up(upd), params["dimension_numbers"], mode=params["mode"],
        indices_are_sorted=params["indices_are_sorted"],
        unique_indices=params["unique_indices"])
  elif (name in PRODUCTS and params.get("preferred_element_type") != jnp.float32
        and any(v.aval.dtype in products for v in eqn.invars)):
    compute = lambda *xs: eqn.primitive.bind(
        *xs, **{**params, "preferred_element_type": jnp.dtype(jnp.float32)})
  else:
    return None

  def rewritten(*xs):
    out = compute(*xs)
    out = out if eqn.primitive.multiple_results else [out]
    return [y.astype(v.aval.dtype) for y, v in zip(out, eqn.outvars)]

  try:
    small = jax.make_jaxpr(rewritten)(*[jax.ShapeDtypeStruct(
        v.aval.shape, v.aval.dtype, weak_type=v.aval.weak_type) for v in eqn.invars])
  except Exception:  # a primitive this does not know how to rebind: left as it is
    return None
  if small.consts or [(v.aval.shape, v.aval.dtype) for v in small.jaxpr.outvars] != [
      (v.aval.shape, v.aval.dtype) for v in eqn.outvars]:
    return None
  rename = dict(zip(small.jaxpr.invars, eqn.invars))
  rename.update(zip(small.jaxpr.outvars, eqn.outvars))
  swap = lambda vs: [rename.get(v, v) if isinstance(v, jex.Var) else v for v in vs]
  return [e.replace(invars=swap(e.invars), outvars=swap(e.outvars),
                    source_info=eqn.source_info, ctx=eqn.ctx) for e in small.jaxpr.eqns]


def check_block(fields: dict) -> list[str]:
  """One line per bad field of ``config.compute``."""
  problems = []
  unknown = sorted(set(fields) - set(DEFAULTS))
  if unknown:
    problems.append(f"config.compute has unknown field(s) {unknown}; its fields are "
                    f"{', '.join(DEFAULTS)}.")
  for name, allowed in (("dtype", ("auto", *DTYPES)),
                        ("matmul_precision", ("auto", *MATMUL)),
                        ("prng_impl", PRNG_IMPLS)):
    if fields.get(name) not in allowed:
      problems.append(f"config.compute.{name} must be one of {', '.join(allowed)}; got "
                      f"{fields.get(name)!r}.")
  return problems


def matmul_context(policy: Policy):
  """The default matmul precision for tracing under ``policy``."""
  import contextlib
  if policy.matmul_precision is None:
    return contextlib.nullcontext()
  return jax.default_matmul_precision(policy.matmul_precision)
