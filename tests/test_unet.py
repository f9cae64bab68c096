"""The DDPM U-Net and its blocks: paper sizes, embeddings, dropout, labels, attention."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models import layers
from jaxgen.models.unet import UNet
from jaxgen.families.base import count_params


def _count(model, image_shape):
  x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.int32)
  return count_params(model, x, t, train=False)


def _tiny(**kw):
  base = dict(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
              dropout=0.1, out_ch=1, num_groups=8)
  return UNet(**{**base, **kw})


def _random_variables(module, *args, seed=1, **kwargs):
  """Random weights for ``module``'s variable shapes, drawn in numpy.

  Real initialisation is avoided on purpose: the reference's near-zero output layers
  would make every output (and every difference between outputs) vanish, and eager
  initialisers compile one kernel per shape, which is slow on a small CPU.
  """
  shapes = jax.eval_shape(functools.partial(module.init, **kwargs), jax.random.key(0), *args)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    noise = rng.standard_normal(leaf.shape).astype(np.float32)
    if leaf.ndim >= 2:  # kernels and embeddings: unit-variance outputs
      return jnp.asarray(noise / np.sqrt(math.prod(leaf.shape[:-1])))
    base = 1.0 if jax.tree_util.keystr(path).endswith("['scale']") else 0.0
    return jnp.asarray(base + 0.1 * noise)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def _jit_apply(module):
  return jax.jit(module.apply, static_argnames="train")


X = jax.random.normal(jax.random.key(0), (2, 16, 16, 1))
T = jnp.array([3, 700])


@pytest.mark.parametrize("ch_mult,dropout,size,expected", [
    ((1, 2, 2, 2), 0.1, 32, 35_746_307),          # CIFAR-10
    ((1, 1, 2, 2, 4, 4), 0.0, 256, 113_673_219)])  # CelebA-HQ 256
def test_paper_parameter_counts_are_exact(ch_mult, dropout, size, expected):
  model = UNet(ch=128, ch_mult=ch_mult, num_res_blocks=2, attn_resolutions=(16,),
               dropout=dropout, out_ch=3)
  assert _count(model, (size, size, 3)) == expected


def test_sinusoidal_embedding_matches_numpy():
  t = np.array([0, 1, 17, 999])
  half = 64
  freqs = np.exp(-np.log(10000.0) * np.arange(half) / (half - 1))
  want = np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], axis=1)
  got = layers.sinusoidal_embedding(jnp.asarray(t), 128)
  assert got.shape == (4, 128)
  np.testing.assert_allclose(np.asarray(got), want, atol=2e-4)
  got_float = layers.sinusoidal_embedding(jnp.asarray(t, jnp.float32), 128)
  np.testing.assert_array_equal(np.asarray(got_float), np.asarray(got))


def test_sinusoidal_embedding_odd_dim_is_zero_padded():
  t = jnp.array([0, 5, 250])
  odd, even = layers.sinusoidal_embedding(t, 7), layers.sinusoidal_embedding(t, 6)
  assert odd.shape == (3, 7)
  np.testing.assert_array_equal(np.asarray(odd[:, :6]), np.asarray(even))
  np.testing.assert_array_equal(np.asarray(odd[:, 6]), 0.0)


def test_tiny_unet_shapes_and_dropout():
  model = _tiny()
  variables = _random_variables(model, X, T, train=False)
  apply = _jit_apply(model)
  out_eval = np.asarray(apply(variables, X, T, train=False))
  assert out_eval.shape == (2, 16, 16, 1) and np.isfinite(out_eval).all()
  np.testing.assert_array_equal(np.asarray(apply(variables, X, T, train=False)), out_eval)
  run = lambda seed: np.asarray(apply(variables, X, T, train=True,
                                      rngs={"dropout": jax.random.key(seed)}))
  a, b = run(1), run(2)
  assert a.shape == X.shape
  assert not np.allclose(a, b, atol=1e-3) and not np.allclose(a, out_eval, atol=1e-3)
  np.testing.assert_array_equal(run(1), a)


def test_tiny_unet_out_channels_and_no_conv_resampling():
  model = _tiny(out_ch=2, resamp_with_conv=False, dropout=0.0)
  variables = _random_variables(model, X, T, train=False)
  assert not any("sample" in name for name in variables["params"])
  out = _jit_apply(model)(variables, X, T, train=True)  # no dropout rng needed at p=0
  assert out.shape == (2, 16, 16, 2)


def test_class_conditioning_and_null_label():
  model = _tiny(num_classes=10, dropout=0.0)
  variables = _random_variables(model, X, T, jnp.array([0, 1]), train=False)
  assert variables["params"]["label_emb"]["embedding"].shape == (11, 64)
  apply = _jit_apply(model)
  out = lambda y: np.asarray(apply(variables, X, T, jnp.array(y), train=False))
  a, b, null = out([0, 1]), out([2, 3]), out([10, 10])
  assert not np.allclose(a, b, atol=1e-3) and not np.allclose(a, null, atol=1e-3)
  assert np.isfinite(null).all()
  with pytest.raises(ValueError, match="needs labels"):
    apply(variables, X, T, train=False)
  with pytest.raises(ValueError, match="num_classes=0"):
    jax.eval_shape(functools.partial(_tiny().init, train=False), jax.random.key(0), X, T,
                   jnp.array([0, 1]))


def test_scale_shift_and_fourier_parameter_counts():
  base = _count(_tiny(), (16, 16, 1))
  # scale_shift: every ResBlock's temb_proj (input 4ch = 64) doubles its output width;
  # the ResBlocks output 16 (down), 32 (down), 2x32 (mid), 2x32 and 2x16 (up) channels.
  outs = 16 + 32 + 2 * 32 + 2 * 32 + 2 * 16
  assert _count(_tiny(scale_shift=True), (16, 16, 1)) == base + (64 + 1) * outs
  # Fourier features replace the sinusoid at the same width and train nothing.
  assert _count(_tiny(time_embedding="fourier"), (16, 16, 1)) == base


@pytest.mark.parametrize("kw", [{"scale_shift": True}, {"time_embedding": "fourier"}])
def test_variants_run(kw):
  model = _tiny(**kw)
  t = jnp.array([0.1, 0.9])
  variables = _random_variables(model, X, t, train=False)
  assert set(variables) == {"params"}  # the Fourier frequencies are no variable
  apply = _jit_apply(model)
  rngs = {"dropout": jax.random.key(0)}
  out = np.asarray(apply(variables, X, t, train=True, rngs=rngs))
  assert out.shape == X.shape and np.isfinite(out).all()
  other = np.asarray(apply(variables, X, jnp.array([0.5, 0.3]), train=True, rngs=rngs))
  assert not np.allclose(out, other, atol=1e-3)  # the time reaches the output


def test_fourier_features_are_fixed_gaussian_frequencies():
  ff = layers.FourierFeatures(8, scale=1.0)
  t = jnp.array([0.0, 0.25])
  assert ff.init(jax.random.key(0), t) == {}
  a = ff.apply({}, t)
  assert a.shape == (2, 8)
  np.testing.assert_array_equal(np.asarray(a[0]), [0.0] * 4 + [1.0] * 4)
  np.testing.assert_array_equal(np.asarray(ff.apply({}, t)), np.asarray(a))
  assert layers.FourierFeatures(9).apply({}, t).shape == (2, 9)


def test_attention_is_permutation_equivariant_and_mixes_positions():
  x = jax.random.normal(jax.random.key(3), (2, 4, 4, 8))
  block = layers.AttnBlock(num_groups=4)
  variables = _random_variables(block, x)
  f = lambda v: np.asarray(block.apply(variables, v)).reshape(2, 16, 8)
  perm = np.asarray(jax.random.permutation(jax.random.key(4), 16))
  x_perm = x.reshape(2, 16, 8)[:, perm].reshape(2, 4, 4, 8)
  out = f(x)
  np.testing.assert_allclose(f(x_perm), out[:, perm], rtol=1e-5, atol=1e-5)
  assert not np.allclose(out, np.asarray(x).reshape(2, 16, 8), atol=1e-3)
  # Not position-wise: changing one position changes the output at another.
  out_poked = f(x.at[:, 0, 0].add(1.0))
  assert not np.allclose(out_poked[:, 5], out[:, 5], atol=1e-4)


def test_resampling_matches_the_reference_padding():
  x = jax.random.normal(jax.random.key(5), (1, 6, 6, 3))
  down = layers.Downsample(with_conv=True)
  variables = down.init(jax.random.key(0), x)
  kernel = variables["params"]["conv"]["kernel"]
  bias = variables["params"]["conv"]["bias"]
  padded = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # TF "SAME", stride 2
  want = jax.lax.conv_general_dilated(padded, kernel, (2, 2), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
  np.testing.assert_allclose(np.asarray(down.apply(variables, x)), np.asarray(want),
                             rtol=1e-5, atol=1e-5)
  pooled = layers.Downsample(with_conv=False).apply({}, x)
  np.testing.assert_allclose(np.asarray(pooled[0, 1, 2]),
                             np.asarray(x[0, 2:4, 4:6].mean(axis=(0, 1))), rtol=1e-5)
  up = layers.Upsample(with_conv=False).apply({}, x)
  assert up.shape == (1, 12, 12, 3)
  np.testing.assert_array_equal(np.asarray(up[0, 3, 5]), np.asarray(x[0, 1, 2]))
