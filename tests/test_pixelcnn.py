"""PixelCNN, Gated PixelCNN and PixelCNN++: causality by gradients, the discretised
logistic mixture against numpy and its normalisation, exact sampling with hand-set
networks, completion and its masks, and the errors for non-causal models."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from jaxgen import build
from jaxgen.families.pixelcnn import losses as mix
from jaxgen.families.pixelcnn import networks as px
from jaxgen.families.pixelcnn.pixelcnnpp import PixelCNNPP


def _jacobian(module, x, **kwargs):
  """|d out / d x| of a per-example network, summed over the batch of inputs x
  (several random images, so that no dependence hides behind a dead ReLU). The
  output's last axis (the K numbers of a sub-pixel, or a pixel's mixture
  parameters) is contracted with random weights first: the result has the output's
  per-example shape without that axis, then x's per-example shape."""
  params = module.init(jax.random.key(0), x, **kwargs)
  out_shape = jax.eval_shape(lambda v: module.apply(params, v, **kwargs), x).shape
  r = jax.random.normal(jax.random.key(9), out_shape[-1:])
  f = lambda v: module.apply(params, v, **kwargs) @ r
  jac = np.abs(np.asarray(jax.jit(jax.jacrev(f))(x)))  # out shape[:-1] + x shape
  return sum(jac[k, ..., k, :, :, :] for k in range(x.shape[0]))


# --- causality -----------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["pixelcnn", "gated"])
def test_masked_networks_are_causal_and_the_gated_stacks_have_no_blind_spot(arch):
  """On a 6x6 colour image: every output sub-pixel has exactly zero gradient with
  respect to every input sub-pixel at or after it (raster, then R -> G -> B); the
  previous sub-pixel and the pixel above are seen. The gated stacks see every pixel
  above (left and right within their reach) and to the left; PixelCNN's stack of
  masked 3x3 convolutions misses the pixel two to the right in the row above (the
  blind spot)."""
  h, w, c, layers = 6, 6, 3, 2
  x = jax.random.normal(jax.random.key(1), (4, h, w, c))
  if arch == "pixelcnn":  # 3x3 mask A, then `layers` blocks with a 3x3 mask B each
    net = px.PixelCNN(c, 12, layers, 2, first_kernel=3, kernel=3)
  else:
    net = px.GatedPixelCNN(c, 12, layers + 1, 2, first_kernel=3, kernel=3)
  a = _jacobian(net, x)  # (H, W, C, H, W, C)
  zero = a.reshape(h * w * c, h * w * c) == 0
  n = h * w * c
  o, q = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  # exactly zero for every input sub-pixel at or after the output sub-pixel
  assert zero[q >= o].all()
  # the masks are not over-restrictive: the previous sub-pixel (the channel before
  # inside a pixel, or the last channel of the pixel to the left) and the same
  # channel of the pixel above are seen
  for i in range(1, n):
    if (i // c) % w != 0 or i % c != 0:  # not the first sub-pixel of a row
      assert not zero[i, i - 1], i
  for i in range(w * c, n):
    assert not zero[i, i - w * c], i
  # the receptive field of pixel (4, 2) over pixels, all channels together
  i, j = 4, 2
  field = a.sum((2, 5))[i, j] > 0  # (H, W)
  assert not field[i, j + 1:].any() and not field[i + 1:].any()  # (i, j): above
  if arch == "gated":
    for di in range(1, layers + 2):  # the rows above, j - reach .. j + reach
      for dj in range(-layers, layers + 1):
        if 0 <= j + dj < w and i - di >= 0:
          assert field[i - di, j + dj], (di, dj)
    for dj in range(1, j + 1):
      assert field[i, j - dj], dj
  else:
    assert field[i - 1, j - 1:j + 2].all() and field[i, j - 1]
    assert not field[i - 1, j + 2]  # the blind spot


def test_pixelcnnpp_is_causal_over_pixels():
  h, w, c = 4, 4, 3
  x = jax.random.normal(jax.random.key(3), (2, h, w, c))
  net = PixelCNNPP(features=4, num_resnet=1, out_features=20, dropout=0.0,
                   num_scales=2)
  jac = _jacobian(net, x).sum(-1)  # (H, W, H, W)
  dep = jac.reshape(h * w, h * w) > 0
  o, q = np.meshgrid(np.arange(h * w), np.arange(h * w), indexing="ij")
  assert not dep[q >= o].any()  # no pixel at or after the output's own
  # the full past: every earlier pixel is seen (two streams, two resolutions with
  # the down- and up-sampling and the short-cut connections between them)
  assert dep[q < o].all()


def test_non_causal_models_are_refused_at_construction():
  with pytest.raises(ValueError, match="mask 'A' in the first layer"):
    px.PixelCNN(1, 4, 1, 1, first_mask="B").init(jax.random.key(0),
                                                jnp.zeros((1, 4, 4, 1)))
  with pytest.raises(ValueError, match="no centre pixel"):
    px.GatedPixelCNN(1, 4, 1, 1, kernel=4).init(jax.random.key(0),
                                                jnp.zeros((1, 4, 4, 1)))
  with pytest.raises(ValueError, match="down-shift"):
    px.GatedPixelCNN(1, 4, 1, 1, vertical_shift=False).init(
        jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
  config = load_config("pixelcnn_mnist", "tiny")
  config.model.first_mask = "B"
  with pytest.raises(ValueError, match="first layer"):
    build.make_trainer(config)


# --- the discretised logistic mixture -----------------------------------------------
def _numpy_mix_log_prob(x, params, m):
  """An independent float64 computation: x (C,) in [-1, 1], params (P,)."""
  c = len(x)
  p = np.asarray(params, np.float64)
  logits, means = p[:m], p[m:m + c * m].reshape(c, m)
  log_s = np.maximum(p[m + c * m:m + 2 * c * m].reshape(c, m), -7.0)
  coef = np.tanh(p[m + 2 * c * m:]).reshape(-1, m)
  pairs = [(ch, prev) for ch in range(c) for prev in range(ch)]
  sig = lambda z: 1.0 / (1.0 + np.exp(-z))
  pi = np.exp(logits - logits.max())
  pi /= pi.sum()
  total = np.zeros(m)
  for k in range(m):
    prob = 1.0
    for ch in range(c):
      mu = means[ch, k] + sum(coef[n, k] * x[prev] for n, (cc, prev) in enumerate(pairs)
                              if cc == ch)
      s = np.exp(log_s[ch, k])
      hi = 1.0 if x[ch] > 1 - 1 / 255 else sig((x[ch] + 1 / 255 - mu) / s)
      lo = 0.0 if x[ch] < -1 + 1 / 255 else sig((x[ch] - 1 / 255 - mu) / s)
      prob *= hi - lo
    total[k] = pi[k] * prob
  return np.log(total.sum())


def test_mixture_matches_numpy():
  rng = np.random.default_rng(0)
  m, c = 4, 3
  params = rng.normal(size=(5, mix.mix_logistic_num_params(c, m))).astype(np.float32)
  params[:, m + c * m:m + 2 * c * m] = rng.uniform(-4, -1, (5, c * m))  # sharp logistics
  levels = rng.integers(0, 256, (5, c))
  levels[0] = (0, 255, 17)  # both edge bins
  x = (2 * levels / 255 - 1).astype(np.float32)
  ours = np.asarray(mix.discretized_mix_logistic_log_prob(
      jnp.asarray(x)[:, None, None], jnp.asarray(params)[:, None, None], m))
  ref = np.array([_numpy_mix_log_prob(x[i].astype(np.float64), params[i], m)
                  for i in range(5)])
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def rgb_table():
  """log P of all 256^3 values of one RGB pixel under random mixture parameters."""
  m = 4
  params = jax.random.normal(jax.random.key(4), (mix.mix_logistic_num_params(3, m),))
  params = params.at[m + 3 * m:m + 6 * m].set(
      jax.random.uniform(jax.random.key(5), (3 * m,), minval=-4.0, maxval=0.0))
  v = jnp.arange(256) * 2.0 / 255 - 1.0
  gb = jnp.stack(jnp.meshgrid(v, v, indexing="ij"), -1).reshape(1, 256, 256, 2)

  def one_r(r):
    x = jnp.concatenate([jnp.full((1, 256, 256, 1), r), gb], -1)
    p = jnp.broadcast_to(params, (1, 256, 256, params.shape[0]))
    return mix.discretized_mix_logistic_log_prob(x, p, m, per_pixel=True)[0]
  table = jax.lax.map(jax.jit(one_r), v)  # (R, G, B)
  return params, m, np.asarray(table, np.float64)


def test_mixture_sums_to_one_over_all_rgb_values(rgb_table):
  _, _, table = rgb_table
  assert np.isfinite(table).all()
  total = np.exp(table).sum()
  assert abs(total - 1.0) < 1e-4, total


def test_mixture_sampler_draws_the_mixture(rgb_table):
  """Samples (channels drawn jointly, G and B given the drawn R, G) have the table's
  probabilities, in 4x4x4 blocks of levels."""
  params, m, table = rgb_table
  n = 200_000
  x = mix.sample_discretized_mix_logistic(
      jax.random.key(6), jnp.broadcast_to(params, (n, params.shape[0])), 3, m)
  lv = np.round((np.asarray(x) + 1) * 127.5).astype(int)
  assert np.allclose((np.asarray(x) + 1) * 127.5, lv, atol=1e-3)  # on the grid
  blocks = lv // 64
  emp = np.zeros((4, 4, 4))
  np.add.at(emp, tuple(blocks.T), 1)
  exact = np.exp(table).reshape(4, 64, 4, 64, 4, 64).sum((1, 3, 5))
  sd = np.sqrt(exact * (1 - exact) / n)
  assert (np.abs(emp / n - exact) < 5 * sd + 1e-4).all()


# --- sampling with hand-set networks ---------------------------------------------------
class _CopyPrevious(nn.Module):
  """Logits from the previous sub-pixel in raster + channel order only (the first
  sub-pixel sees nothing): Bernoulli logit a + b * x_prev, or for 256 levels a
  softmax that puts weight e^beta on the previous value."""
  out_per_channel: int

  @nn.compact
  def __call__(self, x, labels=None):
    n, h, w, c = x.shape
    flat = x.reshape(n, -1)
    prev = jnp.pad(flat, ((0, 0), (1, 0)))[:, :-1].reshape(n, h, w, c)
    first = jnp.zeros((h * w * c,)).at[0].set(1.0).reshape(1, h, w, c)
    self.param("unused", nn.initializers.zeros, (1,))
    if self.out_per_channel == 1:
      return (-1.0 + 2.5 * prev)[..., None]
    level = jnp.round((prev + 1) * 127.5).astype(jnp.int32)
    return 3.0 * jax.nn.one_hot(level, 256) * (1 - first)[..., None]


def _trainer(name, **model):
  config = load_config(name, "tiny")
  config.model.update(model)
  return build.make_trainer(config)


def test_sampling_a_hand_set_bernoulli_chain_gives_the_exact_distribution():
  tr = _trainer("pixelcnn_mnist")
  tr.shape = (2, 2, 1)
  tr.net = _CopyPrevious(1)
  n = 40_000
  s = np.asarray(jax.jit(tr.sample_levels, static_argnums=2)(
      {"unused": jnp.zeros(1)}, jax.random.key(7), n))
  codes = s.reshape(n, 4) @ (2 ** np.arange(4))
  emp = np.bincount(codes, minlength=16) / n
  sig = lambda z: 1 / (1 + np.exp(-z))
  exact = np.zeros(16)
  for code in range(16):
    bits = [(code >> k) & 1 for k in range(4)]
    p, prev = 1.0, 0.0  # the first sub-pixel sees the zero padding
    for b in bits:
      q = sig(-1.0 + 2.5 * prev)
      p *= q if b else 1 - q
      prev = 2.0 * b - 1.0
    exact[code] = p
  sd = np.sqrt(exact * (1 - exact) / n)
  assert (np.abs(emp - exact) < 5 * sd).all(), (emp, exact)


def test_sampling_a_hand_set_categorical_chain_follows_the_channel_order():
  """Colour (2x2x3, 256 levels): each sub-pixel repeats the previous one (in
  R -> G -> B and raster order) with probability e^3 / (e^3 + 255), else uniform."""
  tr = _trainer("gated_pixelcnn_mnist")
  tr.shape, tr.num_classes = (2, 2, 3), 0
  tr.net = _CopyPrevious(256)
  n = 4000
  s = np.asarray(jax.jit(tr.sample_levels, static_argnums=2)(
      {"unused": jnp.zeros(1)}, jax.random.key(8), n)).reshape(n, -1)
  same = (s[:, 1:] == s[:, :-1]).mean()
  p = np.exp(3) / (np.exp(3) + 255) + 1 / (np.exp(3) + 255)
  assert abs(same - p) < 5 * np.sqrt(p * (1 - p) / (n * 11)), (same, p)
  # the first sub-pixel is uniform over the 256 levels
  assert abs(s[:, 0].mean() - 127.5) < 5 * 74 / np.sqrt(n)


# --- completion -----------------------------------------------------------------------
def test_completion_masks_are_checked():
  from jaxgen.families.pixelcnn.trainer import check_mask, parse_mask
  v = parse_mask("top_half", 28, 28)
  assert v[:14].all() and not v[14:].any()
  assert parse_mask("pixels:30", 28, 28).sum() == 30
  with pytest.raises(ValueError, match="occludes nothing"):
    parse_mask("rows:28", 28, 28)
  with pytest.raises(ValueError, match="occludes everything"):
    parse_mask("rows:0", 28, 28)
  with pytest.raises(ValueError, match="occludes nothing"):
    check_mask(np.ones((4, 4), bool))
  with pytest.raises(ValueError, match="Completion mask"):
    parse_mask("bottom", 28, 28)


def test_completion_keeps_the_visible_pixels_and_samples_the_rest():
  tr = _trainer("pixelcnn_mnist")
  state = jax.jit(tr.init_state)(jax.random.key(0))
  x = (jax.random.uniform(jax.random.key(1), (2, 28, 28, 1)) < 0.5).astype(jnp.float32)
  from jaxgen.families.pixelcnn.trainer import parse_mask
  visible = parse_mask("top_half", 28, 28)
  picture = tr.completion_picture(state, jax.random.key(3), x, visible, 3)
  # rows: occluded input | 3 completions | original, 28x28 tiles with 1-pixel gaps
  assert picture.shape == (2 * 29 + 1, 5 * 29 + 1, 1) and picture.dtype == np.uint8
  tiles = np.stack([[picture[1 + 29 * r:29 * (r + 1), 1 + 29 * k:29 * (k + 1), 0]
                     for k in range(5)] for r in range(2)]) / 255.0
  original = np.asarray(x)[..., 0]
  np.testing.assert_array_equal(tiles[:, 4], original)
  np.testing.assert_array_equal(tiles[:, 0, :14], original[:, :14])
  assert (tiles[:, 0, 14:] == 128 / 255).all()  # the occluded half is grey
  for k in range(1, 4):  # completions keep the visible half, sample binary pixels
    np.testing.assert_array_equal(tiles[:, k, :14], original[:, :14])
    assert set(np.unique(tiles[:, k])) <= {0.0, 1.0}
  assert not np.array_equal(tiles[:, 1, 14:], tiles[:, 2, 14:])  # random completions
  with pytest.raises(ValueError, match="occludes everything"):
    tr.completion_picture(state, jax.random.key(3), x, np.zeros((28, 28), bool), 3)


def test_completion_reads_16_bit_and_transparent_images(tmp_path):
  """Issue 31 §4: a 16-bit grey PNG is read at its depth (PIL alone clipped it at
  255: a 0..65535 ramp turned white), a white digit drawn in the alpha channel is
  composited on the black of the digit sets, and black ink held in the alpha channel
  alone, which is blank on black, is refused with one line naming the file."""
  import ml_collections
  from PIL import Image
  from jaxgen.errors import UserError
  from jaxgen.data.preprocess import read_files as read_images
  data = ml_collections.ConfigDict({"binarize": False, "scale": "unit"})
  load_images = lambda paths, h, w, c, cfg: read_images(paths, (h, w, c), cfg)
  levels = np.tile(np.arange(0, 256, 9, dtype=np.uint8)[:28], (28, 1))
  Image.fromarray(levels.astype(np.uint16) * 257).save(tmp_path / "deep.png")
  white_in_alpha = np.full((28, 28, 4), 255, np.uint8)
  white_in_alpha[..., 3] = levels
  Image.fromarray(white_in_alpha).save(tmp_path / "white.png")
  got = load_images([tmp_path / "deep.png", tmp_path / "white.png"], 28, 28, 1, data)
  for image in got:
    np.testing.assert_allclose(image[..., 0], levels / 255, atol=1e-6)
  black_in_alpha = white_in_alpha.copy()
  black_in_alpha[..., :3] = 0
  Image.fromarray(black_in_alpha).save(tmp_path / "black.png")
  with pytest.raises(UserError, match=r"black.png has its picture in the alpha channel"):
    load_images([tmp_path / "black.png"], 28, 28, 1, data)


def test_image_files_are_preprocessed_as_the_runs_test_data(tmp_path):
  """preprocess.read_files binarises and dequantises image files as the data pipeline does
  (it once thresholded every binarisation at 0.5 and ignored dequantisation): a
  mid-grey file under dynamic binarisation is about half ones, not all ones; under
  dequantisation each level k lands in [k, k + 1) / 256; a threshold still
  thresholds; the symmetric scale maps to [-1, 1]."""
  import ml_collections
  from PIL import Image
  from jaxgen.data.preprocess import read_files as read_images
  grey = np.full((28, 28), 128, np.uint8)
  Image.fromarray(grey).save(tmp_path / "grey.png")
  paths = [tmp_path / "grey.png"] * 8
  cfg = lambda **kw: ml_collections.ConfigDict({"binarize": "", "scale": "unit", **kw})
  dynamic = read_images(paths, (28, 28, 1), cfg(binarize="dynamic"))
  assert set(np.unique(dynamic)) == {0.0, 1.0}
  assert abs(dynamic.mean() - 128 / 255) < 0.02
  assert (read_images(paths, (28, 28, 1), cfg(binarize="threshold")) == 1.0).all()
  deq = read_images(paths, (28, 28, 1), cfg(dequantize=True))
  assert deq.min() >= 128 / 256 and deq.max() <= 129 / 256 and deq.std() > 0.05 / 256
  sym = read_images(paths, (28, 28, 1), cfg(binarize="threshold", scale="symmetric"))
  assert (sym == 1.0).all()
  plain = read_images(paths, (28, 28, 1), cfg(scale="symmetric"))
  np.testing.assert_allclose(plain, 2 * 128 / 255 - 1, atol=1e-6)


@pytest.mark.parametrize("name", ["pixelcnn_mnist", "gated_pixelcnn_mnist"])
def test_windowed_sampling_is_the_full_network(name):
  """Sampling evaluates the network on the rows_above + 1 rows ending at the current
  row: its outputs there equal the full network's, so the samples are the same."""
  tr = _trainer(name)
  tr.shape = (8, 5, 1)
  rows = tr.rows_above + 1
  assert rows < 8
  state = jax.jit(tr.init_state)(jax.random.key(0))
  levels = jax.random.randint(jax.random.key(1), (3, 8, 5, 1), 0, tr.levels)
  labels = jnp.arange(3) if tr.num_classes else None
  apply = jax.jit(tr.apply)
  full = np.asarray(apply(state.params, levels, labels))
  for i in range(rows - 1, 8):
    part = np.asarray(apply(state.params, levels[:, i - rows + 1:i + 1], labels))
    np.testing.assert_allclose(part[:, -1], full[:, i], rtol=1e-5, atol=1e-5)
  # one row fewer would not be enough: the top of the receptive field is used
  short = np.asarray(apply(state.params, levels[:, 8 - rows + 1:], labels))
  assert np.abs(short[:, -1] - full[:, 7]).max() > 1e-4
  sample = jax.jit(tr.sample_levels, static_argnums=(2, 6))
  a = sample(state.ema_params, jax.random.key(2), 3, labels, None, None, True)
  b = sample(state.ema_params, jax.random.key(2), 3, labels, None, None, False)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
