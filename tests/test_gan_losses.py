"""GAN losses against float64 computations on probabilities, at extreme logits, and the
R1 penalty against closed-form input gradients."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import losses

REAL = np.array([-3.0, -0.7, 0.0, 0.4, 2.5, 6.0])
FAKE = np.array([-5.0, -1.2, 0.0, 0.9, 3.0])


def _d(logits):
  """D = sigmoid(logits) in float64."""
  return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


def _j(x):
  return jnp.asarray(x, jnp.float32)


def test_gan_value_matches_log_of_probabilities():
  ref = np.mean(np.log(_d(REAL))) + np.mean(np.log(1 - _d(FAKE)))
  np.testing.assert_allclose(losses.gan_value(_j(REAL), _j(FAKE)), ref, rtol=1e-6)


def test_value_at_the_uninformed_discriminator_is_minus_log_4():
  zeros = jnp.zeros(7)
  np.testing.assert_allclose(losses.gan_value(zeros, zeros), -math.log(4), rtol=1e-7)


@pytest.mark.parametrize("kind", ["minimax", "nonsaturating"])
def test_discriminator_cross_entropy(kind):
  ref = -(np.mean(np.log(_d(REAL))) + np.mean(np.log(1 - _d(FAKE))))
  got = losses.discriminator_loss(_j(REAL), _j(FAKE), kind)
  np.testing.assert_allclose(got, ref, rtol=1e-6)
  # The same as optax's binary cross-entropy with targets real 1, fake 0.
  bce = (optax.sigmoid_binary_cross_entropy(_j(REAL), jnp.ones(len(REAL))).mean()
         + optax.sigmoid_binary_cross_entropy(_j(FAKE), jnp.zeros(len(FAKE))).mean())
  np.testing.assert_allclose(got, bce, rtol=1e-6)


def test_discriminator_hinge_and_least_squares():
  hinge = np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))
  lsgan = 0.5 * np.mean((REAL - 1) ** 2) + 0.5 * np.mean(FAKE ** 2)
  np.testing.assert_allclose(losses.discriminator_loss(_j(REAL), _j(FAKE), "hinge"),
                             hinge, rtol=1e-6)
  np.testing.assert_allclose(losses.discriminator_loss(_j(REAL), _j(FAKE), "lsgan"),
                             lsgan, rtol=1e-6)


def test_generator_losses():
  d = _d(FAKE)
  refs = {"minimax": np.mean(np.log(1 - d)), "nonsaturating": -np.mean(np.log(d)),
          "hinge": -np.mean(FAKE), "lsgan": 0.5 * np.mean((FAKE - 1) ** 2)}
  for kind, ref in refs.items():
    np.testing.assert_allclose(losses.generator_loss(_j(FAKE), kind), ref, rtol=1e-6,
                               err_msg=kind)


def test_default_kind_is_nonsaturating():
  np.testing.assert_allclose(losses.generator_loss(_j(FAKE)),
                             losses.generator_loss(_j(FAKE), "nonsaturating"))
  np.testing.assert_allclose(losses.discriminator_loss(_j(REAL), _j(FAKE)),
                             -losses.gan_value(_j(REAL), _j(FAKE)))


def test_unknown_kind_names_the_choices():
  with pytest.raises(ValueError, match="minimax, nonsaturating, hinge, lsgan"):
    losses.generator_loss(_j(FAKE), "wasserstein")
  with pytest.raises(ValueError, match="'bce'"):
    losses.discriminator_loss(_j(REAL), _j(FAKE), "bce")


@pytest.mark.parametrize("big", [100.0, 1e4])
def test_extreme_logits_give_finite_values_and_gradients(big):
  real = _j([-big, big, 0.0])
  fake = _j([big, -big, 0.0])
  for kind in losses.GAN_LOSSES:
    d_val, d_grads = jax.value_and_grad(losses.discriminator_loss, argnums=(0, 1))(
        real, fake, kind)
    g_val, g_grad = jax.value_and_grad(losses.generator_loss)(fake, kind)
    for a in (d_val, *d_grads, g_val, g_grad):
      assert np.isfinite(np.asarray(a)).all(), (kind, big)
  # The cross-entropy is linear in the logits far out: -log sigmoid(-big) = big.
  np.testing.assert_allclose(losses.discriminator_loss(real, fake),
                             2 * (big + math.log(2)) / 3, rtol=1e-6)
  np.testing.assert_allclose(losses.gan_value(real, fake),
                             -2 * (big + math.log(2)) / 3, rtol=1e-6)


def test_saturating_and_nonsaturating_gradients_at_a_rejected_sample():
  # dL/dl for one fake logit l: saturating -sigmoid(l), non-saturating -(1 - sigmoid(l)).
  for l in (-100.0, -20.0, -5.0, 0.0, 3.0):
    sat = jax.grad(lambda v: losses.generator_loss(v, "minimax"))(_j([l]))[0]
    ns = jax.grad(lambda v: losses.generator_loss(v, "nonsaturating"))(_j([l]))[0]
    np.testing.assert_allclose(sat, -_d(l), rtol=1e-5, atol=1e-38)
    np.testing.assert_allclose(ns, -(1 - _d(l)), rtol=1e-5)
  # D(G(z)) -> 0: the saturating gradient vanishes, the non-saturating one is ~ -1.
  sat = jax.grad(lambda v: losses.generator_loss(v, "minimax"))(_j([-20.0]))[0]
  ns = jax.grad(lambda v: losses.generator_loss(v, "nonsaturating"))(_j([-20.0]))[0]
  assert abs(ns) / abs(sat) > 1e8


def test_saturating_and_nonsaturating_share_their_fixed_points():
  # Through a discriminator l(x) = 2 - (x - 1)^2 the generator's per-sample gradients
  # under both losses are -w(x) l'(x) with w > 0: they vanish at the same point x = 1,
  # agree in sign everywhere, and differ by the factor (1 - D) / D = exp(-l).
  logit = lambda x: 2.0 - (x - 1.0) ** 2
  x = jnp.linspace(-2.0, 4.0, 13)
  grads = {kind: jax.grad(lambda v: losses.generator_loss(logit(v), kind) * len(x))(x)
           for kind in ("minimax", "nonsaturating")}
  sat, ns = np.asarray(grads["minimax"]), np.asarray(grads["nonsaturating"])
  i = int(np.argmin(np.abs(np.asarray(x) - 1.0)))
  assert sat[i] == 0 and ns[i] == 0
  others = np.arange(len(x)) != i
  np.testing.assert_array_equal(np.sign(sat[others]), np.sign(ns[others]))
  np.testing.assert_allclose(ns[others] / sat[others],
                             np.exp(-logit(np.asarray(x, np.float64)))[others], rtol=1e-4)


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm():
  w = jnp.array([0.5, -2.0, 1.5])
  x = jax.random.normal(jax.random.key(0), (8, 3))
  expected = float(jnp.sum(w ** 2))
  np.testing.assert_allclose(losses.r1_penalty(lambda v: v @ w, x), expected, rtol=1e-6)
  np.testing.assert_allclose(losses.r1_penalty(lambda v: (v @ w)[:, None] + 3.0, x),
                             expected, rtol=1e-6)
  # Its gradient w.r.t. the discriminator's parameters (what the trainer needs): 2 w.
  g = jax.grad(lambda w_: losses.r1_penalty(lambda v: v @ w_, x))(w)
  np.testing.assert_allclose(g, 2 * w, rtol=1e-6)


def test_r1_of_a_quadratic_discriminator_on_images():
  # d(x) = 1/2 x^T A x per example over the flattened image: grad = A x (A symmetric).
  key_a, key_x = jax.random.split(jax.random.key(1))
  m = jax.random.normal(key_a, (12, 12))
  a = m + m.T
  x = jax.random.normal(key_x, (5, 2, 3, 2))
  d_fn = lambda v: 0.5 * jnp.einsum("bi,ij,bj->b", v.reshape(5, -1), a, v.reshape(5, -1))
  flat = np.asarray(x, np.float64).reshape(5, -1)
  expected = np.mean(np.sum((flat @ np.asarray(a, np.float64)) ** 2, axis=1))
  np.testing.assert_allclose(losses.r1_penalty(d_fn, x), expected, rtol=1e-5)
