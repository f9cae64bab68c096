"""The cached PixelCNN++ sampler (jaxgen/families/pixelcnn/fast_sampling.py) against
the reference it replaces, ``PixelCNNTrainer.sample_levels(cached=False)``: the full
network on the canvas at every pixel. With random parameters (biases and scales
moved off their initial values, so that the zero borders, the label bias and every
shortcut matter) and the same keys, both draw the same levels, and the outputs the
cached sampler drew each pixel from are the full network's outputs on the finished
image (exact by causality) to float32 rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from jaxgen import build
from jaxgen.families.pixelcnn import fast_sampling


def _random_trainer(name, shape, **model):
  """The trainer of configs/<name>.py:tiny (with ``model``'s fields) over images of
  ``shape``, and random parameters of its network: directions V, scales g around 1,
  biases b and label embeddings of size 0.3."""
  config = load_config(name, "tiny")
  config.model.update(model)
  tr = build.make_trainer(config)
  tr.shape = shape  # the network is convolutional: any size divisible by 2^(scales-1)
  x = tr.net_input(jnp.zeros((1, *shape), jnp.int32))
  labels = jnp.zeros((1,), jnp.int32) if tr.num_classes else None
  shapes = jax.eval_shape(tr.net.init, jax.random.key(0), x, labels)["params"]
  paths, tree = jax.tree_util.tree_flatten_with_path(shapes)
  keys = jax.random.split(jax.random.key(1), len(paths))
  params = [jax.random.normal(k, s.shape) * (1.0 if path[-1].key == "V" else 0.3)
            + (1.0 if path[-1].key == "g" else 0.0)
            for (path, s), k in zip(paths, keys)]
  return tr, tree.unflatten(params)


CASES = {
    # grey, not square (rows and columns cannot be swapped), 3 resolutions
    "grey_8x12": ("pixelcnnpp_mnist", (8, 12, 1), dict(num_scales=3)),
    # colour (channels drawn jointly), class labels, 2 blocks per resolution, 2 scales
    "rgb_labels": ("pixelcnnpp_cifar10", (6, 4, 3),
                   dict(num_classes=3, num_layers=2, num_scales=2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cached_sampler_draws_the_full_samplers_levels(case):
  name, shape, model = CASES[case]
  tr, params = _random_trainer(name, shape, **model)
  n, (h, w, c) = 4, shape
  labels = jnp.arange(n) % tr.num_classes if tr.num_classes else None

  def both(key, given, visible):
    full = tr.sample_levels(params, key, n, labels, given, visible, cached=False)
    cached, outs = tr.sample_levels_cached(params, key, given,
                                           jnp.broadcast_to(visible, (n, h, w)),
                                           labels, return_outputs=True)
    return full, cached, outs, tr.apply(params, cached, labels)

  both = jax.jit(both)
  # sampling: nothing given
  none = jnp.zeros((n, h, w, c), jnp.int32)
  full, cached, outs, reference = map(np.asarray, both(jax.random.key(2), none,
                                                       jnp.zeros((h, w), bool)))
  assert len(np.unique(full)) > 10  # real draws over the 256 levels, not a constant
  np.testing.assert_array_equal(cached, full)
  np.testing.assert_allclose(outs, reference, rtol=1e-5, atol=1e-5)

  # completion: the given pixels are kept, also those after the first sampled one
  given = jax.random.randint(jax.random.key(3), (n, h, w, c), 0, 256)
  visible = jax.random.uniform(jax.random.key(4), (h, w)) < 0.5
  full, cached, outs, reference = map(np.asarray, both(jax.random.key(5), given,
                                                       visible))
  np.testing.assert_array_equal(cached, full)
  np.testing.assert_array_equal(cached[:, np.asarray(visible)],
                                np.asarray(given)[:, np.asarray(visible)])
  np.testing.assert_allclose(outs, reference, rtol=1e-5, atol=1e-5)


def test_the_plan_refuses_a_network_it_does_not_follow():
  """A layer the plan does not walk (here an extra one) is an error, not a sampler
  that silently ignores it."""
  tr, params = _random_trainer("pixelcnnpp_mnist", (8, 8, 1))
  extra = {**params, "WNConv_99": params["WNConv_0"]}
  with pytest.raises(ValueError, match=r"WNConv_99.*build_plan"):
    fast_sampling.build_plan(tr.net, fast_sampling.normalized(extra))


def test_pixelcnnpp_samples_through_the_cached_sampler_by_default(monkeypatch):
  """``sample_levels`` (what ``generate``, ``sample_images`` and ``complete`` call)
  hands PixelCNN++ to the cached sampler unless ``cached=False``."""
  tr, params = _random_trainer("pixelcnnpp_mnist", (4, 4, 1))
  calls = []
  monkeypatch.setattr(tr, "sample_levels_cached",
                      lambda *args, **kw: calls.append(args) or "cached")
  assert tr.sample_levels(params, jax.random.key(0), 2) == "cached"
  given = jnp.ones((2, 4, 4, 1), jnp.int32)
  assert tr.sample_levels(params, jax.random.key(0), 2, None, given,
                          jnp.eye(4, dtype=bool)) == "cached"
  np.testing.assert_array_equal(np.asarray(calls[1][2]), np.asarray(given))
  full = jax.eval_shape(lambda: tr.sample_levels(params, jax.random.key(0), 2,
                                                 cached=False))
  assert full.shape == (2, 4, 4, 1) and len(calls) == 2
