"""python -m jaxgen.families.unclip.edit through its main function, on PNGs written
here and the shared tiny decoder run: the pictures of each mode (the source where
the row says), and every bad input as one error line with nothing written."""
import numpy as np
import pytest
from conftest import load_config
from PIL import Image

from jaxgen import data
from jaxgen.evaluators.features import real_images
from jaxgen.families.unclip import edit


@pytest.fixture(scope="module")
def canvases():
  """Two test canvases of mnist5k_captions (uint8, 32 x 32) and their captions."""
  config = load_config("unclip_mnist", "tiny")
  images, _ = real_images(config.data, "test", batch_size=2)
  texts, _ = real_images(config.data, "test", batch_size=2, key="text")
  tokenizer = data.caption_tokenizer(config.data, "the test")
  x = np.round(next(images)[..., 0] * 255).astype(np.uint8)
  return x, tokenizer.decode_batch(next(texts))


def write_png(path, array):
  Image.fromarray(array).save(path)
  return str(path)


def cells(path, count, side=32):
  """The ``count`` cells (side x side, uint8) of a one-row strip saved by edit."""
  strip = np.asarray(Image.open(path))
  width = count * (side + 1) + 1
  factor = strip.shape[1] // width
  assert strip.shape[1] == width * factor and strip.shape[0] == (side + 2) * factor
  small = strip[::factor, ::factor]
  return [small[1:1 + side, 1 + i * (side + 1):1 + i * (side + 1) + side]
          for i in range(count)]


def run(capsys, *argv):
  """edit.main's exit status and its stderr lines."""
  try:
    edit.main(list(argv))
    status = 0
  except SystemExit as e:
    status = e.code
  err = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
  return status, err


def test_variations_interpolation_and_text_diff_of_image_files(tiny_runs, canvases,
                                                              tmp_path, capsys):
  decoder = tiny_runs("unclip_mnist")
  x, captions = canvases
  a = write_png(tmp_path / "a.png", x[0])
  b = write_png(tmp_path / "b.png", x[1])
  # a 64 x 64 file is resized (bilinear) to the run's 32 x 32
  big = write_png(tmp_path / "big.png", np.asarray(
      Image.fromarray(x[1]).resize((64, 64), Image.NEAREST)))
  out = tmp_path / "out"
  assert run(capsys, f"--workdir={decoder}", f"--images={a},{big}", f"--out={out}",
             "--seeds=2") == (0, [])
  etas = load_config("unclip_mnist", "tiny").sample.bipartite_etas
  row = cells(out / "a_variations.png", 1 + 2 + 2 * len(etas))
  np.testing.assert_array_equal(row[0], x[0])  # the source, then its variations
  row = cells(out / "big_variations.png", 1 + 2 + 2 * len(etas))
  assert np.abs(row[0].astype(float) - x[1]).mean() < 8  # resized back, about
  assert run(capsys, f"--workdir={decoder}", f"--images={a},{b}", f"--out={out}",
             "--mode=interpolation", "--steps=3") == (0, [])
  row = cells(out / "interpolation.png", 5)
  np.testing.assert_array_equal(row[0], x[0])
  np.testing.assert_array_equal(row[-1], x[1])
  # text diff: from each image's own caption toward the same caption's digit changed
  words = captions[0].split()
  digit = next(w for w in words if w.isdigit())
  target = " ".join(str((int(w) + 1) % 10) if w == digit else w for w in words)
  assert run(capsys, f"--workdir={decoder}", f"--images={a}", f"--out={out}",
             "--mode=text_diff", f"--source_caption={captions[0]}",
             f"--target_caption={target}", "--steps=3") == (0, [])
  row = cells(out / "a_text_diff.png", 4)
  np.testing.assert_array_equal(row[0], x[0])


def test_bad_input_is_one_line_and_writes_nothing(tiny_runs, canvases, tmp_path, capsys):
  decoder, prior = tiny_runs("unclip_mnist"), tiny_runs("unclip_prior_mnist")
  x, captions = canvases
  good = write_png(tmp_path / "good.png", x[0])
  other = write_png(tmp_path / "other.png", x[1])
  broken = tmp_path / "broken.png"
  broken.write_bytes(b"not a png at all")
  wide = write_png(tmp_path / "wide.png", np.zeros((32, 48), np.uint8))
  tiny = write_png(tmp_path / "tiny.png", np.zeros((8, 8), np.uint8))
  out = tmp_path / "out"
  cases = [
      ([f"--workdir={decoder}", f"--images={broken}"], "broken.png is not a readable"),
      ([f"--workdir={decoder}", f"--images={wide}"], "is 48x32 pixels, and the run's "
                                                     "images are 32x32: it is not square"),
      ([f"--workdir={decoder}", f"--images={tiny}"], "smaller than half that"),
      ([f"--workdir={decoder}", f"--images={tmp_path / 'none.png'}"], "no such image"),
      ([f"--workdir={prior}", f"--images={good}"], "is an unclip prior run, not an "
                                                   "unclip decoder run"),
      ([f"--workdir={tmp_path}", f"--images={good}"], "is not a jaxgen run"),
      ([f"--workdir={decoder}", f"--images={good}", "--mode=interpolation"],
       "give two --images, not 1"),
      ([f"--workdir={decoder}", f"--images={good},{other}", "--mode=text_diff",
        "--source_caption=a 3", "--target_caption=a purple 3"],
       "'purple', which is not in the run's caption vocabulary"),
      ([f"--workdir={decoder}", f"--images={good}", "--mode=text_diff"],
       "--source_caption is empty"),
      ([f"--workdir={decoder}", f"--images={good}", "--source_caption=a 3"],
       "are for --mode=text_diff"),
      ([f"--workdir={decoder}", f"--images={good},{tmp_path / 'x' / 'good.png'}"],
       "no such image"),
  ]
  for argv, message in cases:
    status, err = run(capsys, *argv, f"--out={out}")
    assert status == 2 and len(err) == 1, (argv, err)
    assert message in err[0], (message, err[0])
    assert not out.exists()
  # two files of one name would overwrite each other
  (tmp_path / "x").mkdir()
  twin = write_png(tmp_path / "x" / "good.png", x[1])
  status, err = run(capsys, f"--workdir={decoder}", f"--images={good},{twin}",
                    f"--out={out}")
  assert status == 2 and "Two images are named 'good'" in err[0]
  assert not out.exists()
