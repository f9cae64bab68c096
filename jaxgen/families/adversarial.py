"""The shared core of the adversarial families GAN (with DCGAN, cGAN and AC-GAN),
Pix2Pix and CycleGAN: several players in one ``TrainState``.

The state of N players keeps one entry per player name in ``params``, in
``opt_state`` (each player its own optax transformation) and in
``extra["batch_stats"]`` (empty for a player without BatchNorm), and in ``ema_params``
an exponential moving average of one named player (the generator), or ``{}``.

* ``init_players``: that state, from each player's ``init``.
* ``base.apply_player_gradients``: the optimiser step of one player (in base.py,
  beside the single-optimiser ``apply_gradients``).
* ``apply_module``: a player's forward pass with its BatchNorm statistics, which
  change only in train mode; ``replace_stats`` puts new statistics into the state.
* ``update_ema``: the moving average of the named player.
* ``lerp`` / ``slerp`` / ``interpolate_latents``: paths between latents.

StyleGAN2 keys ``params`` and ``opt_state`` by player in the same way and steps them
with ``base.apply_player_gradients``, but builds its state itself and uses nothing of
this module: its players have no BatchNorm statistics (``extra`` holds the
generator's buffers and ADA's state) and its G_ema follows the reference's ramp-up
(jaxgen/families/stylegan2/trainer.py).
"""
from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxgen import precision
from jaxgen.families.base import TrainState

STATS = "batch_stats"  # the key of the players' BatchNorm statistics in state.extra


def init_players(networks: Mapping[str, tuple[nn.Module, tuple, dict]], rng,
                 tx: Mapping[str, optax.GradientTransformation],
                 ema_player: str | None = None,
                 extra: dict | None = None) -> TrainState:
  """The state of the players ``networks`` names (name -> (module, example args,
  example kwargs), as ``Trainer.networks`` returns them): each initialised with its
  own key of ``jax.random.split(rng, len(networks))`` in the order of ``networks``,
  its optimiser state from ``tx[name]``, step 0, ``ema_params`` a copy of the params
  of ``ema_player`` (``{}`` without one) and ``extra`` (default ``{}``) plus the
  players' BatchNorm statistics under ``STATS``."""
  missing = set(networks) - set(tx)
  if missing:
    raise ValueError(f"No optimiser for the players {sorted(missing)}.")
  if ema_player is not None and ema_player not in networks:
    raise ValueError(f"ema_player={ema_player!r} is none of {list(networks)}.")
  params, stats = {}, {}
  keys = jax.random.split(rng, len(networks))
  for (name, (module, args, kwargs)), key in zip(networks.items(), keys):
    variables = module.init(key, *args, **kwargs)
    params[name], stats[name] = variables["params"], variables.get(STATS, {})
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      opt_state={name: tx[name].init(params[name]) for name in networks},
      ema_params=(jax.tree.map(jnp.copy, params[ema_player]) if ema_player is not None
                  else {}),
      extra={**(extra or {}), STATS: stats})


def apply_module(module: nn.Module, params, stats, *args, train: bool, rng=None,
                 policy=precision.Policy(), **kwargs):
  """``(output, new statistics)`` of ``module`` with ``params`` and BatchNorm
  statistics ``stats``, computed as ``policy`` says. In train mode the
  ``batch_stats`` collection is mutable and ``rng``, if given, keys dropout;
  otherwise the statistics come back unchanged."""
  variables = {"params": params, STATS: stats}
  if not train:
    return policy.apply(module, variables, *args, train=False, **kwargs), stats
  out, mutated = policy.apply(module, variables, *args, train=True, mutable=[STATS],
                              rngs={"dropout": rng} if rng is not None else None,
                              **kwargs)
  return out, mutated.get(STATS, {})


def replace_stats(state: TrainState, **stats) -> TrainState:
  """``state`` with the BatchNorm statistics of the players named as keywords
  replaced; the other players' are kept."""
  extra = state.extra
  return state.replace(extra={**extra, STATS: {**extra[STATS], **stats}})


def update_ema(state: TrainState, player: str, decay: float) -> TrainState:
  """``ema_params <- decay * ema_params + (1 - decay) * params[player]``
  (``optax.incremental_update``); ``decay`` 0 copies the player."""
  return state.replace(ema_params=optax.incremental_update(
      state.params[player], state.ema_params, 1.0 - decay))


def lerp(z0, z1, t):
  """The straight line ``(1 - t) z0 + t z1`` (broadcasting)."""
  return (1 - t) * z0 + t * z1


def slerp(z0, z1, t, eps: float = 1e-6):
  """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents) between z0
  and z1 along the last axis: the great-circle arc through the directions, whose
  norm moves from |z0| to |z1| (constant for equal norms). Where z0 and z1 are
  (anti)parallel (sin of the angle at most ``eps``), the straight line.

  The angle is 2 atan2(|n0 - n1|, |n0 + n1|) of the unit vectors (Kahan), not
  arccos(n0 . n1): in float32 the dot product of (anti)parallel vectors lands an ulp
  off +-1, where arccos turns it into an angle 3e-4 away from 0 or pi."""
  n0 = z0 / jnp.linalg.norm(z0, axis=-1, keepdims=True)
  n1 = z1 / jnp.linalg.norm(z1, axis=-1, keepdims=True)
  omega = 2 * jnp.arctan2(jnp.linalg.norm(n0 - n1, axis=-1, keepdims=True),
                          jnp.linalg.norm(n0 + n1, axis=-1, keepdims=True))
  so = jnp.sin(omega)
  safe = jnp.where(so > eps, so, 1.0)
  curved = (jnp.sin((1 - t) * omega) * z0 + jnp.sin(t * omega) * z1) / safe
  return jnp.where(so > eps, curved, lerp(z0, z1, t))


def interpolate_latents(z0, z1, steps: int):
  """The linear and the spherical path from each row of z0 (rows, d) to the same row
  of z1, ``steps`` points each (ends included): two arrays (rows, steps, d)."""
  t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
  a, b = z0[:, None], z1[:, None]
  return lerp(a, b, t), slerp(a, b, t)
