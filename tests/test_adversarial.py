"""The shared adversarial core: per-player optimiser steps, BatchNorm plumbing, the
generator EMA, the N-player state and latent interpolation."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.families import adversarial
from jaxgen.families.adversarial import (apply_module, init_players, interpolate_latents,
                                         lerp, slerp)
from jaxgen.families.base import TrainState, apply_gradients, apply_player_gradients


class Net(nn.Module):
  batch_norm: bool = True
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool):
    h = nn.Dense(3)(x)
    if self.batch_norm:
      h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
    if self.dropout:
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return h


X = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)), jnp.float32)
TX = {"generator": optax.adam(1e-2), "discriminator": optax.sgd(0.1, momentum=0.5)}


def _networks():
  return {"generator": (Net(), (X,), {"train": False}),
          "discriminator": (Net(batch_norm=False), (X,), {"train": False})}


def _state():
  return init_players(_networks(), jax.random.key(0), TX, ema_player="generator",
                      extra={"pool": jnp.zeros(2)})


def _grads(params, seed):
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [jax.random.normal(k, l.shape)
                                   for k, l in zip(keys, leaves)])


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def _adam_count(opt_state):
  return [int(s.count) for s in jax.tree.leaves(
      opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
          if isinstance(s, optax.ScaleByAdamState)]


def test_init_players_builds_each_player_from_its_own_key():
  state = _state()
  keys = jax.random.split(jax.random.key(0), 2)
  for (name, (module, args, kwargs)), key in zip(_networks().items(), keys):
    variables = module.init(key, *args, **kwargs)
    _assert_trees_equal(state.params[name], variables["params"])
    _assert_trees_equal(state.extra["batch_stats"][name],
                        variables.get("batch_stats", {}))
    _assert_trees_equal(state.opt_state[name], TX[name].init(variables["params"]))
  assert state.extra["batch_stats"]["discriminator"] == {}
  assert set(state.extra) == {"pool", "batch_stats"}
  # Two players, two keys: their (same-shaped) Dense kernels differ.
  g, d = (state.params[p]["Dense_0"]["kernel"] for p in ("generator", "discriminator"))
  assert not np.array_equal(g, d)
  _assert_trees_equal(state.ema_params, state.params["generator"])
  assert int(state.step) == 0
  assert init_players(_networks(), jax.random.key(0), TX).ema_params == {}
  with pytest.raises(ValueError, match="No optimiser"):
    init_players(_networks(), jax.random.key(0), {"generator": TX["generator"]})
  with pytest.raises(ValueError, match="ema_player"):
    init_players(_networks(), jax.random.key(0), TX, ema_player="critic")


def test_player_update_equals_optax_applied_by_hand():
  state = _state()
  expected = {}
  for seed, player in enumerate(("generator", "discriminator", "generator")):
    grads = _grads(state.params[player], seed)
    params, opt_state = (expected.get(player) or
                         (state.params[player], state.opt_state[player]))
    updates, opt_state = TX[player].update(grads, opt_state, params)
    expected[player] = (optax.apply_updates(params, updates), opt_state)
    state, norm = apply_player_gradients(state, player, grads, TX)
    np.testing.assert_allclose(norm, optax.tree.norm(grads), rtol=1e-6)
  for player, (params, opt_state) in expected.items():
    _assert_trees_equal(state.params[player], params)
    _assert_trees_equal(state.opt_state[player], opt_state)
  assert int(state.step) == 0
  # One transformation instead of the dict; count_step; further fields replaced.
  grads = _grads(state.params["discriminator"], 9)
  new, _ = apply_player_gradients(state, "discriminator", grads, TX["discriminator"],
                                  count_step=True, extra={"pool": jnp.ones(2)})
  updates, _ = TX["discriminator"].update(grads, state.opt_state["discriminator"],
                                          state.params["discriminator"])
  _assert_trees_equal(new.params["discriminator"],
                      optax.apply_updates(state.params["discriminator"], updates))
  assert int(new.step) == 1 and float(new.extra["pool"].sum()) == 2.0


def test_one_players_update_leaves_the_other_alone():
  state = _state()
  new = state
  for seed in range(2):
    new, _ = apply_player_gradients(
        new, "generator", _grads(state.params["generator"], seed), TX)
  _assert_trees_equal(new.params["discriminator"], state.params["discriminator"])
  _assert_trees_equal(new.opt_state["discriminator"], state.opt_state["discriminator"])
  _assert_trees_equal(new.ema_params, state.ema_params)
  _assert_trees_equal(new.extra, state.extra)
  assert _adam_count(new.opt_state["generator"]) == [2]
  assert not np.array_equal(new.params["generator"]["Dense_0"]["kernel"],
                            state.params["generator"]["Dense_0"]["kernel"])
  # And the other way: SGD on the discriminator (its first momentum step is -lr g).
  grads = _grads(state.params["discriminator"], 5)
  new, _ = apply_player_gradients(state, "discriminator", grads, TX)
  _assert_trees_equal(new.params["generator"], state.params["generator"])
  _assert_trees_equal(new.opt_state["generator"], state.opt_state["generator"])
  assert _adam_count(new.opt_state["generator"]) == [0]
  for p, p0, g in zip(*map(jax.tree.leaves, (new.params["discriminator"],
                                             state.params["discriminator"], grads))):
    np.testing.assert_allclose(p, p0 - 0.1 * g, rtol=1e-6, atol=1e-7)


def test_jitted_player_update_matches_eager():
  state = _state()
  grads = _grads(state.params["generator"], 3)
  step = jax.jit(lambda s, g: apply_player_gradients(s, "generator", g, TX,
                                                     count_step=True))
  eager = apply_player_gradients(state, "generator", grads, TX, count_step=True)
  jitted = step(state, grads)
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_single_optimiser_apply_gradients_keeps_its_behaviour():
  params = {"w": jnp.arange(3.0), "b": jnp.ones(())}
  tx = optax.adam(0.1)
  state = TrainState.create(params, tx)
  state = state.replace(ema_params=jax.tree.map(lambda p: p + 1.0, params))
  grads = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(3.0)}
  new, norm = apply_gradients(state, grads, tx, 0.9, extra={"k": 1})
  updates, opt_state = tx.update(grads, state.opt_state, params)
  expected = optax.apply_updates(params, updates)
  _assert_trees_equal(new.params, expected)
  _assert_trees_equal(new.opt_state, opt_state)
  for e, p, old in zip(*map(jax.tree.leaves, (new.ema_params, expected,
                                              state.ema_params))):
    np.testing.assert_allclose(e, 0.9 * old + 0.1 * p, rtol=1e-6)
  assert int(new.step) == 1 and new.extra == {"k": 1}
  np.testing.assert_allclose(norm, np.sqrt(1 + 4 + 0.25 + 9), rtol=1e-6)


def test_batch_stats_change_only_in_train_mode():
  net = Net(dropout=0.5)
  variables = net.init(jax.random.key(0), X, train=False)
  params, stats = variables["params"], variables["batch_stats"]
  h = nn.Dense(3).apply({"params": params["Dense_0"]}, X)
  bn = params["BatchNorm_0"]

  out, same = apply_module(net, params, stats, X, train=False)
  _assert_trees_equal(same, stats)
  np.testing.assert_allclose(out, h / np.sqrt(1 + 1e-5) * bn["scale"] + bn["bias"],
                             rtol=1e-5, atol=1e-6)

  out1, new = apply_module(net, params, stats, X, train=True, rng=jax.random.key(1))
  np.testing.assert_allclose(new["BatchNorm_0"]["mean"], 0.1 * h.mean(0), rtol=1e-5,
                             atol=1e-7)
  np.testing.assert_allclose(new["BatchNorm_0"]["var"], 0.9 + 0.1 * h.var(0),
                             rtol=1e-5)
  # Dropout is keyed by rng: the same key repeats the output, another changes it.
  out2, _ = apply_module(net, params, stats, X, train=True, rng=jax.random.key(1))
  out3, _ = apply_module(net, params, stats, X, train=True, rng=jax.random.key(2))
  np.testing.assert_array_equal(out1, out2)
  assert not np.array_equal(out1, out3)
  assert float((out1 == 0).mean()) > 0.2  # half the units dropped, about

  # Without BatchNorm (or dropout): no statistics, no rng needed.
  plain = Net(batch_norm=False)
  p = plain.init(jax.random.key(0), X, train=False)["params"]
  out, none = apply_module(plain, p, {}, X, train=True)
  assert none == {} and out.shape == (8, 3)


def test_replace_stats_replaces_only_the_named_players():
  state = _state()
  stats = state.extra["batch_stats"]
  new_g = jax.tree.map(lambda s: s + 1.0, stats["generator"])
  new = adversarial.replace_stats(state, generator=new_g)
  _assert_trees_equal(new.extra["batch_stats"]["generator"], new_g)
  assert new.extra["batch_stats"]["discriminator"] == {}
  _assert_trees_equal(new.extra["pool"], state.extra["pool"])
  _assert_trees_equal(state.extra["batch_stats"], stats)  # the old state is intact


def test_ema_update_matches_the_formula():
  state = _state()
  state = state.replace(ema_params=_grads(state.params["generator"], 7))
  new = adversarial.update_ema(state, "generator", 0.9)
  for e, old, p in zip(*map(jax.tree.leaves, (new.ema_params, state.ema_params,
                                              state.params["generator"]))):
    np.testing.assert_allclose(e, 0.9 * old + 0.1 * p, rtol=1e-6, atol=1e-7)
  _assert_trees_equal(new.params, state.params)
  _assert_trees_equal(adversarial.update_ema(state, "generator", 0.0).ema_params,
                      state.params["generator"])
  _assert_trees_equal(adversarial.update_ema(state, "generator", 1.0).ema_params,
                      state.ema_params)


def test_slerp_endpoints_and_the_great_circle():
  rng = np.random.default_rng(0)
  z0, z1 = (jnp.asarray(rng.normal(size=(5, 16)), jnp.float32) for _ in range(2))
  np.testing.assert_allclose(slerp(z0, z1, 0.0), z0, atol=1e-5)
  np.testing.assert_allclose(slerp(z0, z1, 1.0), z1, atol=1e-5)
  # Equal-norm endpoints: the norm stays, and the angle to z0 grows linearly in t.
  z1 = z1 / jnp.linalg.norm(z1, axis=-1, keepdims=True) * jnp.linalg.norm(
      z0, axis=-1, keepdims=True)
  t = jnp.linspace(0, 1, 7)[:, None, None]
  path = np.asarray(slerp(z0[None], z1[None], t))
  np.testing.assert_allclose(np.linalg.norm(path, axis=-1),
                             np.broadcast_to(np.linalg.norm(z0, axis=-1), (7, 5)),
                             rtol=1e-5)
  cos = lambda a, b: np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(
      b, axis=-1)
  omega = np.arccos(cos(z0, z1))
  np.testing.assert_allclose(np.arccos(np.clip(cos(path, z0[None]), -1, 1)),
                             t[..., 0] * omega[None], atol=2e-3)
  two_d = slerp(jnp.array([3.0, 0.0]), jnp.array([0.0, 3.0]), 0.5)
  np.testing.assert_allclose(two_d, [3 / np.sqrt(2)] * 2, rtol=1e-6)


def test_slerp_falls_back_to_the_line_for_parallel_and_antiparallel_latents():
  z0 = jnp.array([[1.0, -2.0, 0.5]])
  t = jnp.linspace(0, 1, 5)[:, None]
  for z1 in (2 * z0, -z0, -3 * z0, z0):
    path = np.asarray(slerp(z0, z1, t))
    assert np.isfinite(path).all()
    np.testing.assert_allclose(path, lerp(z0, z1, t), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(slerp(z0, -z0, 0.5), 0.0, atol=1e-7)  # through 0


def test_interpolate_latents_paths():
  rng = np.random.default_rng(1)
  z0, z1 = (jnp.asarray(rng.normal(size=(3, 4)), jnp.float32) for _ in range(2))
  linear, spherical = interpolate_latents(z0, z1, 6)
  assert linear.shape == spherical.shape == (3, 6, 4)
  t = np.linspace(0, 1, 6)[None, :, None]
  np.testing.assert_allclose(linear, (1 - t) * z0[:, None] + t * z1[:, None],
                             rtol=1e-6, atol=1e-6)
  for path in (linear, spherical):
    np.testing.assert_allclose(path[:, 0], z0, atol=1e-5)
    np.testing.assert_allclose(path[:, -1], z1, atol=1e-5)
  assert not np.allclose(linear[:, 2], spherical[:, 2])
