"""The official generators: junyanz's unet_256 and resnet_9blocks, built in PyTorch
from models/networks.py with seeded random weights in the official state-dict format
(tests/fixtures/make_translation_fixture.py), give the outputs of the Flax ports that
load those files; a folder of images translates; other architectures are refused."""
import os

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from jaxgen import translate
from jaxgen.weights import junyanz
from jaxgen.weights import torch_pickle
from jaxgen import weights

FIXTURES = os.path.join(REPO, "tests", "fixtures")
UNET = os.path.join(FIXTURES, "translation_unet_256.pth")
RESNET = os.path.join(FIXTURES, "translation_resnet_9blocks.pth")
ROWS = slice(96, 160)  # the U-Net output rows the fixture keeps


@pytest.fixture(scope="module")
def parity():
  with np.load(os.path.join(FIXTURES, "translation_parity.npz")) as f:
    return dict(f)


def _x(u8):
  return u8.astype(np.float32) / 127.5 - 1


def test_unet_256_parity(parity):
  """Running statistics without dropout (the reference's model.eval()), and each
  image's own statistics with dropout off (BatchNorm in training mode, as test.py
  without --eval runs it, but for the dropout draws)."""
  module, variables = junyanz.load_generator(UNET, "unet_256")
  assert module.num_downs == 8 and module.ngf == 2
  x = _x(parity["unet_input"])
  out = jax.jit(lambda v: translate.apply_generator(module, v, x, norm="running"))(
      variables)
  np.testing.assert_allclose(np.asarray(out)[:, ROWS], parity["unet_eval"], atol=2e-5)
  batch = jax.jit(lambda v: module.apply(v, x, train=True, dropout=False,
                                         mutable=["batch_stats"])[0])(variables)
  np.testing.assert_allclose(np.asarray(batch)[:, ROWS], parity["unet_batch_stats"],
                             atol=2e-5)


def test_resnet_9blocks_parity_and_folder(parity, tmp_path):
  """The ResNet generator's outputs; then the same images as PNG files through
  ``python -m jaxgen.translate``'s main: its PNGs are the outputs in uint8."""
  module, variables = junyanz.load_generator(RESNET, "resnet_9blocks")
  assert module.n_blocks == 9 and module.ngf == 4
  x = _x(parity["resnet_input"])
  out = jax.jit(lambda v: translate.apply_generator(module, v, x))(variables)
  np.testing.assert_allclose(np.asarray(out), parity["resnet"], atol=2e-5)

  src, dst = tmp_path / "in", tmp_path / "out"
  src.mkdir()
  for i, img in enumerate(parity["resnet_input"]):
    Image.fromarray(img).save(src / f"img{i}.png")
  translate.main([f"--weights={RESNET}", "--arch=resnet_9blocks", f"--input={src}",
                  f"--output={dst}", "--size=32"])
  for i in range(len(x)):
    got = np.asarray(Image.open(dst / f"img{i}.png")).astype(int)
    want = np.round((parity["resnet"][i] + 1) * 127.5)
    assert np.abs(got - want).max() <= 1


def test_other_architecture_is_a_clear_error(tmp_path):
  with pytest.raises(junyanz.GeneratorFileError,
                     match="holds resnet_9blocks .* not unet_256: pass "
                           "--arch=resnet_9blocks"):
    junyanz.load_generator(RESNET, "unet_256")
  with pytest.raises(junyanz.GeneratorFileError, match="holds unet_256 .* not "
                                                         "resnet_9blocks"):
    junyanz.load_generator(UNET, "resnet_9blocks")
  with pytest.raises(junyanz.GeneratorFileError, match="not unet_128"):
    junyanz.load_generator(UNET, "unet_128")
  # A U-Net file with one layer too many: refused, naming the extra entry.
  state = torch_pickle.load_state_dict(UNET)
  state["model.model.9.weight"] = np.zeros((2, 2), np.float32)
  bad = tmp_path / "bad.pth"
  torch_pickle.save_state_dict(bad, state)
  with pytest.raises(junyanz.GeneratorFileError, match="model.model.9.weight"):
    junyanz.load_generator(bad, "unet_256")
  with pytest.raises(SystemExit, match="holds resnet_9blocks"):
    translate.main([f"--weights={RESNET}", "--arch=unet_256", f"--input={tmp_path}",
                    f"--output={tmp_path / 'o'}"])


def test_released_generators_are_registered():
  assert weights.KNOWN["pix2pix_facades_label2photo"].url == (
      "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/"
      "facades_label2photo.pth")
  assert weights.KNOWN["cyclegan_horse2zebra"].url == (
      "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth")
  with pytest.raises(weights.WeightsError, match="downloading is disabled"):
    weights.resolve("cyclegan_horse2zebra", download=False)
