"""The compute policy of ``config.compute``: the dtype the networks compute in, the
default matmul precision, and the random-number implementation.

Parameters and optimiser state are float32 whatever the policy: ``Policy.apply``
casts the float parameters and inputs of one network call to the compute dtype and
its float outputs back to float32, so gradients and updates stay float32. ``auto``
picks per platform: bfloat16 on GPU and TPU, float32 on the CPU, and the platform's
default matmul precision. The metric networks (Inception, CLIP, the
MNIST classifier) do not go through the policy and keep ``precision=HIGHEST``.
"""
from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.config_file import ConfigError

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
  if dtype != "float32" and platform == jax.default_backend():
    error = bias_gradient_error(dtype)
    if error > 0.01:
      warnings.warn(
          f"config.compute.dtype={dtype}: XLA's {platform} backend sums {dtype} values "
          f"in {dtype}, so the gradients of biases and normalisation parameters (sums "
          f"over batch and positions) lose precision: a bias's gradient over "
          f"{BIAS_POSITIONS} positions comes out {error:.0%} off. Use "
          f"--config.compute.dtype=float32 on this platform.", stacklevel=2)
  return Policy(DTYPES[dtype], matmul, fields["prng_impl"])


BIAS_SHAPE = (8, 28, 28, 4)  # a batch of 8 MNIST-sized feature maps, NHWC
BIAS_POSITIONS = 8 * 28 * 28


@functools.cache
def bias_gradient_error(dtype: str) -> float:
  """The relative error, on JAX's default backend, of the gradient of a bias added
  to ``BIAS_POSITIONS`` activations in ``dtype``: JAX transposes the bias's broadcast
  into a sum in that dtype, which XLA's CPU backend accumulates in it when it sums a
  rank-4 array over three axes (a bfloat16 sum of many small terms stalls at 256),
  though not a rank-2 one."""
  x = jnp.full(BIAS_SHAPE, 0.01, DTYPES[dtype])
  grad = jax.jit(jax.grad(lambda b: jnp.sum(
      jnp.tanh(x + b.astype(x.dtype)).astype(jnp.float32))))(jnp.zeros(BIAS_SHAPE[-1]))
  exact = BIAS_POSITIONS * (1 - np.tanh(0.01) ** 2)
  return float(np.max(np.abs(np.asarray(grad) - exact)) / exact)


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
