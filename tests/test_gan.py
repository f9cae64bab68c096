"""GANs: DCGAN geometry and sizes, the two-player step, each config end to end."""
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config
from jaxgen import build, data
from jaxgen.families.gan import networks as gan
from jaxgen.families.base import count_params
from jaxgen.families.gan.trainer import GANTrainer


def _torch_conv_transpose(x, w, stride, pad):
  """PyTorch's ConvTranspose2d by its definition (a scatter): x NHWC, w (Cin, Cout,
  k, k) in PyTorch's layout; each input pixel adds x * w into a k x k output window,
  and ``pad`` rows and columns are cut from every border."""
  n, h, wd, _ = x.shape
  k = w.shape[-1]
  full = np.zeros((n, (h - 1) * stride + k, (wd - 1) * stride + k, w.shape[1]))
  for i in range(h):
    for j in range(wd):
      full[:, i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum(
          "nc,cokl->nklo", x[:, i, j], w)
  return full[:, pad:full.shape[1] - pad, pad:full.shape[2] - pad]


def test_transposed_convolutions_are_pytorchs():
  """Flax kernels (k, k, Cin, Cout) are PyTorch's (Cin, Cout, k, k) flipped in space."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
  up = gan.ConvTranspose2x(4)
  variables = up.init(jax.random.key(0), x)
  kernel = np.asarray(variables["params"]["kernel"])
  out = np.asarray(up.apply(variables, x))
  assert out.shape == (2, 10, 10, 4)
  torch_w = kernel[::-1, ::-1].transpose(2, 3, 0, 1)
  np.testing.assert_allclose(out, _torch_conv_transpose(x, torch_w, 2, 1), atol=1e-5)
  flax_t = nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                            use_bias=False)
  np.testing.assert_allclose(out, flax_t.apply(variables, x), atol=1e-5)

  z = rng.normal(size=(2, 6)).astype(np.float32)
  project = gan.Project(5, 4)
  variables = project.init(jax.random.key(1), z)
  out = np.asarray(project.apply(variables, z))
  torch_w = np.asarray(variables["params"]["kernel"])[::-1, ::-1].transpose(2, 3, 0, 1)
  np.testing.assert_allclose(out, _torch_conv_transpose(z[:, None, None], torch_w, 1, 0),
                             atol=1e-5)


def test_dcgan_paper_parameter_counts():
  trainer = build.make_trainer(load_config("dcgan_celeba", "paper"))
  counts = {name: count_params(module, *args, **kwargs)
            for name, (module, args, kwargs) in trainer.networks().items()}
  assert counts == {"generator": 3_576_704, "discriminator": 2_765_568}


def _layer_sizes(module, *args):
  _, state = jax.eval_shape(lambda: module.init_with_output(
      jax.random.key(0), *args, train=False, capture_intermediates=True))
  inter = state["intermediates"]
  return {name: v["__call__"][0].shape[1:3] for name, v in inter.items()
          if name != "__call__" and not name.endswith("_bn")}


def test_dcgan_feature_map_sizes():
  g, d = gan.make("dcgan", (64, 64, 3), base_g=2, base_d=2)
  assert _layer_sizes(g, jnp.zeros((1, 100))) == {
      "project": (4, 4), "up_0": (8, 8), "up_1": (16, 16), "up_2": (32, 32),
      "out": (64, 64)}
  assert _layer_sizes(d, jnp.zeros((1, 64, 64, 3))) == {
      "down_0": (32, 32), "down_1": (16, 16), "down_2": (8, 8), "down_3": (4, 4),
      "out": (1, 1)}
  g, d = gan.make("dcgan", (28, 28, 1), base_g=2, base_d=2, num_classes=10,
                  conditioning="acgan")
  assert _layer_sizes(g, jnp.zeros((1, 8)), jnp.zeros((1,), jnp.int32)) == {
      "project": (7, 7), "up_0": (14, 14), "out": (28, 28)}
  logits, classes = d.init_with_output(jax.random.key(0), jnp.zeros((3, 28, 28, 1)),
                                       train=False)[0]
  assert logits.shape == (3,) and classes.shape == (3, 10)
  with pytest.raises(ValueError, match="even image size above 7"):
    gan.pyramid(7)


SPECS = ["gan_toy2d:tiny", "gan_mnist:tiny", "dcgan_mnist:tiny", "dcgan_celeba:tiny",
         "cgan_mnist:tiny", "acgan_mnist:tiny"]


@pytest.mark.parametrize("spec", SPECS)
def test_each_tiny_config_trains_through_main(tiny_runs, spec):
  name, variant = spec.split(":")
  wd = tiny_runs(name, variant)
  steps = int(load_config(name, variant).train.num_steps)
  assert os.path.isdir(os.path.join(wd, "checkpoints", str(steps)))
  pictures = sorted(os.listdir(os.path.join(wd, "samples")))
  if name == "gan_toy2d":
    assert pictures == [f"step_{steps}.png"]
  else:
    assert {f"interpolation_linear_step_{steps}.png",
            f"interpolation_slerp_step_{steps}.png", f"step_{steps}.png"} <= set(pictures)
  line = json.loads(open(os.path.join(wd, "metrics.jsonl")).readline())
  for key in ("loss", "g_loss", "d_loss", "d_real", "d_fake", "g_grad_norm",
              "d_grad_norm"):
    assert np.isfinite(line[key]), key
  result = json.load(open(os.path.join(wd, "eval.json")))
  assert result["num_examples"] == 16
  assert 0 < result["d_real"] < 1 and 0 < result["d_fake"] < 1
  assert result["gan_value"] < 0
  assert ("aux_accuracy" in result) == (name == "acgan_mnist")


def _tiny(name, **gan_fields):
  c = load_config(name, "tiny")
  c.gan.update(**gan_fields)
  return c


def test_pictures_and_samples():
  trainer = build.make_trainer(_tiny("cgan_mnist"))
  state = trainer.init_state(jax.random.key(0))
  x = trainer.generate(state, jax.random.key(1), 5)
  assert x.shape == (5, 28, 28, 1) and 0 <= x.min() and x.max() <= 1
  pics = trainer.visualize(state, jax.random.key(2), {})
  assert set(pics) == {"samples", "interpolation_linear", "interpolation_slerp"}
  assert pics["samples"].shape[:2] == (10 * 29 + 1, 29 + 1)  # a row per class
  assert pics["interpolation_slerp"].shape[:2] == (10 * 29 + 1, 10 * 29 + 1)
  trainer = build.make_trainer(_tiny("gan_toy2d"))
  state = trainer.init_state(jax.random.key(0))
  assert trainer.generate(state, jax.random.key(1), 7).shape == (7, 2)
  picture = trainer.visualize(state, jax.random.key(2), {})["samples"]
  assert picture.shape == (256, 256, 3) and picture.dtype == np.uint8
  # Both kinds of points are drawn.
  assert (picture == [40, 90, 220]).all(-1).sum() > 100
  assert (picture == [220, 50, 30]).all(-1).sum() > 100


def _batch(c, size, seed=0):
  from jaxgen import data
  return next(data.Loader(data.get_source(c.data, "train"), c.data, size, seed))


def _adam_count(opt_state):
  return [int(s.count) for s in jax.tree.leaves(
      opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
          if isinstance(s, optax.ScaleByAdamState)]


def test_d_steps_discriminator_updates_per_generator_update():
  c = _tiny("dcgan_mnist", d_steps=2)
  trainer = build.make_trainer(c)
  state = trainer.init_state(jax.random.key(0))
  rng = jax.random.key(5)
  new, metrics = jax.jit(trainer.train_step)(state, _batch(c, 8), rng)
  assert int(new.step) == 1
  assert _adam_count(new.opt_state["discriminator"]) == [2]
  assert _adam_count(new.opt_state["generator"]) == [1]
  # The generator's BatchNorm saw 2 batches (one per D update; the G update reuses
  # the last D update's z): running mean = 0.9-momentum average of their means.
  project = gan.Project(2 * c.model.ngf, 7)
  expected = np.zeros(2 * c.model.ngf)
  for i in range(2):
    z, _ = trainer.update_latents(rng, i, 8)
    h = project.apply({"params": state.params["generator"]["project"]}, z)
    expected = 0.9 * expected + 0.1 * np.asarray(h.mean((0, 1, 2)))
  got = new.extra["batch_stats"]["generator"]["project_bn"]["mean"]
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values())


@pytest.mark.parametrize("loss", ["minimax", "hinge", "lsgan"])
def test_each_loss_and_r1_run(loss):
  c = _tiny("gan_toy2d", loss=loss, r1_gamma=10.0)
  trainer = build.make_trainer(c)
  state = trainer.init_state(jax.random.key(0))
  _, metrics = jax.jit(trainer.train_step)(state, _batch(c, 8), jax.random.key(1))
  assert metrics["r1"] > 0 and np.isfinite(metrics["loss"])


def test_the_generator_learns_a_shifted_gaussian():
  """Data N((2, -1), 0.3^2 I): the generator's mean, near 0 at the start, moves there."""
  c = load_config("gan_toy2d")
  c.model.update(latent_dim=2, hidden_g=(32,), hidden_d=(32,))
  trainer = GANTrainer(c, data.example_spec(c.data))
  state = trainer.init_state(jax.random.key(0))
  target = np.array([2.0, -1.0], np.float32)
  data_rng = np.random.default_rng(0)
  step = jax.jit(trainer.train_step)
  before = np.asarray(trainer.generate(state, jax.random.key(1), 2000)).mean(0)
  for i in range(400):
    x = target + 0.3 * data_rng.standard_normal((128, 2)).astype(np.float32)
    state, _ = step(state, {"x": x}, jax.random.key(i))
  after = np.asarray(trainer.generate(state, jax.random.key(1), 2000)).mean(0)
  assert np.linalg.norm(before - target) > 1.5
  assert np.linalg.norm(after - target) < 0.3, after


@pytest.mark.parametrize("name,change,match", [
    ("dcgan_mnist", {"gan.r1_gamma": 1.0}, "d_batch_norm=False"),
    ("dcgan_mnist", {"gan.loss": "wasserstein"}, "config.gan.loss='wasserstein'"),
    ("dcgan_mnist", {"gan.d_steps": 0}, "at least 1"),
    ("cgan_mnist", {"model.num_classes": 0}, "num_classes"),
    ("gan_mnist", {"data.scale": "unit"}, "scale=symmetric"),
    ("gan_toy2d", {"model.arch": "dcgan"}, "arch=mlp"),
])
def test_bad_configs_are_clear_errors(name, change, match):
  c = load_config(name, "tiny")
  for key, value in change.items():
    group, field = key.split(".")
    c[group][field] = value
  with pytest.raises(ValueError, match=match):
    build.make_trainer(c)
