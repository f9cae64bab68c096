"""What a model family provides to the generic loop, and the pieces families share.

A family subclasses ``Trainer``; the loop in ``jaxgen/train.py`` jit-compiles its
``train_step`` and ``eval_step`` over the device mesh and calls the rest on the host.
"""
from __future__ import annotations

import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """The whole training state, one pytree: what checkpoints save and steps donate.

  ``extra`` holds non-gradient state (BatchNorm statistics, codebooks, image pools,
  ...) as a dict; families that have none leave it empty.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  extra: Any = flax.struct.field(default_factory=dict)

  @classmethod
  def create(cls, params, tx: optax.GradientTransformation, extra=None):
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               opt_state=tx.init(params),
               ema_params=jax.tree.map(jnp.copy, params), extra=extra or {})


def learning_rate_schedule(cfg, num_steps: int) -> optax.Schedule:
  """``cfg.schedule`` in constant | cosine | linear, after ``cfg.warmup_steps``."""
  lr, warmup = cfg.learning_rate, cfg.get("warmup_steps", 0)
  kind = cfg.get("schedule", "constant")
  decay_steps = max(num_steps - warmup, 1)
  if kind == "constant":
    decay = optax.constant_schedule(lr)
  elif kind == "cosine":
    decay = optax.cosine_decay_schedule(lr, decay_steps, alpha=cfg.get("end_factor", 0.0))
  elif kind == "linear":
    decay = optax.linear_schedule(lr, lr * cfg.get("end_factor", 0.0), decay_steps)
  else:
    raise ValueError(f"config.optim.schedule={kind!r}; use constant, cosine or linear.")
  if not warmup:
    return decay
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup), decay], boundaries=[warmup])


def make_optimizer(cfg, num_steps: int) -> optax.GradientTransformation:
  """Adam or AdamW with an optional global-norm clip, from ``config.optim``."""
  schedule = learning_rate_schedule(cfg, num_steps)
  name = cfg.get("name", "adam")
  b1, b2, eps = cfg.get("b1", 0.9), cfg.get("b2", 0.999), cfg.get("eps", 1e-8)
  if name == "adam":
    opt = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
  elif name == "adamw":
    opt = optax.adamw(schedule, b1=b1, b2=b2, eps=eps,
                      weight_decay=cfg.get("weight_decay", 1e-4))
  else:
    raise ValueError(f"config.optim.name={name!r}; use adam or adamw.")
  clip = cfg.get("grad_clip_norm", 0.0)
  return optax.chain(optax.clip_by_global_norm(clip), opt) if clip else opt


def apply_gradients(state: TrainState, grads, tx: optax.GradientTransformation,
                    ema_decay: float, **replace):
  """One optimiser step plus the EMA update; returns (new state, gradient norm)."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = optax.incremental_update(params, state.ema_params, 1.0 - ema_decay)
  new = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                      ema_params=ema, **replace)
  return new, optax.tree.norm(grads)


def count_params(module: nn.Module, *example_args, **example_kwargs) -> int:
  """Number of parameters of ``module`` (the 'params' collection only), no FLOPs."""
  shapes = jax.eval_shape(functools.partial(module.init, **example_kwargs),
                          jax.random.key(0), *example_args)
  return sum(x.size for x in jax.tree.leaves(shapes.get("params", {})))


class Trainer:
  """The interface between a model family and the generic loop.

  Subclasses build their networks in ``__init__`` from the config and the shape of
  one preprocessed example, and implement the methods below. ``train_step`` and
  ``eval_step`` must be pure (the loop jit-compiles them over the mesh).
  """

  def __init__(self, config, example_shape: tuple):
    self.config = config
    self.example_shape = tuple(example_shape)

  def networks(self) -> dict[str, tuple[nn.Module, tuple, dict]]:
    """Each network by name, with example positional and keyword inputs to build it
    (for --mode=summary and init)."""
    raise NotImplementedError

  def init_state(self, rng) -> TrainState:
    raise NotImplementedError

  def train_step(self, state, batch: dict, rng) -> tuple[Any, dict]:
    """One update. The metrics must include ``loss``; all are checked for finiteness."""
    raise NotImplementedError

  def eval_step(self, state, batch: dict, rng) -> dict:
    """Sums over the (masked) batch; the loop adds them up over the split."""
    raise NotImplementedError

  def finalize_eval(self, sums: dict) -> dict:
    raise NotImplementedError

  def generate(self, state, rng, num: int):
    """``num`` samples (EMA parameters where the family keeps them) as float images in
    [0, 1], shape (num, H, W, C). Pure, so that sample-based metrics (FID, IS) can
    jit-compile it; class-conditional families draw labels uniformly."""
    raise NotImplementedError

  def visualize(self, state, rng, batch: dict) -> dict:
    """Named images (uint8 HxWxC or HxW) to save; ``samples`` is the main grid."""
    raise NotImplementedError
