"""The MNIST classifier's training (jaxgen/metrics/mnist_classifier.py's ``train``, run
by ``python -m jaxgen.train_mnist_classifier``) for a few steps: the shipped file's
parameter layout, the same parameters from the same seed, and the command's file. The
shipped weights themselves are tested in tests/test_score.py."""
import jax
import numpy as np

from conftest import run_cli_in_process
from jaxgen import train_mnist_classifier, weights
from jaxgen.data import sources
from jaxgen.metrics import mnist_classifier as mc


def _layout(params):
  return jax.tree.map(lambda x: (x.shape, str(x.dtype)), jax.device_get(params))


def test_shift_translates_by_at_most_two_pixels():
  rng = np.random.default_rng(0)
  images = np.zeros((50, 28, 28, 1), np.float32)
  images[:, 10:18, 12:16] = rng.uniform(size=(50, 8, 4, 1))  # ink away from the border
  out = mc.shift(images, np.random.default_rng(1))
  assert out.shape == images.shape
  offsets = set()
  for before, after in zip(images, out):
    found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
             if np.array_equal(np.roll(before, (dy, dx), axis=(0, 1)), after)]
    assert len(found) == 1  # exactly one translation, zero-filled (no ink wrapped)
    offsets.add(found[0])
  assert len(offsets) > 10  # the offsets vary over the 25 possible
  np.testing.assert_array_equal(mc.shift(images, rng, max_shift=0), images)


def test_a_few_training_steps_give_the_shipped_layout_reproducibly():
  train = sources.mnist5k_arrays("train")
  images, labels = train["image"][::50], train["label"][::50]  # 90 digits, all classes
  logged = []
  params = mc.train(images, labels, steps=4, batch_size=8, seed=0,
                    log=lambda step, loss: logged.append((step, loss)), log_every=2)
  assert _layout(params) == _layout(mc.load_params())
  assert [s for s, _ in logged] == [2, 4] and all(np.isfinite(l) for _, l in logged)
  again = mc.train(images, labels, steps=4, batch_size=8, seed=0)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params),
               jax.device_get(again))
  other = mc.train(images, labels, steps=4, batch_size=8, seed=1)
  assert not np.array_equal(params["Dense_1"]["kernel"], other["Dense_1"]["kernel"])
  assert 0.0 <= mc.accuracy(params, images, labels) <= 1.0


def test_the_command_writes_loadable_weights(tmp_path):
  out = tmp_path / "classifier.npz"
  proc = run_cli_in_process(train_mnist_classifier.main, "--steps=2", "--batch_size=8",
                            f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "test accuracy" in proc.stdout and "500 held-out digits" in proc.stdout
  assert f"SHA-256 {weights.sha256(out)}" in proc.stdout
  assert _layout(mc.load_params(out)) == _layout(mc.load_params())
