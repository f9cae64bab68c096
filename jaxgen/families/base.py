"""What a model family provides to the generic loop, and the pieces families share.

A family subclasses ``Trainer``; the loop in ``jaxgen/train.py`` jit-compiles its
``train_step`` and ``eval_step`` over the device mesh and calls the rest on the host.
A family with one optimiser over all its parameters subclasses
``OneOptimizerTrainer`` instead and writes its ``loss`` and ``sample``.
"""
from __future__ import annotations

import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import precision, viz
from jaxgen.errors import ConfigError


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


def check_guidance(scales, dropout: float, message: str) -> None:
  """Refuse (``ConfigError(message)``) guidance scales other than 1 for a model trained
  without conditioning dropout (``dropout`` 0): the unconditional prediction that
  classifier-free guidance mixes in was never learned."""
  if any(float(s) != 1 for s in scales) and not dropout:
    raise ConfigError(message)


def learning_rate_schedule(cfg, num_steps: int) -> optax.Schedule:
  """``cfg.schedule`` in constant | cosine | linear (to ``cfg.end_factor`` times the
  rate) | constant_then_linear (constant for ``cfg.constant_steps``, then linear to
  ``cfg.end_factor`` times the rate at the last step: Pix2Pix's and CycleGAN's
  schedule, stepped per step where the reference steps per epoch), after
  ``cfg.warmup_steps``. The fields' defaults live in the configs."""
  lr, warmup, kind = cfg.learning_rate, cfg.warmup_steps, cfg.schedule
  decay_steps = max(num_steps - warmup, 1)
  if kind == "constant_then_linear":
    constant = cfg.constant_steps
    if not 0 <= constant <= num_steps - warmup:
      raise ConfigError(f"config.optim constant_steps={constant} must lie in [0, "
                        f"train.num_steps - warmup_steps = {num_steps - warmup}].")
    decay = optax.join_schedules(
        [optax.constant_schedule(lr),
         optax.linear_schedule(lr, lr * cfg.end_factor, max(decay_steps - constant, 1))],
        boundaries=[constant])
  elif kind == "constant":
    decay = optax.constant_schedule(lr)
  elif kind == "cosine":
    decay = optax.cosine_decay_schedule(lr, decay_steps, alpha=cfg.end_factor)
  elif kind == "linear":
    decay = optax.linear_schedule(lr, lr * cfg.end_factor, decay_steps)
  else:
    raise ConfigError(f"config.optim.schedule={kind!r}; use constant, cosine, linear or "
                      f"constant_then_linear.")
  if not warmup:
    return decay
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup), decay], boundaries=[warmup])


WEIGHT_DECAY_MASKS = ("all", "matrices")


def decays_matrices(params):
  """open_clip's rule (``open_clip_train/main.py``: no decay where ``p.ndim < 2``, on
  biases, norms and the logit scale): True for the parameters of 2 or more
  dimensions (kernels, embeddings); False for biases, norm scales, CLIP's class
  embedding and temperature."""
  return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def make_optimizer(cfg, num_steps: int) -> optax.GradientTransformation:
  """Adam or AdamW with an optional global-norm clip, from ``config.optim`` (or a
  player's block of it); each field it reads is set in the config. AdamW decays every
  parameter, or with ``weight_decay_mask="matrices"`` (a field only the configs that
  use it set) only those of ``decays_matrices``."""
  schedule = learning_rate_schedule(cfg, num_steps)
  name, b1, b2, eps = cfg.name, cfg.b1, cfg.b2, cfg.eps
  mask = cfg.get("weight_decay_mask", "all")
  if mask not in WEIGHT_DECAY_MASKS:
    raise ConfigError(f"config.optim.weight_decay_mask={mask!r}; use one of "
                      f"{WEIGHT_DECAY_MASKS}.")
  if name == "adam":
    opt = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
  elif name == "adamw":
    opt = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=cfg.weight_decay,
                      mask=decays_matrices if mask == "matrices" else None)
  else:
    raise ConfigError(f"config.optim.name={name!r}; use adam or adamw.")
  clip = cfg.grad_clip_norm
  return optax.chain(optax.clip_by_global_norm(clip), opt) if clip else opt


def optimizer_step(tx: optax.GradientTransformation, grads, opt_state, params):
  """One optax update: ``(new params, new optimiser state)``."""
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def ema_decay_at(optim, step):
  """``optim.ema_decay``, or with ``optim.ema_warmup`` the decay of CompVis' ``LitEma``:
  min(decay, (1 + step) / (10 + step)), so that the average forgets the initial
  parameters within the first hundreds of steps."""
  decay = optim.ema_decay
  if not optim.get("ema_warmup", False):
    return decay
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def apply_gradients(state: TrainState, grads, tx: optax.GradientTransformation,
                    ema_decay: float, **replace):
  """One optimiser step of the whole state plus the EMA update, ``step`` + 1; returns
  (new state, gradient norm). For one optimiser over all of ``state.params``; several
  players, each with its own optimiser, go through ``apply_player_gradients``."""
  params, opt_state = optimizer_step(tx, grads, state.opt_state, state.params)
  ema = optax.incremental_update(params, state.ema_params, 1.0 - ema_decay)
  new = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                      ema_params=ema, **replace)
  return new, optax.tree.norm(grads)


def apply_player_gradients(state: TrainState, player: str, grads,
                           tx: dict | optax.GradientTransformation,
                           *, count_step: bool = False, **replace):
  """One optimiser step of one player of a several-optimiser state, where
  ``state.params`` and ``state.opt_state`` are dicts keyed by player name; ``tx`` is
  the dict of the players' transformations (or this player's). The other players'
  params and optimiser states, ``ema_params`` and (unless ``count_step``) ``step``
  are left as they are; ``replace`` sets further fields. Returns (new state, norm of
  ``grads``)."""
  tx = tx if isinstance(tx, optax.GradientTransformation) else tx[player]
  params, opt_state = optimizer_step(tx, grads, state.opt_state[player],
                                     state.params[player])
  if count_step:
    replace["step"] = state.step + 1
  new = state.replace(params={**state.params, player: params},
                      opt_state={**state.opt_state, player: opt_state}, **replace)
  return new, optax.tree.norm(grads)


def count_params(module: nn.Module, *example_args, **example_kwargs) -> int:
  """Number of parameters of ``module`` (the 'params' collection only), no FLOPs."""
  shapes = jax.eval_shape(functools.partial(module.init, **example_kwargs),
                          jax.random.key(0), *example_args)
  return sum(x.size for x in jax.tree.leaves(shapes.get("params", {})))


class Trainer:
  """The interface between a model family and the generic loop.

  Subclasses build their networks in ``__init__`` from the config, the spec of one
  preprocessed example (``data.example_spec``: key -> ShapeDtypeStruct) and the
  frozen stages the config names (``stages``: name -> ``jaxgen.stages.Stage``), and
  implement the methods below. ``train_step``, ``eval_step`` and ``generate`` must be
  pure: the loop jit-compiles them over the mesh. Each takes ``frozen``, the frozen
  stages' parameters (name -> pytree; empty without stages), as its own argument:
  replicated, never donated, never part of the checkpointed state.
  """
  # The frozen stages a family needs: name in config.stages -> the protocol class
  # (Autoencoder, ConditioningEncoder) that the stage's family must provide. A family
  # whose stages depend on its config overrides ``roles``.
  stage_roles: dict = {}
  # The stages that only sampling reads (unCLIP's prior and upsampler): the training
  # loss never sees them, so a checkpoint's stage record leaves them out, and a
  # finished run samples and evaluates through whichever ones the config names.
  sampling_stages: tuple = ()

  def record(self) -> dict:
    """Values the run fixes when it starts (config field name -> value; a latent
    diffusion's scale factor computed from the data), stored with every checkpoint:
    a resume or evaluation whose values differ is refused."""
    return {}

  @classmethod
  def roles(cls, config) -> dict:
    """The frozen stages ``config`` needs (name -> protocol): ``stage_roles``."""
    return cls.stage_roles

  # The keys a family's examples must have, as alternatives: ("image",) for image
  # models, ("source", "target") for paired translation, ("domain_a", "domain_b") for
  # unpaired translation, ("x",) for points. The first key's shape of the first
  # alternative that the dataset has is ``example_shape``.
  data_keys: tuple = (("image",),)

  # The compute dtypes (config.compute.dtype) the family's networks are written for:
  # every family's network calls go through ``self.policy.apply``; a family whose
  # networks are float32 only says ("float32",), and ``auto`` then keeps it there.
  compute_dtypes: tuple = tuple(precision.DTYPES)

  def __init__(self, config, spec: dict, stages: dict | None = None):
    self.config = config
    self.policy = precision.resolve(config, dtypes=self.compute_dtypes)
    self.spec = dict(spec)
    self.stages = dict(stages or {})
    keys = self.keys_for(self.spec)
    _check_keys(config, keys, self.spec)
    self.example_shape = tuple(self.spec[keys[0]].shape)

  def keys_for(self, spec) -> tuple:
    """The data keys this family reads from examples described by ``spec``."""
    return next((keys for keys in self.data_keys if set(keys) <= set(spec)),
                self.data_keys[0])

  @property
  def conditioning_keys(self) -> tuple:
    """Keys of an eval example that ``generate`` is conditioned on (``label``,
    ``text``, ``source``, ...); empty for unconditional families."""
    return ()

  def networks(self) -> dict[str, tuple[nn.Module, tuple, dict]]:
    """Each network by name, with example positional and keyword inputs to build it
    (for --mode=summary and init)."""
    raise NotImplementedError

  def init_state(self, rng) -> TrainState:
    raise NotImplementedError

  def train_step(self, state, batch: dict, rng, frozen: dict | None = None) -> tuple[Any, dict]:
    """One update. The metrics must include ``loss``; all are checked for finiteness."""
    raise NotImplementedError

  def eval_step(self, state, batch: dict, rng, frozen: dict | None = None) -> dict:
    """Sums over the (masked) batch; the loop adds them up over the split."""
    raise NotImplementedError

  def finalize_eval(self, sums: dict) -> dict:
    """The results of an evaluation from the eval sums added up over the split: each
    sum divided by ``count`` (a mean over the evaluated examples, under the sum's
    own name), and ``num_examples``. Families whose results are not all means (bounds
    computed from the means, statistics of summed arrays) extend this."""
    n = float(sums["count"])
    return {"num_examples": int(n),
            **{k: float(v) / n for k, v in sums.items() if k != "count"}}

  def family_metrics(self, state, mesh, rng) -> dict:
    """Numbers for eval.json that the family measures on the host with the state,
    after the eval step's and ``evaluators.compute``'s (``rng``: the key ``compute``
    drew its samples with), for what fits neither: unCLIP's variations (several
    decodings of each source) and its prior x decoder guidance grid. Default: none."""
    return {}

  def generate(self, state, rng, num: int, inputs: dict | None = None,
               frozen: dict | None = None):
    """``num`` samples (EMA parameters where the family keeps them) as float images in
    [0, 1], shape (num, H, W, C). ``inputs`` holds the conditioning (the
    ``conditioning_keys`` of ``num`` eval examples, leading axis ``num``); ``None``
    lets the family draw its own (class-conditional families draw labels
    uniformly)."""
    raise NotImplementedError

  def visualize(self, state, rng, batch: dict, frozen: dict | None = None) -> dict:
    """Named images (uint8 HxWxC or HxW) to save; ``samples`` is the main grid."""
    raise NotImplementedError

  def stage_params(self, state):
    """What this run hands to later runs that use it as a frozen stage."""
    return state.ema_params

  def compiled(self, fn, **jit_options):
    """``jax.jit(fn, **jit_options)``, built once per trainer: the same ``fn`` (a
    method of this trainer: bound methods of one object compare equal) with the same
    options gives the same compiled function on every call, so ``visualize`` and
    other host-side callers trace and compile it once. (The loop compiles
    ``train_step`` and ``eval_step`` itself.)"""
    cache = self.__dict__.setdefault("_compiled", {})
    key = (fn, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                            for k, v in jit_options.items())))
    if key not in cache:
      cache[key] = jax.jit(fn, **jit_options)
    return cache[key]


class OneOptimizerTrainer(Trainer):
  """The short path for a family with one optimiser over all its parameters, in the
  style of google-research/vdm's ``Experiment``. The family writes

  * ``networks()``, as every family (each network by name, with example inputs);
  * ``loss(params, batch, rng, frozen) -> (loss, metrics)``: the scalar objective of
    one training batch and a dict of scalar metrics;
  * ``sample(params, rng, num, inputs, frozen) -> images`` in [0, 1], shape
    (num, H, W, C), with ``inputs`` the conditioning as in ``Trainer.generate``;
  * ``eval_step``: masked sums over the batch, with ``count``;

  and the base does the rest:

  * ``tx``: ``make_optimizer(config.optim, config.train.num_steps)``;
  * ``init_state``: each network of ``networks()`` initialised, its own key of
    ``jax.random.split(rng, len(networks))`` each, ``params`` a dict by network
    name; a family of one network initialises it with ``rng`` itself and its
    parameters are ``params``. ``extra`` is ``initial_extra()``;
  * ``train_step``: ``jax.value_and_grad`` of ``loss`` at ``state.params``, one
    optimiser step and the EMA of the parameters with decay ``config.optim.ema_decay``
    (``apply_gradients``); the metrics are ``loss``, the loss's metrics and
    ``grad_norm``;
  * ``generate``: ``sample`` with the EMA parameters; ``visualize``: a grid of
    ``config.train.num_samples`` of them (a conditional family writes its own);
  * ``finalize_eval``: the means of the eval sums (``Trainer.finalize_eval``).

  Two hooks: ``initial_extra()`` is ``TrainState.extra`` at step 0 (non-gradient
  state; default none), and ``step_inputs(step)`` the values of the step that the
  loss reads (a KL warm-up's weight, an annealed temperature), added to the batch the
  loss sees (default none). A step that also changes state outside the gradient from
  the forward pass (VQ-VAE's EMA codebook) overrides ``train_step`` with ``tx``,
  ``optimizer_step`` or ``apply_gradients``.
  """

  def __init__(self, config, spec: dict, stages: dict | None = None):
    super().__init__(config, spec, stages)
    self.tx = make_optimizer(config.optim, config.train.num_steps)

  def loss(self, params, batch: dict, rng, frozen: dict | None = None):
    """``(loss, metrics)`` of one training batch: a scalar to minimise and a dict of
    scalar metrics."""
    raise NotImplementedError

  def sample(self, params, rng, num: int, inputs: dict | None = None,
             frozen: dict | None = None):
    """``num`` samples of the model with ``params``, images in [0, 1]."""
    raise NotImplementedError

  def initial_extra(self) -> dict:
    """``TrainState.extra`` at step 0: the family's non-gradient state."""
    return {}

  def step_inputs(self, step) -> dict:
    """Values of the (traced) step that ``loss`` reads from its batch."""
    return {}

  def init_params(self, rng):
    networks = self.networks()
    if len(networks) == 1:
      module, args, kwargs = next(iter(networks.values()))
      return module.init(rng, *args, **kwargs)["params"]
    params = {}
    for (name, (module, args, kwargs)), key in zip(
        networks.items(), jax.random.split(rng, len(networks))):
      params[name] = module.init(key, *args, **kwargs)["params"]
    return params

  def init_state(self, rng) -> TrainState:
    return TrainState.create(self.init_params(rng), self.tx, extra=self.initial_extra())

  def train_step(self, state, batch, rng, frozen=None):
    batch = {**batch, **self.step_inputs(state.step)}
    (loss, metrics), grads = jax.value_and_grad(self.loss, has_aux=True)(
        state.params, batch, rng, frozen)
    state, grad_norm = apply_gradients(state, grads, self.tx,
                                       ema_decay_at(self.config.optim, state.step))
    return state, {"loss": loss, **metrics, "grad_norm": grad_norm}

  def generate(self, state, rng, num: int, inputs=None, frozen=None):
    return self.sample(state.ema_params, rng, num, inputs, frozen)

  def visualize(self, state, rng, batch, frozen=None):
    """The grid of ``config.train.num_samples`` samples of an unconditional family
    (a conditional one, or one with more pictures, writes its own)."""
    num = self.config.train.num_samples
    x = self.compiled(self.generate, static_argnums=2)(state, rng, num, None, frozen)
    return {"samples": viz.grid(viz.to_uint8(np.asarray(x)))}


_KINDS = {("source", "target"): "a paired dataset (source, target)",
          ("domain_a", "domain_b"): "an unpaired dataset (domain_a, domain_b)",
          ("image",): "a dataset of single images (image)",
          ("x",): "a dataset of points (x)"}


def _kind(keys) -> str:
  return next((v for k, v in _KINDS.items() if set(k) <= set(keys)),
              f"examples with keys {tuple(keys)}")


def _check_keys(config, keys, spec):
  if not set(keys) <= set(spec):
    raise ConfigError(
        f"config.family={config.family!r} trains on {_kind(keys)}, but "
        f"config.data.name={config.data.name!r} is {_kind(tuple(spec))}: choose a "
        f"dataset with the keys {', '.join(keys)}.")
