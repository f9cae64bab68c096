"""Pix2Pix: the paper's sizes, the PatchGAN's 70x70 window, the U-Net's skips, the
schedule, the one-step update against a direct re-computation, aligned jitter, and
the errors for unpaired data and sizes the U-Net cannot halve."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from conftest import load_config
from jaxgen import data
from jaxgen.data import preprocess
from jaxgen.models import image_to_image as nets
from jaxgen.families import adversarial
from jaxgen.families import base
from jaxgen.families import image_to_image as translation
from jaxgen.families.base import count_params
from jaxgen.families.pix2pix.trainer import Pix2PixTrainer


def _spec(size, channels=3):
  s = jax.ShapeDtypeStruct((size, size, channels), np.float32)
  return {"source": s, "target": s}


def test_paper_counts():
  """unet_256 and the 70x70 PatchGAN of configs/pix2pix_facades.py:paper, on 256x256
  RGB pairs: the counts of junyanz models/networks.py (shared/REFERENCE.md)."""
  trainer = Pix2PixTrainer(load_config("pix2pix_facades", "paper"), _spec(256))
  counts = {name: count_params(m, *a, **k) for name, (m, a, k) in
            trainer.networks().items()}
  assert counts == {"generator": 54_413_955, "discriminator": 2_768_705}


def test_patchgan_logit_sees_exactly_a_70x70_window():
  """The gradient of one interior logit w.r.t. the input is non-zero on exactly the
  70x70 window rows/columns [8i - 23, 8i + 46] (strides 2, 2, 2, 1, 1, padding 1);
  BatchNorm with running statistics (a per-channel affine map) keeps it local."""
  assert nets.receptive_field(3) == 70
  d = nets.PatchDiscriminator(ndf=2, n_layers=3, norm="batch")
  x = jax.random.normal(jax.random.key(0), (1, 104, 104, 6))
  variables = d.init(jax.random.key(1), x, train=False)
  out = d.apply(variables, x, train=False)
  assert out.shape == (1, 11, 11)
  i, j = 5, 6
  g = jax.jit(jax.grad(lambda v: d.apply(variables, v, train=False)[0, i, j]))(x)
  rows = np.flatnonzero(np.abs(np.asarray(g)).sum((0, 2, 3)) > 0)
  cols = np.flatnonzero(np.abs(np.asarray(g)).sum((0, 1, 3)) > 0)
  np.testing.assert_array_equal(rows, np.arange(8 * i - 23, 8 * i + 47))
  np.testing.assert_array_equal(cols, np.arange(8 * j - 23, 8 * j + 47))
  assert np.all(np.abs(np.asarray(g))[0, 8 * i - 23:8 * i + 47, 8 * j - 23:8 * j + 47]
                .sum(-1) > 0)  # every pixel of the window counts


def test_unet_skips_carry_the_input_past_a_cut_bottleneck():
  """With the level-1 down convolution zeroed, everything below level 0 sees a
  constant: the output still depends on the input (only the level-1 skip can carry
  it), and locally (down_0's 4x4 window into up_0's): a net without skips would give
  a zero gradient. Intact, the 1x1 bottleneck makes every output see every pixel."""
  g_net = nets.UNetGenerator(output_nc=1, num_downs=5, ngf=4, use_dropout=False)
  x = jax.random.normal(jax.random.key(0), (1, 32, 32, 1))
  variables = g_net.init(jax.random.key(1), x)
  r, c = 15, 16

  def grad(v):
    return np.abs(np.asarray(grad_fn(v, x)))[0, ..., 0]

  grad_fn = jax.jit(jax.grad(lambda v, inp: g_net.apply(v, inp)[0, r, c, 0],
                             argnums=1))

  assert np.all(grad(variables) > 0)  # the whole image reaches the centre
  params = jax.tree_util.tree_map(lambda a: a, variables["params"])
  params["down_1"] = {"kernel": jnp.zeros_like(params["down_1"]["kernel"])}
  cut = grad({**variables, "params": params})
  rows, cols = np.nonzero(cut)
  assert len(rows) > 0
  # output pixel r comes from level-1 pixels (r + 1) // 2 - 1 .. (r + 1) // 2 (up_0,
  # k4 s2 p1), each from inputs 2q - 1 .. 2q + 2 (down_0): at most 6 rows.
  assert rows.min() >= r - 3 and rows.max() <= r + 3 and len(set(rows)) <= 6
  assert cols.min() >= c - 3 and cols.max() <= c + 3 and len(set(cols)) <= 6


def test_unet_dropout_levels_are_the_papers_three():
  assert nets.unet_dropout_levels(8) == (4, 5, 6)  # unet_256: CD512 x 3
  assert nets.unet_dropout_levels(5) == ()
  g_net = nets.UNetGenerator(output_nc=1, num_downs=6, ngf=2)
  x = jax.random.normal(jax.random.key(0), (2, 64, 64, 1))
  v = g_net.init(jax.random.key(1), x)
  # N(0, 0.5) kernels: at the init's N(0, 0.02) the deep levels' share of the output
  # is below float32 resolution.
  v = {**v, "params": jax.tree.map(lambda a: 25 * a, v["params"])}
  run = jax.jit(lambda key: g_net.apply(v, x, dropout=True, rngs={"dropout": key}))
  a, b = run(jax.random.key(2)), run(jax.random.key(3))
  assert np.abs(np.asarray(a - b)).max() > 1e-3  # the noise z: other draws, outputs
  np.testing.assert_array_equal(g_net.apply(v, x), g_net.apply(v, x))


def test_schedule_constant_then_linear_to_zero():
  cfg = ml_collections.ConfigDict(dict(learning_rate=2e-4, constant_steps=100,
                                       end_factor=0.0, warmup_steps=0,
                                       schedule="constant_then_linear"))
  s = base.learning_rate_schedule(cfg, 300)
  for step, want in [(0, 2e-4), (99, 2e-4), (100, 2e-4), (200, 1e-4), (250, 0.5e-4),
                     (300, 0.0)]:
    assert float(s(step)) == pytest.approx(want, rel=1e-6, abs=1e-12), step


def _tiny_trainer(**model):
  config = load_config("pix2pix_mnist", "tiny")
  config.model.update(model)
  return config, Pix2PixTrainer(config, data.example_spec(config.data))


def test_one_step_is_the_reference_update():
  """One train step against a direct re-computation: D's Adam step on
  0.5 (BCE(D(x, G(x)), 0) + BCE(D(x, y), 1)), then G's on BCE(D'(x, G(x)), 1) +
  100 |G(x) - y| through the updated D', differentiated end to end (no vjp)."""
  config, trainer = _tiny_trainer()
  state = jax.jit(trainer.init_state)(jax.random.key(0))
  loader = data.Loader(data.get_source(config.data, "train"), config.data, 4, 0)
  batch = {k: jnp.asarray(v) for k, v in next(loader).items()}
  rng = jax.random.key(7)
  new, metrics = jax.jit(trainer.train_step)(state, batch, rng)

  x, y = batch["source"], batch["target"]
  stats = state.extra[adversarial.STATS]
  G, D = trainer.generator, trainer.discriminator

  def g_apply(gp):
    out, mut = G.apply({"params": gp, "batch_stats": stats["generator"]}, x,
                       train=True, dropout=True, rngs={"dropout": rng},
                       mutable=["batch_stats"])
    return out, mut["batch_stats"]

  def d_apply(dp, s, img):
    out, mut = D.apply({"params": dp, "batch_stats": s},
                       jnp.concatenate([x, img], -1), train=True,
                       mutable=["batch_stats"])
    return out, mut["batch_stats"]

  bce = lambda l, t: optax.sigmoid_binary_cross_entropy(l, jnp.full_like(l, t)).mean()
  tx = optax.adam(2e-4, b1=0.5, b2=0.999, eps=1e-8)

  @jax.jit
  def reference(params):
    fake, _ = g_apply(params["generator"])

    def d_loss(dp):
      f, s = d_apply(dp, stats["discriminator"], fake)
      r, s = d_apply(dp, s, y)
      return 0.5 * (bce(f, 0.0) + bce(r, 1.0)), s

    (dl, d_stats), dg = jax.value_and_grad(d_loss, has_aux=True)(
        params["discriminator"])
    upd, _ = tx.update(dg, tx.init(dg), params["discriminator"])
    d_new = optax.apply_updates(params["discriminator"], upd)

    def g_loss(gp):
      f, _ = g_apply(gp)
      logits, _ = d_apply(d_new, d_stats, f)
      return bce(logits, 1.0) + 100.0 * jnp.abs(f - y).mean()

    gl, gg = jax.value_and_grad(g_loss)(params["generator"])
    upd, _ = tx.update(gg, tx.init(gg), params["generator"])
    return dl, gl, d_new, optax.apply_updates(params["generator"], upd)

  dl, gl, d_new, g_new = reference(state.params)
  assert float(metrics["d_loss"]) == pytest.approx(float(dl), rel=1e-5)
  assert float(metrics["g_loss"]) == pytest.approx(float(gl), rel=1e-5)
  for got, want in ((new.params["discriminator"], d_new),
                    (new.params["generator"], g_new)):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-6), got, want)
  assert int(new.step) == 1


def test_joint_jitter_keeps_pairs_aligned():
  """Through the loader, each example's source and target got the same random crop
  and mirror: the (offset, flip) that reproduces the loader's target from the raw
  pair also reproduces its source, and the draws vary."""
  config = load_config("pix2pix_facades", "tiny")  # jitter 36 -> 32 and mirroring
  source = data.get_source(config.data, "train")
  loader = data.Loader(source, config.data, 16, seed=3)
  idx = loader.indices(0)
  batch = next(loader)
  raw = source[idx]
  big = {k: preprocess.resize(raw[k], (36, 36)).astype(np.float32) / 127.5 - 1
         for k in ("source", "target")}
  draws = []
  for n in range(len(idx)):
    found = []
    for t in range(5):
      for l in range(5):
        for flip in (False, True):
          crop = lambda a: a[n, t:t + 32, l:l + 32][:, ::-1] if flip else \
              a[n, t:t + 32, l:l + 32]
          if np.array_equal(crop(big["target"]), batch["target"][n]):
            found.append((t, l, flip))
            np.testing.assert_array_equal(crop(big["source"]), batch["source"][n])
    assert found, n
    draws.append(found[0])
  assert len(set(draws)) > 3 and {d[2] for d in draws} == {False, True}


def test_clear_errors():
  config = load_config("pix2pix_mnist", "tiny")
  config.data.resize = ()
  config.data.jitter_resize = ()
  with pytest.raises(ValueError, match=r"multiples of 32 \(32, 64, 96"):
    Pix2PixTrainer(config, data.example_spec(config.data))
  with pytest.raises(ValueError, match="multiples of 256"):
    Pix2PixTrainer(load_config("pix2pix_facades", "paper"), _spec(128))
  config = load_config("pix2pix_mnist", "tiny")
  config.data.name = "mnist5k_styles"
  with pytest.raises(ValueError, match="paired dataset"):
    Pix2PixTrainer(config, data.example_spec(config.data))
  config = load_config("pix2pix_mnist", "tiny")
  config.data.scale = "unit"
  with pytest.raises(ValueError, match="symmetric"):
    Pix2PixTrainer(config, data.example_spec(config.data))


def test_translation_losses_are_the_references():
  """GANLoss: BCE with logits against 1 / 0, or the MSE (closed forms in numpy)."""
  l = np.array([[-2.0, 0.5], [3.0, 0.0]], np.float32)
  sp = lambda v: np.log1p(np.exp(v))
  assert float(translation.translation_gan_loss(l, True)) == pytest.approx(sp(-l).mean(),
                                                                       rel=1e-6)
  assert float(translation.translation_gan_loss(l, False)) == pytest.approx(sp(l).mean(),
                                                                        rel=1e-6)
  assert float(translation.translation_gan_loss(l, True, "lsgan")) == pytest.approx(
      ((l - 1) ** 2).mean())
  assert float(translation.translation_discriminator_loss(l, -l, "lsgan")) == pytest.approx(
      0.5 * (((l - 1) ** 2).mean() + (l ** 2).mean()))
