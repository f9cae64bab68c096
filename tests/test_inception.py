"""The FID Inception port against pytorch-fid, torch's file format, and both resize conventions.

The committed fixtures come from tests/fixtures/make_inception_fixture.py (torch,
torchvision, pytorch-fid); the random weights and images they were computed from are
regenerated here from tests/fixtures/inception_random_weights.py, without torch.
"""
from __future__ import annotations

import importlib.util
import math
import pathlib
import pickle
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import run_cli_in_process
from jaxgen.metrics import features, inception
from jaxgen.weights import torch_pickle
from jaxgen import weights

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _load_fixture_helper():
  spec = importlib.util.spec_from_file_location(
      "inception_random_weights", FIXTURES / "inception_random_weights.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


rw = _load_fixture_helper()


@pytest.fixture(scope="module")
def random_state():
  """The fixture's random state dict, generated once (read-only: copy before editing)."""
  state = rw.random_state_dict()
  for value in state.values():
    value.flags.writeable = False
  return state


@pytest.fixture(scope="module")
def random_weights(random_state, tmp_path_factory):
  """The fixture's random weights as a .pth file, written without torch."""
  path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
  torch_pickle.save_state_dict(path, random_state)
  return path


def _net(weights_path, mode):
  net = features.get("inception", weights=weights_path, mode=mode, batch_size=2)
  net.progress = False
  return net


@pytest.fixture(scope="module")
def pytorch_fid_net(random_weights):
  """pytorch-fid-mode features through the same path as real weights, built and
  compiled once for the module (the .pth is converted once into the tests' cache)."""
  return _net(random_weights, "pytorch-fid")


@pytest.fixture(scope="module")
def tf_net(random_weights):
  """The same weights in "tf" mode, also shared by every test of the module."""
  return _net(random_weights, "tf")


# ---------------------------------------------------------------------------------------
# The network.


def test_parameter_counts_match_pytorch_fid():
  variables = jax.eval_shape(inception.InceptionV3().init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32))
  def count(tree):
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))
  total = count(variables["params"])
  assert total == 23_850_960
  assert total - count(variables["params"]["fc"]) == 21_785_568
  outputs = jax.eval_shape(inception.InceptionV3().apply, variables,
                           jax.ShapeDtypeStruct((4, 299, 299, 3), jnp.float32))
  assert outputs["pool3"].shape == (4, 2048) and outputs["logits"].shape == (4, 1008)


def test_network_matches_pytorch_fid(pytorch_fid_net, random_weights):
  net = pytorch_fid_net
  expected = np.load(FIXTURES / "inception_parity.npz")
  # Three images of different sizes (299, up- and downsampled): three padded batches.
  out = net(rw.parity_images(), total=3)
  assert net.mode == "pytorch-fid" and net.name == "inception-v3-fid (pytorch-fid inputs)"
  assert net.weights_path == random_weights and net.fc_kernel.shape == (2048, 1008)
  # "logits" are the Inception Score's: without the classifier's bias.
  ours = {"pool3": out["features"], "logits": out["logits"] + net.fc_bias}
  for key in ("pool3", "logits"):
    assert ours[key].shape == expected[key].shape and ours[key].dtype == np.float32
    scale = np.abs(expected[key]).max()
    error = np.abs(ours[key] - expected[key]).max()
    assert error <= 1e-4 * scale, (key, error, scale)


def test_tf_mode_normalisation_batching_and_grey(pytorch_fid_net, tf_net):
  tf_features = tf_net
  images = np.random.default_rng(5).integers(0, 256, (3, 299, 299, 3)).astype(np.uint8)
  out = tf_features(images)
  # At 299x299 nothing is resized, and (x - 128) / 128 == 2 (x / 256) - 1 exactly.
  same = pytorch_fid_net(images / 256.0)
  for key in out:
    np.testing.assert_array_equal(out[key], same[key])
  # The stream regroups arrays of any length into the same batches.
  streamed = tf_features(iter([images[:1], images[1:]]), total=3)
  for key in out:
    np.testing.assert_array_equal(streamed[key], out[key])
  grey = images[:2, :, :, :1]
  np.testing.assert_array_equal(tf_features(grey)["features"],
                                tf_features(np.repeat(grey, 3, axis=-1))["features"])
  # Float samples in [0, 1] are rounded to uint8 first, as if saved as PNG files.
  np.testing.assert_array_equal(tf_features(images / 255.0)["features"], out["features"])
  empty = tf_features(images[:0])
  assert empty["features"].shape == (0, 2048) and empty["logits"].shape == (0, 1008)


# ---------------------------------------------------------------------------------------
# Resizing and input conventions.


def _tf1_resize_reference(x, height, width):
  """TF1 resize_bilinear (align_corners=False, no half-pixel centres), pixel by pixel."""
  n, h, w, c = x.shape
  x = x.astype(np.float64)
  out = np.zeros((n, height, width, c))
  for i in range(height):
    sy = i * h / height
    y0 = math.floor(sy)
    y1, fy = min(y0 + 1, h - 1), sy - y0
    for j in range(width):
      sx = j * w / width
      x0 = math.floor(sx)
      x1, fx = min(x0 + 1, w - 1), sx - x0
      top = x[:, y0, x0] + (x[:, y0, x1] - x[:, y0, x0]) * fx
      bottom = x[:, y1, x0] + (x[:, y1, x1] - x[:, y1, x0]) * fx
      out[:, i, j] = top + (bottom - top) * fy
  return out


def test_pytorch_fid_resize_matches_torch_interpolate():
  expected = np.load(FIXTURES / "inception_resize_torch.npz")
  for i, (x, (_, size)) in enumerate(zip(rw.resize_inputs(), rw.RESIZE_CASES)):
    y = inception.resize_bilinear(x, size, half_pixel_centers=True)
    np.testing.assert_allclose(y, expected[f"case{i}"], rtol=1e-6, atol=1e-4)


def test_tf_resize_matches_pixelwise_formula():
  for x, (_, size) in zip(rw.resize_inputs(), rw.RESIZE_CASES):
    y = inception.resize_bilinear(x, size, half_pixel_centers=False)
    np.testing.assert_allclose(y, _tf1_resize_reference(x, *size), rtol=1e-6, atol=1e-4)
  # The whole "tf" preprocessing of a small uint8 image, upsampled to 299.
  image = np.random.default_rng(6).integers(0, 256, (1, 23, 31, 3)).astype(np.uint8)
  expected = (_tf1_resize_reference(image, 299, 299) - 128) / 128
  np.testing.assert_allclose(inception.preprocess(image, "tf"), expected, rtol=0, atol=1e-5)


def test_tf_resize_matches_tensorflow():
  tf = pytest.importorskip("tensorflow")
  for x, (_, size) in zip(rw.resize_inputs(), rw.RESIZE_CASES):
    expected = tf.compat.v1.image.resize_bilinear(x, size, align_corners=False,
                                                  half_pixel_centers=False).numpy()
    y = inception.resize_bilinear(x, size, half_pixel_centers=False)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-4)


def test_to_uint8_rounds_like_saving_a_png():
  levels = np.arange(256) / 255.0
  np.testing.assert_array_equal(inception.to_uint8(levels), np.arange(256))
  np.testing.assert_array_equal(inception.to_uint8(np.array([0.49, 0.51]) / 255), [0, 1])
  with pytest.raises(ValueError, match=r"\[-1, 1\].*\(images \+ 1\) / 2"):
    inception.to_uint8(np.array([-1.0, 1.0]))


@pytest.mark.parametrize("images, mode, message", [
    (np.zeros((8, 8, 3), np.uint8), "tf", r"\(N, H, W, C\).*images\[None\]"),
    (np.zeros((2, 3, 8, 8), np.uint8), "tf", r"transpose\(0, 2, 3, 1\)"),
    (np.zeros((2, 8, 8, 4), np.uint8), "tf", r"alpha"),
    (np.zeros((2, 8, 8, 3), np.float32), "tf", r"uint8.*to_uint8"),
    (np.zeros((2, 8, 8, 3), np.uint8), "pytorch-fid", r"float.*images / 255"),
    (np.full((2, 8, 8, 3), -0.5), "pytorch-fid", r"range over \[-0.5, -0.5\].*\(images \+ 1\)"),
    (np.full((2, 8, 8, 3), 200.0), "pytorch-fid", r"range over \[200, 200\].*images / 255"),
    (np.full((2, 8, 8, 3), np.nan), "pytorch-fid", r"NaN"),
    (np.zeros((2, 8, 8, 3), np.uint8), "torch", r"Unknown Inception input mode"),
])
def test_bad_images_are_rejected_with_a_fix(images, mode, message):
  with pytest.raises(ValueError, match=message):
    inception.check_images(images, mode)


def test_the_stream_checks_every_batch(pytorch_fid_net):
  good = np.full((1, 8, 8, 3), 0.5, np.float32)
  with pytest.raises(ValueError, match=r"range over \[0.5, 2\]"):
    pytorch_fid_net([good, good, np.concatenate([good, 4 * good])])
  with pytest.raises(ValueError, match=r"float"):
    pytorch_fid_net(np.zeros((1, 8, 8, 3), np.uint8))


# ---------------------------------------------------------------------------------------
# torch_pickle.


def _assert_same_arrays(loaded, expected):
  assert list(loaded) == list(expected)
  for key, value in expected.items():
    assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape, key
    np.testing.assert_array_equal(loaded[key], value, err_msg=key)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_reads_files_written_by_torch(fmt):
  path = FIXTURES / f"inception_torch_{fmt}.pth"
  assert zipfile.is_zipfile(path) == (fmt == "zip")
  _assert_same_arrays(torch_pickle.load_state_dict(path), rw.small_state_dict())


def test_writer_round_trip(tmp_path):
  rng = np.random.default_rng(7)
  arrays = {
      "conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
      "transposed": rng.normal(size=(3, 5)).T,  # written from a non-contiguous array
      "half": rng.normal(size=(6,)).astype(np.float16),
      "big": np.array([2**40, -(2**62)], np.int64),
      "steps": np.array(12345, np.int64),
      "mask": rng.integers(0, 2, (2, 3)).astype(bool),
      "pixels": rng.integers(0, 256, (2, 2, 3)).astype(np.uint8),
      "empty": np.zeros((0, 3), np.float32),
  }
  path = tmp_path / "round_trip.pth"
  torch_pickle.save_state_dict(path, arrays)
  _assert_same_arrays(torch_pickle.load_state_dict(path), arrays)
  with pytest.raises(TypeError, match="complex64"):
    torch_pickle.save_state_dict(path, {"z": np.zeros(2, np.complex64)})


def _legacy_file(path, obj):
  """A legacy-format torch file whose object pickle is ``obj`` (no storages)."""
  with open(path, "wb") as f:
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
      pickle.dump(header, f, protocol=2)
    pickle.dump(obj, f, protocol=2)
    pickle.dump([], f, protocol=2)


class _RemoveFile:
  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    import os
    return os.remove, (str(self.path),)


def test_corrupt_or_foreign_files_give_clear_errors(tmp_path):
  for fmt in ("zip", "legacy"):
    data = (FIXTURES / f"inception_torch_{fmt}.pth").read_bytes()
    truncated = tmp_path / f"truncated_{fmt}.pth"
    truncated.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(torch_pickle.TorchPickleError, match="truncated or corrupt"):
      torch_pickle.load_state_dict(truncated)
  text = tmp_path / "text.pth"
  text.write_text("not a weights file")
  with pytest.raises(torch_pickle.TorchPickleError, match=str(text)):
    torch_pickle.load_state_dict(text)
  # A pickle that would run code when loaded is refused before it can.
  canary = tmp_path / "canary"
  canary.write_text("still here")
  evil = tmp_path / "evil.pth"
  _legacy_file(evil, {"x": _RemoveFile(canary)})
  with pytest.raises(torch_pickle.TorchPickleError, match="posix.remove|os.remove|nt.remove"):
    torch_pickle.load_state_dict(evil)
  assert canary.exists()
  checkpoint = tmp_path / "checkpoint.pth"
  _legacy_file(checkpoint, {"epoch": 3})
  with pytest.raises(torch_pickle.TorchPickleError, match="'epoch' is a int, not a tensor"):
    torch_pickle.load_state_dict(checkpoint)


# ---------------------------------------------------------------------------------------
# Weights conversion and cache.


def test_conversion_is_cached_by_content(random_state, random_weights, tmp_path,
                                         monkeypatch):
  monkeypatch.setenv("JAXGEN_CACHE", str(tmp_path))
  state = random_state
  variables = inception.load_variables(random_weights)
  cache = tmp_path / f"inception_{weights.sha256(random_weights)}.npz"
  assert cache.is_file()
  mtime = cache.stat().st_mtime_ns

  def no_conversion(path):
    raise AssertionError(f"{path} was converted again instead of read from the cache")
  monkeypatch.setattr(torch_pickle, "load_state_dict", no_conversion)
  cached = inception.load_variables(random_weights)
  assert cache.stat().st_mtime_ns == mtime
  jax.tree.map(np.testing.assert_array_equal, cached, variables)
  # The layouts: OIHW -> HWIO, fc transposed, BatchNorm weight -> scale, stats apart.
  params, stats = cached["params"], cached["batch_stats"]
  np.testing.assert_array_equal(params["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"],
                                state["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(params["fc"]["kernel"], state["fc.weight"].T)
  np.testing.assert_array_equal(params["Mixed_7c"]["branch_pool"]["bn"]["scale"],
                                state["Mixed_7c.branch_pool.bn.weight"])
  np.testing.assert_array_equal(stats["Conv2d_1a_3x3"]["bn"]["var"],
                                state["Conv2d_1a_3x3.bn.running_var"])


def test_wrong_weights_give_clear_errors(random_state, tmp_path, monkeypatch):
  monkeypatch.setenv("JAXGEN_CACHE", str(tmp_path))
  state = dict(random_state)
  state["fc.weight"] = state["fc.weight"][:1000]
  state["aux.weight"] = state.pop("fc.bias")
  with pytest.raises(ValueError, match=r"missing: params/fc/bias; unexpected: aux.weight; "
                                       r"wrong shape: fc.weight \(1000, 2048\)"):
    inception.convert_state_dict(state)
  data = (FIXTURES / "inception_torch_zip.pth").read_bytes()
  truncated = tmp_path / "pt_inception.pth"
  truncated.write_bytes(data[:-100])
  with pytest.raises(weights.WeightsError, match="truncated or corrupt"):
    inception.load_variables(truncated)
  assert not list(tmp_path.glob("inception_*.npz"))


def _low_rank_fid(f1, f2) -> float:
  """The FID of two sets of fewer samples than feature dimensions, in closed form and
  without a 2048 x 2048 square root: with S1 = A^T A and S2 = B^T B (A, B the centred
  features over sqrt(n - 1)), the nonzero eigenvalues of S1 S2 are the squared singular
  values of A B^T (n1 x n2), so Tr (S1 S2)^(1/2) is the nuclear norm of A B^T."""
  f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
  a = (f1 - f1.mean(0)) / np.sqrt(len(f1) - 1)
  b = (f2 - f2.mean(0)) / np.sqrt(len(f2) - 1)
  diff = f1.mean(0) - f2.mean(0)
  nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
  return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * nuclear)


def test_score_cli_inception_fid(random_weights, tf_net, pytorch_fid_net, tmp_path):
  """``python -m jaxgen.score`` with --weights: the KID the Python path gives from
  arrays (tf inputs), and the FID from PNG folders (pytorch-fid inputs)."""
  import json
  rng = np.random.default_rng(3)
  a = rng.integers(0, 256, (6, 40, 40, 3)).astype(np.uint8)
  b = np.clip(a.astype(int) + rng.integers(-60, 60, a.shape), 0, 255).astype(np.uint8)
  np.save(tmp_path / "a.npy", a)
  np.save(tmp_path / "b.npy", b)
  fa, fb = tf_net(a), tf_net(b)

  def score(*args):
    # In this process, at the fixtures' batch size: the same compiled programs (XLA's
    # cache), so the command adds no Inception compilation. The command itself runs
    # as a real subprocess in test_score.py.
    from jaxgen import score as cli
    proc = run_cli_in_process(cli.main, *args, "--weights", random_weights,
                              "--batch_size", 2, "--no_progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])

  # tf inputs from arrays, through KID (FID's 2048 x 2048 square root costs seconds;
  # the command's FID runs below on the pytorch-fid inputs).
  from jaxgen.metrics import kid
  expected, _ = kid.kernel_inception_distance(fa["features"], fb["features"], 3, 4)
  out = score("--metric", "kid", tmp_path / "a.npy", tmp_path / "b.npy",
              "--kid_subsets", 3, "--kid_subset_size", 4)
  assert out["feature_net"] == "inception-v3-fid (tf inputs)"
  assert out["value"] == pytest.approx(expected, rel=1e-4) and out["num_samples"] == [6, 6]

  # Folders of PNGs, as pytorch-fid users pass them, in pytorch-fid's convention.
  from PIL import Image
  for name, images in (("a", a), ("b", b)):
    (tmp_path / name).mkdir()
    for i, image in enumerate(images):
      Image.fromarray(image).save(tmp_path / name / f"{i:02d}.png")
  # (tf mode reads folders as the uint8 arrays above; folders: test_score.py)
  pa, pb = pytorch_fid_net(a.astype(np.float32) / 255), pytorch_fid_net(
      b.astype(np.float32) / 255)
  expected = _low_rank_fid(pa["features"], pb["features"])
  out = score("--metric", "fid", tmp_path / "a", tmp_path / "b", "--mode", "pytorch-fid")
  assert out["feature_net"] == "inception-v3-fid (pytorch-fid inputs)", out
  assert out["value"] == pytest.approx(expected, rel=1e-3)
