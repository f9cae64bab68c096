"""The domain-B digit reader of mnist5k_styles (``features.get("styles_classifier")``,
the MNIST classifier's network trained on the restyled training digits by ``python -m
jaxgen.train_mnist_classifier --dataset=mnist5k_styles``): the shipped weights read
the real restyled test digits at their measured accuracy (the ceiling of the styles
evaluator's ``class_accuracy_ab``), the command's file, its training augmentation, and
clear errors."""
import dataclasses

import jax
import numpy as np
import pytest

from conftest import run_cli_in_process
from jaxgen import train_mnist_classifier, weights
from jaxgen.data.mnist5k_derived import restyle, styles_ground_truth
from jaxgen.metrics import features
from jaxgen.metrics import mnist_classifier as mc

READER = mc.READERS["styles_classifier"]
# Measured with the shipped file (python -m jaxgen.train_mnist_classifier
# --dataset=mnist5k_styles prints them): the 500 restyled test digits, and those of
# light and of dark backgrounds.
CEILING = {"all": 0.964, "light": 0.9714, "dark": 0.9569}


def _layout(params):
  return jax.tree.map(lambda x: (x.shape, str(x.dtype)), jax.device_get(params))


@pytest.fixture(scope="module")
def reader():
  return features.get("styles_classifier")


def test_the_shipped_reader_reads_restyled_test_digits_at_its_ceiling(reader):
  gt = styles_ground_truth("test", 0)
  read = reader(gt["domain_b"], progress=False)["logits"].argmax(-1) == gt["label"]
  dark = gt["dark_background"]
  assert reader.name == "styles-classifier" and 0 < dark.sum() < len(dark)
  for part, keep in (("all", slice(None)), ("light", ~dark), ("dark", dark)):
    assert read[keep].mean() == pytest.approx(CEILING[part], abs=0.004), part
  # It reads the digit, not the palette: the same digits restyled in other styles
  # (each test digit in another digit's colour and texture, channels reversed) too.
  other = np.roll(np.arange(len(dark)), 1)
  restyled = restyle(gt["digit"], gt["colour"][other][:, ::-1],
                     gt["texture"][other][..., ::-1])
  again = reader(restyled, progress=False)["logits"].argmax(-1) == gt["label"]
  assert again.mean() > CEILING["all"] - 0.03
  # The MNIST classifier is no such reader: restyled digits on light backgrounds are
  # dark strokes on light grey to it.
  grey = gt["domain_b"].mean(-1, keepdims=True) / 255
  mnist = features.get("mnist_classifier")
  plain_read = mnist(grey, progress=False)["logits"].argmax(-1) == gt["label"]
  assert plain_read[~dark].mean() < CEILING["light"] - 0.2


def test_the_reader_takes_28x28_rgb_digits(reader):
  with pytest.raises(ValueError, match=r"28x28 images of 3 channels .*\(5, 28, 28, 1\)"):
    reader(np.zeros((5, 28, 28, 1), np.float32), progress=False)
  with pytest.raises(ValueError, match="must lie in"):
    reader(-np.ones((2, 28, 28, 3), np.float32), progress=False)


def test_training_shifts_wrap_and_permutes_channels():
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(20, 28, 28, 3)).astype(np.float32)
  out = mc.shift(images, np.random.default_rng(1), mode="wrap")
  for before, after in zip(images, out):  # a cyclic translation: nothing lost
    assert any(np.array_equal(np.roll(before, (dy, dx), axis=(0, 1)), after)
               for dy in range(-2, 3) for dx in range(-2, 3))
  permuted = mc.permute_channels(images, np.random.default_rng(2))
  orders = set()
  for before, after in zip(images, permuted):
    order = [int(np.flatnonzero([np.array_equal(after[..., c], before[..., k])
                                 for k in range(3)])[0]) for c in range(3)]
    assert sorted(order) == [0, 1, 2]
    orders.add(tuple(order))
  assert len(orders) > 2


def test_the_command_trains_the_styles_reader(tmp_path):
  out = tmp_path / "reader.npz"
  proc = run_cli_in_process(train_mnist_classifier.main, "--dataset=mnist5k_styles",
                            "--steps=2", "--batch_size=8", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  for line in ("test accuracy", "500 held-out digits", "on light backgrounds",
               "on dark backgrounds", f"SHA-256 {weights.sha256(out)}"):
    assert line in proc.stdout
  params = mc.load_params(out)
  assert _layout(params) == _layout(mc.load_params(READER.weights))
  assert params["Conv_0"]["kernel"].shape[2] == 3  # RGB in


def test_missing_weights_name_the_command(tmp_path, monkeypatch):
  moved = dataclasses.replace(READER, weights=tmp_path / "styles_classifier.npz")
  monkeypatch.setitem(mc.READERS, "styles_classifier", moved)
  with pytest.raises(FileNotFoundError, match=r"missing; recreate them with python -m "
                     r"jaxgen.train_mnist_classifier --dataset=mnist5k_styles "):
    features.get("styles_classifier")
