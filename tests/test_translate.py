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


READ_ONLY = "/sys"  # a folder that no process, root included, may write into


def translate_main(*args):
  """``python -m jaxgen.translate ARGS``'s main in this process: (exit status,
  stderr)."""
  import contextlib
  import io
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    try:
      translate.main([str(a) for a in args])
      code = 0
    except SystemExit as e:
      code = e.code
  return code, err.getvalue()


def assert_one_error_line(code, stderr, *fragments):
  lines = [l for l in stderr.splitlines() if l.strip()]
  assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
  for fragment in fragments:
    assert fragment in lines[0], stderr


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
  Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
  code, err = translate_main(f"--weights={RESNET}", "--arch=unet_256",
                             f"--input={tmp_path}", f"--output={tmp_path / 'o'}")
  assert_one_error_line(code, err, "holds resnet_9blocks")


def test_released_generators_are_registered():
  assert weights.KNOWN["pix2pix_facades_label2photo"].url == (
      "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/"
      "facades_label2photo.pth")
  assert weights.KNOWN["cyclegan_horse2zebra"].url == (
      "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth")
  with pytest.raises(weights.WeightsError, match="downloading is disabled"):
    weights.resolve("cyclegan_horse2zebra", download=False)


def test_bad_destinations_and_sizes_are_one_line_before_any_work(tmp_path, monkeypatch):
  """Issue 31 §5: an --output that is a file or cannot be written, and --size=0, are
  refused before the generator is read."""
  src = tmp_path / "in"
  src.mkdir()
  Image.new("RGB", (32, 32), (90, 120, 30)).save(src / "a.png")
  (tmp_path / "file").write_text("")
  read = []
  monkeypatch.setattr(junyanz, "load_generator", lambda *a: read.append(a) or 1 / 0)
  for output, size, fragment in ((tmp_path / "file", 32, "is a file"),
                                 (f"{READ_ONLY}/out", 32, "cannot be written"),
                                 (tmp_path / "out", 0, "--size=0")):
    code, err = translate_main(f"--weights={RESNET}", "--arch=resnet_9blocks",
                               f"--input={src}", f"--output={output}", f"--size={size}")
    assert_one_error_line(code, err, fragment)
  assert not read and sorted(os.listdir(tmp_path)) == ["file", "in"]


def test_a_registered_name_without_network_is_one_line(monkeypatch, tmp_path):
  import urllib.error
  import urllib.request

  def offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
  monkeypatch.setattr(urllib.request, "urlopen", offline)
  monkeypatch.setenv("JAXGEN_CACHE", str(tmp_path / "cache"))
  (tmp_path / "in").mkdir()
  Image.new("RGB", (32, 32)).save(tmp_path / "in" / "a.png")
  code, err = translate_main("--weights=cyclegan_horse2zebra", "--arch=resnet_9blocks",
                             f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'out'}")
  assert_one_error_line(code, err, "horse2zebra.pth", str(tmp_path / "cache"))


def test_a_folder_with_an_unreadable_image_is_refused_before_any_output(tmp_path):
  """Issue 31 §2: every image is read before the first is written; the unreadable
  ones are named, and nothing is written (the chosen behaviour: check all first)."""
  src, dst = tmp_path / "in", tmp_path / "out"
  src.mkdir()
  for name in ("a", "c"):
    Image.new("RGB", (32, 32), (90, 120, 30)).save(src / f"{name}.png")
  data = (src / "a.png").read_bytes()
  (src / "b.png").write_bytes(data[:len(data) // 2])  # cut short
  code, err = translate_main(f"--weights={RESNET}", "--arch=resnet_9blocks",
                             f"--input={src}", f"--output={dst}", "--size=32")
  assert_one_error_line(code, err, str(src / "b.png"), "nothing was written")
  assert not dst.exists() or not os.listdir(dst)


def test_sixteen_bit_and_transparent_images_translate_as_their_8_bit_equals(tmp_path):
  """Issue 31 §4: a 16-bit grey PNG is read at its depth (PIL alone clips it to 255:
  99.5% of a 0..65535 gradient turned white), and a drawing held in the alpha channel
  is composited on white, as the 8-bit, opaque image with the same picture."""
  ramp = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))  # 0..248
  src, dst = tmp_path / "in", tmp_path / "out"
  src.mkdir()
  Image.fromarray(ramp).save(src / "flat.png")
  # The same grey levels in 16 bits: v * 257 / 65535 = v / 255.
  Image.fromarray(ramp.astype(np.uint16) * 257).save(src / "deep.png")
  ink = np.zeros((32, 32, 4), np.uint8)
  ink[..., 3] = 255 - ramp  # black ink, its strength in the alpha channel alone
  Image.fromarray(ink).save(src / "ink.png")
  assert Image.open(src / "deep.png").mode == "I;16"
  code, err = translate_main(f"--weights={RESNET}", "--arch=resnet_9blocks",
                             f"--input={src}", f"--output={dst}", "--size=32")
  assert code == 0, err
  flat = np.asarray(Image.open(dst / "flat.png"))
  differ = [name for name in ("deep", "ink")
            if not np.array_equal(np.asarray(Image.open(dst / f"{name}.png")), flat)]
  assert not differ
