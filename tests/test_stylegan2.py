"""StyleGAN2 + ADA: the ops against direct computations, the networks' paper counts,
truncation, the regularisers against hand computations, the lazy schedule of the
compiled step, ADA's identity at p = 0 and its adjustment rule, and the errors."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config
from jaxgen import build
from jaxgen.families.stylegan2 import networks as sg
from jaxgen.families.stylegan2 import augment as aug
from jaxgen.families.stylegan2 import ops
from jaxgen.families.stylegan2 import trainer as trainer_mod


def _np_upfirdn2d(x, f, up, down, pad, gain=1.0, flip=False):
  """Zero insertion, pad/crop, filter, subsample, by loops in float64."""
  n, h, w, c = x.shape
  px0, px1, py0, py1 = pad
  u = np.zeros((n, h * up, w * up, c))
  u[:, ::up, ::up] = x
  p = np.zeros((n, h * up + max(py0, 0) + max(py1, 0),
                w * up + max(px0, 0) + max(px1, 0), c))
  p[:, max(py0, 0):max(py0, 0) + h * up, max(px0, 0):max(px0, 0) + w * up] = u
  p = p[:, max(-py0, 0):p.shape[1] - max(-py1, 0), max(-px0, 0):p.shape[2] - max(-px1, 0)]
  k = f * gain if flip else (f * gain)[::-1, ::-1]
  fh, fw = k.shape
  out = np.zeros((n, p.shape[1] - fh + 1, p.shape[2] - fw + 1, c))
  for i in range(out.shape[1]):
    for j in range(out.shape[2]):
      out[:, i, j] = np.einsum("nabc,ab->nc", p[:, i:i + fh, j:j + fw], k)
  return out[:, ::down, ::down]


@pytest.mark.parametrize("up,down,pad,flip", [
    (1, 1, (0, 0, 0, 0), False), (2, 1, (2, 1, 2, 1), False),
    (1, 2, (1, 1, 1, 1), True), (2, 2, (3, -1, 0, 2), False),
    (3, 1, (-1, 2, 1, 0), True)])
def test_upfirdn2d_matches_direct_numpy(up, down, pad, flip):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  f = rng.normal(size=(4, 3)).astype(np.float32)  # asymmetric: flips show
  got = np.asarray(ops.upfirdn2d(jnp.asarray(x), f, up, down, pad, flip_filter=flip,
                                 gain=2.0))
  np.testing.assert_allclose(got, _np_upfirdn2d(x, f, up, down, pad, 2.0, flip),
                             atol=2e-5)


def test_up_and_downsample_keep_constants():
  """The FIR filter is normalised: a constant image stays constant inside."""
  f = ops.setup_filter((1, 3, 3, 1))
  np.testing.assert_allclose(f.sum(), 1.0, rtol=1e-6)
  x = jnp.ones((1, 8, 8, 2))
  up = np.asarray(ops.upsample2d(x, f))
  down = np.asarray(ops.downsample2d(x, f))
  assert up.shape == (1, 16, 16, 2) and down.shape == (1, 4, 4, 2)
  np.testing.assert_allclose(up[:, 2:-2, 2:-2], 1.0, rtol=1e-6)
  np.testing.assert_allclose(down[:, 1:-1, 1:-1], 1.0, rtol=1e-6)


def _np_correlate(x, w, pad):
  """NHWC x, OIHW w, zero padding ``pad``: a plain correlation in float64."""
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  o, i, kh, kw = w.shape
  n, h, wd, _ = x.shape
  out = np.zeros((n, h - kh + 1, wd - kw + 1, o))
  for a in range(kh):
    for b in range(kw):
      out += np.einsum("nhwi,oi->nhwo", x[:, a:a + out.shape[1], b:b + out.shape[2]],
                       w[:, :, a, b])
  return out


def test_modulated_conv_is_per_sample_convolution_with_demodulated_weights():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(3, 6, 6, 4)).astype(np.float32)
  weight = rng.normal(size=(5, 4, 3, 3)).astype(np.float32)
  styles = rng.normal(size=(3, 4)).astype(np.float32)
  noise = rng.normal(size=(3, 6, 6, 1)).astype(np.float32)
  got = np.asarray(ops.modulated_conv2d(jnp.asarray(x), jnp.asarray(weight),
                                        jnp.asarray(styles), noise=jnp.asarray(noise),
                                        padding=1))
  for demod in (True, False):
    got = np.asarray(ops.modulated_conv2d(jnp.asarray(x), jnp.asarray(weight),
                                          jnp.asarray(styles), noise=jnp.asarray(noise),
                                          padding=1, demodulate=demod))
    for n in range(3):
      w = weight.astype(np.float64) * styles[n][None, :, None, None]
      if demod:
        w = w / np.sqrt((w ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
      want = _np_correlate(x[n:n + 1], w, 1) + noise[n:n + 1]
      np.testing.assert_allclose(got[n:n + 1], want, rtol=1e-4, atol=1e-4)
  # Up-sampling: the same per-sample weights through conv2d_resample (flipped kernel).
  f = ops.setup_filter()
  got = np.asarray(ops.modulated_conv2d(jnp.asarray(x), jnp.asarray(weight),
                                        jnp.asarray(styles), up=2, padding=1,
                                        resample_filter=f, flip_weight=False))
  assert got.shape == (3, 12, 12, 5)
  for n in range(3):
    w = weight * styles[n][None, :, None, None]
    w = w / np.sqrt((w ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
    up = _np_upfirdn2d(x[n:n + 1], f, 2, 1, (3, 2, 3, 2), gain=4.0)
    want = _np_correlate(up, w[:, :, ::-1, ::-1], 0)
    np.testing.assert_allclose(got[n:n + 1], want, rtol=1e-4, atol=1e-4)


def test_equalised_learning_rate_runtime_scaling():
  """Stored weights ~ N(0, 1/lr_mul^2); used times lr_mul / sqrt(fan_in): the output
  and the gradient with respect to the stored weight carry the runtime factor."""
  lr_mul, fan_in = 0.01, 64
  layer = ops.FullyConnected(32, lr_multiplier=lr_mul, bias_init=0.5)
  x = jax.random.normal(jax.random.key(0), (4, fan_in))
  params = layer.init(jax.random.key(1), x)["params"]
  w, b = np.asarray(params["weight"]), np.asarray(params["bias"])
  assert abs(w.std() * lr_mul - 1.0) < 0.05  # N(0, 1) / lr_mul
  np.testing.assert_allclose(b, 0.5)
  out = np.asarray(layer.apply({"params": params}, x))
  want = np.asarray(x) @ (w * lr_mul / math.sqrt(fan_in)).T + b * lr_mul
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
  grad = jax.grad(lambda p: layer.apply({"params": p}, x).sum())(params)["weight"]
  np.testing.assert_allclose(np.asarray(grad),
                             np.tile(np.asarray(x).sum(0), (32, 1)) * lr_mul
                             / math.sqrt(fan_in), rtol=1e-4)
  conv = ops.Conv2dLayer(3, 3, activation="lrelu")
  xi = jax.random.normal(jax.random.key(2), (2, 5, 5, 4))
  cp = conv.init(jax.random.key(3), xi)["params"]
  got = np.asarray(conv.apply({"params": cp}, xi))
  pre = _np_correlate(np.asarray(xi), np.asarray(cp["weight"]) / math.sqrt(4 * 9), 1)
  want = np.where(pre > 0, pre, 0.2 * pre) * math.sqrt(2)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _small_generator(**kw):
  return sg.Generator(z_dim=6, c_dim=0, w_dim=6, resolution=8, img_channels=1,
                      mapping_layers=2, channel_base=32, channel_max=4, **kw)


def test_truncation_psi_zero_gives_w_avg_and_cutoff():
  g = _small_generator()
  z = jax.random.normal(jax.random.key(0), (3, 6))
  variables = jax.jit(lambda k, z: g.init(k, z, noise_mode="const"))(
      jax.random.key(1), z)
  w_avg = jax.random.normal(jax.random.key(2), (6,))
  variables = {**variables, "buffers": {**variables["buffers"],
                                        "mapping": {"w_avg": w_avg}}}
  w = g.apply(variables, z, method=sg.Generator.map)
  broadcast = jax.jit(lambda v, w, psi, cut: g.apply(v, w, psi, cut,
                                                     method=sg.Generator.broadcast),
                      static_argnums=(3,))
  ws0 = np.asarray(broadcast(variables, w, 0.0, None))
  assert ws0.shape == (3, g.num_ws, 6)
  np.testing.assert_allclose(ws0, np.broadcast_to(w_avg, ws0.shape), rtol=1e-6)
  ws = np.asarray(broadcast(variables, w, 0.5, 2))
  half = np.asarray(w_avg + 0.5 * (w - w_avg))
  np.testing.assert_allclose(ws[:, :2], np.repeat(half[:, None], 2, 1), rtol=1e-5)
  np.testing.assert_allclose(ws[:, 2:], np.repeat(np.asarray(w)[:, None],
                                                  g.num_ws - 2, 1), rtol=1e-6)
  with pytest.raises(ValueError, match="psi in \\[0, 1\\]"):
    g.apply(variables, w, 1.5, method=sg.Generator.broadcast)
  with pytest.raises(ValueError, match="psi in \\[0, 1\\]"):
    g.apply(variables, z, truncation_psi=-0.1, noise_mode="const")


def test_bad_inputs_are_clear_errors():
  with pytest.raises(ValueError, match="power of two"):
    sg.Generator(8, 0, 8, 24, 3).init(jax.random.key(0), jnp.zeros((1, 8)),
                                       noise_mode="const")
  with pytest.raises(ValueError, match="power of two"):
    sg.num_ws(48)
  with pytest.raises(ValueError, match="at least two w's"):
    sg.mix_styles(jnp.zeros((2, 1, 4)), jnp.ones((2, 1, 4)), 1)
  with pytest.raises(ValueError, match="multiple of the group size"):
    sg.minibatch_stddev(jnp.zeros((6, 4, 4, 2)), 4)
  c = load_config("stylegan2_mnist", "tiny")
  c.model.resolution = 24
  with pytest.raises(ValueError, match="power of two"):
    build.make_trainer(c)
  c = load_config("stylegan2_mnist", "tiny")
  c.model.truncation_psi = 2.0
  with pytest.raises(ValueError, match="truncation_psi=2.0: .*use \\[0, 1\\]"):
    build.make_trainer(c)


def test_minibatch_stddev_against_numpy():
  x = np.random.default_rng(3).normal(size=(8, 3, 3, 4)).astype(np.float32)
  got = np.asarray(sg.minibatch_stddev(jnp.asarray(x), 4))
  groups = x.reshape(4, 2, 3, 3, 4)  # example n = g * 2 + j, as the reference
  std = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))  # [2]
  want = np.tile(std, 4)
  np.testing.assert_allclose(got[..., :4], x)
  np.testing.assert_allclose(got[..., 4], np.broadcast_to(want[:, None, None],
                                                          (8, 3, 3)), rtol=1e-5)


@pytest.mark.parametrize("name,g_count,d_count", [
    ("stylegan2_ffhq", 30_370_060, 29_012_513),
    ("stylegan2_cifar10", 20_215_315, 23_089_664)])
def test_paper_parameter_counts(name, g_count, d_count):
  from jaxgen.main import summary
  counts = summary(load_config(name, "paper"))
  assert counts == {"generator": g_count, "discriminator": d_count}


def test_path_length_against_explicit_jacobian():
  """|J^T y| from the VJP equals y^T J with J the explicit Jacobian of a small
  synthesis network; the penalty and the running mean follow the reference."""
  g = _small_generator()
  variables = jax.jit(lambda k: g.init(k, jnp.zeros((2, 6)), noise_mode="const"))(
      jax.random.key(0))
  ws = jax.random.normal(jax.random.key(1), (2, g.num_ws, 6))
  synth = lambda v: g.apply(variables, v, "const", method=sg.Generator.synthesize)
  key = jax.random.key(2)
  lengths, img = jax.jit(lambda ws: trainer_mod.path_length(synth, ws, key))(ws)
  y = np.asarray(jax.random.normal(key, img.shape)) / math.sqrt(8 * 8)
  # The explicit Jacobian of each image with respect to its own ws (forward mode).
  jacobian = jax.jit(jax.vmap(jax.jacfwd(lambda v: synth(v[None])[0])))
  jacs = np.asarray(jacobian(ws))  # [2, 8, 8, 1, num_ws, 6]
  for n in range(2):
    jty = np.einsum("hwc,hwcld->ld", y[n], jacs[n])
    want = np.sqrt((jty ** 2).sum(1).mean())
    np.testing.assert_allclose(float(lengths[n]), want, rtol=1e-4)
  pen, mean = trainer_mod.path_length_penalty(jnp.array([1.0, 3.0]), 0.5, 0.01)
  np.testing.assert_allclose(float(mean), 0.5 + 0.01 * (2.0 - 0.5), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(pen), (np.array([1.0, 3.0]) - 0.515) ** 2,
                             rtol=1e-5)
  # The penalty's gradient includes the running mean's dependence on the lengths.
  grad = jax.grad(lambda l: trainer_mod.path_length_penalty(l, 0.5, 0.01)[0].sum())(
      jnp.array([1.0, 3.0]))
  d = np.array([1.0, 3.0]) - 0.515
  np.testing.assert_allclose(np.asarray(grad), 2 * d - 2 * d.sum() * 0.01 / 2,
                             rtol=1e-5)


def test_lazy_optimizer_ema_and_ada_rules():
  cfg = load_config("stylegan2_mnist").optim.generator
  tx = trainer_mod.lazy_optimizer(cfg, 4, 10)
  r = 4 / 5
  ref = optax.adam(0.0025 * r, b1=0.0 ** r, b2=0.99 ** r, eps=1e-8)
  p = {"a": jnp.ones(3)}
  g = {"a": jnp.array([0.1, -2.0, 3.0])}
  s1, s2 = tx.init(p), ref.init(p)
  for _ in range(3):
    u1, s1 = tx.update(g, s1, p)
    u2, s2 = ref.update(g, s2, p)
    np.testing.assert_allclose(np.asarray(u1["a"]), np.asarray(u2["a"]), rtol=1e-6)
  # G_ema: half-life ema_kimg thousand images, ramped up to 5% of the images seen.
  beta = float(trainer_mod.ema_beta(jnp.int32(10), 32, 1.0, 0.05))
  np.testing.assert_allclose(beta, 0.5 ** (32 / 16), rtol=1e-6)
  beta = float(trainer_mod.ema_beta(jnp.int32(10_000), 32, 1.0, 0.05))
  np.testing.assert_allclose(beta, 0.5 ** (32 / 1000), rtol=1e-6)
  # ADA: p + sign(r_t - 0.6) * batch * interval / (ada_kimg * 1000), at least 0.
  np.testing.assert_allclose(float(trainer_mod.ada_adjust(0.1, 0.7, 0.6, 64, 4, 500)),
                             0.1 + 64 * 4 / 500_000, rtol=1e-6)
  np.testing.assert_allclose(float(trainer_mod.ada_adjust(0.1, 0.5, 0.6, 64, 4, 500)),
                             0.1 - 64 * 4 / 500_000, rtol=1e-6)
  assert float(trainer_mod.ada_adjust(0.0, 0.5, 0.6, 64, 4, 500)) == 0.0


def test_augmentations_are_identity_at_p0_and_act_at_p1():
  x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3), minval=-1, maxval=1)

  @jax.jit
  def run(x, key):
    return {name: jax.vmap(lambda p: aug.augment(x, p, key, **{name: 1}))(
        jnp.array([0.0, 1.0])) for name in aug.AUGMENTATIONS}

  for name, (at0, at1) in run(x, jax.random.key(1)).items():
    np.testing.assert_allclose(np.asarray(at0), np.asarray(x), atol=5e-5,
                               err_msg=name)
    assert float(jnp.abs(at1 - x).max()) > 1e-2, name


def test_lazy_regularisation_fires_on_its_steps_and_ada_moves_p():
  """Four compiled steps of the tiny config at 8x8 (R1 and path length every 2 steps,
  ADA every step, its colour transformations only): the penalties are computed on steps 0 and 2 only, each regularised
  step adds one Adam step per player, p follows the rule from the real signs, and
  the numbers are those of the step before R2 existed."""
  from jaxgen import data
  c = load_config("stylegan2_mnist", "tiny")
  # The smallest networks (8x8 digits) and ADA's cheapest pipeline: compile time.
  c.data.resize = (8, 8)
  c.model.resolution = 8
  c.stylegan2.augment = "color"
  tr = build.make_trainer(c)
  state = jax.jit(tr.init_state)(jax.random.key(0))
  loader = data.Loader(data.get_source(c.data, "train"), c.data, 8, 0)
  step = jax.jit(tr.train_step)
  ps, metrics = [float(state.extra["ada_p"])], []
  for i in range(4):
    state, m = step(state, next(loader), jax.random.key(i))
    metrics.append(jax.device_get(m))
    ps.append(float(state.extra["ada_p"]))
  fired = [bool(m["pl_penalty"] > 0) for m in metrics]
  assert fired == [True, False, True, False]
  assert [bool(m["r1_penalty"] > 0) for m in metrics] == [True, False, True, False]
  counts = [int(jax.tree.leaves(state.opt_state[p])[0]) for p in
            ("generator", "discriminator")]
  assert counts == [6, 6]  # 4 main + 2 regularisation steps each
  # On the unregularised steps r_t is the mean sign of Dmain's real logits.
  for i in (1, 3):
    want = max(0.0, ps[i] + np.sign(metrics[i]["real_sign"] - 0.6) * 8 / 100)
    np.testing.assert_allclose(ps[i + 1], want, rtol=1e-5, atol=1e-7)
  assert int(state.step) == 4
  # The step as it was before R2 (r2_gamma 0, its default) and the digits preset were
  # added: these numbers are what that code gave here (the whole state bit for bit
  # on the machine that recorded them; 1e-5 leaves room for another CPU's rounding).
  recorded = {2: dict(d_loss=1.4692323207855225, g_loss=0.23916028439998627,
                      r1_penalty=0.11045923829078674, pl_penalty=0.9001172780990601,
                      d_grad_norm=1.2237584590911865, g_grad_norm=0.48196420073509216),
              3: dict(d_loss=2.06441330909729, g_loss=0.470543771982193,
                      d_grad_norm=2.1601786613464355, g_grad_norm=0.5284101366996765,
                      ada_p=0.3199999928474426)}
  for i, values in recorded.items():
    for name, value in values.items():
      np.testing.assert_allclose(float(metrics[i][name]), value, rtol=1e-5,
                                 err_msg=f"step {i} {name}")
  sums = {p: float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(state.params[p])))
          for p in ("generator", "discriminator")}
  np.testing.assert_allclose([sums["generator"], sums["discriminator"]],
                             [10632.216796875, 599.41015625], rtol=1e-5)


def test_hashed_normal_initialiser_is_standard_normal():
  from scipy import stats
  x = np.asarray(ops.hashed_normal(jax.random.key(0), (20001,)))
  y = np.asarray(ops.hashed_normal(jax.random.key(1), (20001,)))
  assert abs(x.mean()) < 0.03 and abs(x.std() - 1) < 0.03
  assert stats.kstest(x, "norm").pvalue > 1e-3
  assert abs(np.corrcoef(x, y)[0, 1]) < 0.03  # other keys, other numbers
  assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.03


def test_diversity_probe_counts_digit_classes():
  """experiments/stylegan2_diversity.py's class coverage: real MNIST-5k digits (padded
  to 32x32 as the model's images) cover the ten classes about evenly, one digit
  repeated covers one."""
  from conftest import load_module
  from jaxgen.data import sources
  probe = load_module("experiments/stylegan2_diversity.py")
  digits = sources.mnist5k_arrays("test")["image"].astype(np.float32) / 255.0
  padded = np.pad(digits, ((0, 0), (2, 2), (2, 2), (0, 0)))
  spread = probe.class_coverage(padded)
  assert spread["effective_classes"] > 9.5, spread
  assert sum(spread["classes"]) == len(digits)
  one = probe.class_coverage(np.repeat(padded[:1], 64, axis=0))
  assert one["effective_classes"] == pytest.approx(1.0), one
