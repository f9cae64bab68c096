"""The shipped MNIST classifier, batched feature extraction, sample metrics through
``--mode=eval``, and the ``python -m jaxgen.score`` command line."""
import json
import os
import re
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, load_config, run_cli_in_process
from jaxgen.data import sources
from jaxgen.metrics import features, fid, mnist_classifier as mc


@pytest.fixture(scope="module")
def digits():
  test, train = sources.mnist5k_arrays("test"), sources.mnist5k_arrays("train")
  # The splits are sorted by class: a random 1,000 training digits cover all ten.
  rows = np.random.default_rng(0).permutation(len(train["image"]))[:1000]
  return test["image"], test["label"], train["image"][rows]


@pytest.fixture(scope="module")
def net():
  return features.get("mnist_classifier", batch_size=64)


def test_shipped_classifier_held_out_accuracy(net, digits):
  images, labels, _ = digits
  out = net(images, progress=False)
  accuracy = np.mean(out["logits"].argmax(-1) == labels)
  assert accuracy >= 0.97, accuracy  # the trained weights: python -m jaxgen.train_mnist_classifier
  assert out["features"].shape == (500, mc.FEATURE_DIM)


def test_features_do_not_depend_on_chunking_or_padding(net, digits):
  images = digits[0][:150]
  direct = mc.MNISTClassifier().apply({"params": mc.load_params()},
                                      images.astype(np.float32) / 255.0)
  chunks = [images[:7], images[7:100], images[100:]]  # uneven; last batch padded
  out = net(iter(chunks), total=150, progress=False)
  np.testing.assert_allclose(out["features"], direct[0], atol=1e-4)
  np.testing.assert_allclose(out["logits"], direct[1], atol=1e-4)


def test_classifier_rejects_bad_images(net):
  with pytest.raises(ValueError, match="28x28 grey"):
    net(np.zeros((2, 32, 32, 3), np.uint8), progress=False)
  with pytest.raises(ValueError, match=r"\[0, 1\].*\(x \+ 1\) / 2"):
    net(-np.ones((2, 28, 28, 1), np.float32), progress=False)
  with pytest.raises(ValueError, match="Unknown feature network"):
    features.get("resnet")


def test_corrupt_classifier_weights_are_a_clear_error(tmp_path):
  from jaxgen.metrics import mnist_classifier
  bad = tmp_path / "weights.npz"
  bad.write_bytes(b"PK\x03\x04 not really a zip")
  with pytest.raises(ValueError, match=r"weights.npz are corrupt or not an .npz of "
                                       r"arrays .*train_mnist_classifier.py"):
    mnist_classifier.load_params(bad)
  np.savez(bad, w=np.array([{"pickled": 1}], dtype=object))
  with pytest.raises(ValueError, match="corrupt or not an .npz of arrays"):
    mnist_classifier.load_params(bad)


def test_metrics_import_no_training_code_and_no_cycle():
  """jaxgen.metrics is the numerical core: importing all of it loads no data, training
  or trainer module, and the network modules do not import the feature registry."""
  script = textwrap.dedent("""
      import importlib, pkgutil, sys
      import jaxgen.metrics
      names = [m.name for m in pkgutil.iter_modules(jaxgen.metrics.__path__)]
      for name in names:
        importlib.import_module("jaxgen.metrics." + name)
      loaded = sorted(m for m in sys.modules if m.startswith("jaxgen."))
      bad = [m for m in loaded if m.split(".")[1] in ("data", "train", "families",
                                                      "evaluators", "build", "main")]
      assert not bad, bad
      for name in set(names) - {"features"}:
        source = open(importlib.import_module("jaxgen.metrics." + name).__file__).read()
        assert "import features" not in source, name
      print("ok")
  """)
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                        text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def score(*args, check=True, command=False):
  """``python -m jaxgen.score ARGS`` (as a real command if ``command``, else its
  ``main`` in this process): its JSON line, or the process if not ``check``."""
  args = (*map(str, args), "--no_progress")
  if command:
    proc = subprocess.run([sys.executable, "-m", "jaxgen.score", *args], cwd=REPO,
                          capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
  else:
    from jaxgen import score as cli
    proc = run_cli_in_process(cli.main, *args)
  if check:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
  return proc


def test_score_cli_fid_is_kid_on_real_digits(tmp_path, digits, net):
  test, _, train = digits
  np.savez(tmp_path / "test.npz", images=test)
  np.save(tmp_path / "train.npy", train)
  folder = tmp_path / "pngs"
  folder.mkdir()
  for i, img in enumerate(test[:200]):
    Image.fromarray(img[..., 0]).save(folder / f"{i:04d}.png")
  mnist = ["--feature_net", "mnist_classifier"]

  out = score("--metric", "fid", tmp_path / "test.npz", tmp_path / "train.npy", *mnist,
              "--save_stats", tmp_path / "test_stats.npz", command=True)
  assert out["feature_net"] == "mnist-classifier" and out["num_samples"] == [500, 1000]
  # Independent recomputation from the features.
  a = net(test, progress=False)["features"]
  b = net(train, progress=False)["features"]
  expected = fid.frechet_distance(*fid.feature_statistics(a), *fid.feature_statistics(b))
  assert out["value"] == pytest.approx(expected, rel=1e-4)
  # A statistics file stands in for its images; the same set against itself is 0.
  again = score("--metric", "fid", tmp_path / "test_stats.npz", tmp_path / "train.npy",
                *mnist)
  assert again["value"] == pytest.approx(expected, rel=1e-6)
  assert abs(score("--metric", "fid", tmp_path / "test_stats.npz",
                   tmp_path / "test_stats.npz")["value"]) < 1e-6

  # Folders of PNGs read the same pixels.
  folder_stats = score("--metric", "fid", folder, folder, *mnist)
  assert abs(folder_stats["value"]) < 1e-6 and folder_stats["num_samples"] == [200, 200]

  # Real, well-classified digits spread over 10 classes: IS close to 10. (IS splits
  # are consecutive chunks; the test split is sorted by class, so shuffle it.)
  np.save(tmp_path / "shuffled.npy", test[np.random.default_rng(0).permutation(500)])
  out = score("--metric", "is", tmp_path / "shuffled.npy", *mnist, "--splits", 5)
  assert 8.5 < out["value"] <= 10.0, out
  out = score("--metric", "kid", tmp_path / "test.npz", tmp_path / "train.npy", *mnist,
              "--kid_subsets", 10, "--kid_subset_size", 200)
  assert out["subset_size"] == 200
  # Real digits against real digits: KID is zero within its noise; against digits
  # shifted by 7 pixels it is far from zero.
  assert abs(out["value"]) < 3 * out["std"] + 1e-9, out
  np.save(tmp_path / "shifted.npy", np.roll(train, 7, axis=2))
  shifted = score("--metric", "kid", tmp_path / "test.npz", tmp_path / "shifted.npy", *mnist,
                  "--kid_subsets", 10, "--kid_subset_size", 200)
  assert shifted["value"] > 10 * shifted["std"] and shifted["value"] > 10 * abs(out["value"])


def test_score_cli_ssim(tmp_path, digits):
  test = digits[0][:20]
  np.save(tmp_path / "a.npy", test)
  assert score("--metric", "ssim", tmp_path / "a.npy", tmp_path / "a.npy")["value"] == (
      pytest.approx(1.0, abs=1e-6))
  noisy = np.clip(test.astype(int) + np.random.default_rng(0).integers(-40, 40, test.shape),
                  0, 255).astype(np.uint8)
  np.save(tmp_path / "b.npy", noisy)
  out = score("--metric", "ssim", tmp_path / "a.npy", tmp_path / "b.npy")
  assert out["data_range"] == 255.0 and 0.2 < out["value"] < 0.95
  # Float (N, H, W) arrays, as the help says: the same as (N, H, W, 1) in [0, 1].
  from jaxgen.metrics import ssim
  assert test.shape == (20, 28, 28, 1)
  np.save(tmp_path / "fa.npy", test[..., 0].astype(np.float32) / 255)
  np.save(tmp_path / "fb.npy", noisy[..., 0].astype(np.float32) / 255)
  out = score("--metric", "ssim", tmp_path / "fa.npy", tmp_path / "fb.npy")
  expected = np.asarray(ssim.ssim(test.astype(np.float32) / 255,
                                  noisy.astype(np.float32) / 255, 1.0)).mean()
  assert out["data_range"] == 1.0 and out["value"] == pytest.approx(expected, rel=1e-5)


def test_score_cli_bad_input(tmp_path):
  np.save(tmp_path / "a.npy", np.zeros((4, 28, 28), np.uint8))
  np.save(tmp_path / "b.npy", np.zeros((5, 28, 28), np.uint8))
  np.save(tmp_path / "neg.npy", -np.ones((4, 28, 28), np.float32))
  (tmp_path / "caps.txt").write_text("a\nb\nc\n")
  nan = np.full((4, 28, 28), 0.5, np.float32)
  nan[2, 3, 4] = np.nan
  np.save(tmp_path / "nan.npy", nan)
  np.savez(tmp_path / "nan_stats.npz", mu=np.array([0.0, np.nan]), sigma=np.eye(2))
  np.savez(tmp_path / "ok_stats.npz", mu=np.zeros(2), sigma=np.eye(2))
  np.save(tmp_path / "scalar.npy", np.float32(3))
  np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
  (tmp_path / "pngs").mkdir()
  from PIL import Image
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "pngs" / "0.png")
  (tmp_path / "pngs" / "1.png").write_bytes(b"not a png")
  cases = [
      (("--metric", "is", tmp_path / "scalar.npy", "--feature_net", "mnist_classifier"),
       r"scalar.npy holds an array of shape \(\); images are"),
      (("--metric", "is", tmp_path / "objects.npy", "--feature_net", "mnist_classifier"),
       r"objects.npy is not a readable .npy/.npz file of arrays"),
      (("--metric", "is", tmp_path / "pngs", "--feature_net", "mnist_classifier"),
       r"1.png is not a readable image"),
      (("--metric", "fid", tmp_path / "nan.npy", tmp_path / "a.npy", "--feature_net",
        "mnist_classifier"), r"nan.npy: the images contain NaN or infinite values \(1 "
                             r"of 4 images\)"),
      (("--metric", "fid", tmp_path / "nan_stats.npz", tmp_path / "ok_stats.npz"),
       r"statistics in .*nan_stats.npz contain NaN"),
      (("--metric", "fid", tmp_path / "a.npy"), "takes 2 path"),
      (("--metric", "is", tmp_path / "nothing"), "neither a folder of images"),
      (("--metric", "ssim", tmp_path / "a.npy", tmp_path / "b.npy"), "paired images"),
      (("--metric", "is", tmp_path / "neg.npy", "--feature_net", "mnist_classifier"),
       r"\[0, 1\]"),
      (("--metric", "is", tmp_path / "a.npy", "--feature_net", "clip"),
       "needs class logits"),
      (("--metric", "clip", tmp_path / "a.npy"), "needs --captions"),
      (("--metric", "clip", tmp_path / "a.npy", "--captions", tmp_path / "caps.txt"),
       "3 captions for 4 images"),
  ]
  for args, message in cases:
    proc = score(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr
    assert re.search(message, proc.stderr), proc.stderr


def test_eval_mode_writes_sample_metrics(tiny_runs):
  """A tiny VAE run's evaluation has FID and IS from the config's eval section
  (--mode=eval gives the same: test_conformance.py)."""
  workdir = tiny_runs("vae_mnist")
  result = json.load(open(os.path.join(workdir, "eval.json")))
  assert result["feature_net"] == "mnist-classifier" and result["num_samples"] == 200
  assert result["reference"] == "mnist5k/train (4500 images)"
  assert result["fid"] > 1.0  # an untrained decoder is far from the data
  assert 1.0 <= result["inception_score"] <= 10.0


def test_reference_statistics_are_cached_per_weights(tmp_path, monkeypatch):
  from jaxgen.evaluators import features as feature_evaluators
  monkeypatch.setenv("JAXGEN_CACHE", str(tmp_path))
  c = load_config("vae_mnist", "tiny")
  net = features.get("mnist_classifier")
  first = feature_evaluators.reference(net, c.data, "test")
  assert first.num == 500 and len(list((tmp_path / "stats").iterdir())) == 1
  again = feature_evaluators.reference(net, c.data, "test")  # read from the cache
  np.testing.assert_array_equal(again.sigma, first.sigma)
  other = jax.tree.map(lambda x: x * 1.1, mc.load_params())
  mc.save_params(other, tmp_path / "other.npz")
  changed = feature_evaluators.reference(features.get("mnist_classifier", weights=tmp_path / "other.npz"),
                              c.data, "test")
  assert len(list((tmp_path / "stats").iterdir())) == 2
  assert not np.allclose(changed.mu, first.mu)


READ_ONLY = "/sys"  # a folder that no process, root included, may write into


def test_score_refuses_unreadable_arrays_naming_the_file(tmp_path):
  """Issue 31 §5: a truncated .npz (images or statistics) and garbage named .npz are
  one line naming the file, never numpy's advice to unpickle it."""
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "stats.npz", mu=np.zeros(4), sigma=np.eye(4))
  np.savez(tmp_path / "images.npz", images=rng.integers(0, 255, (64, 28, 28), np.uint8))
  for name in ("stats", "images"):
    data = (tmp_path / f"{name}.npz").read_bytes()
    (tmp_path / f"{name}_cut.npz").write_bytes(data[:len(data) // 2])
  (tmp_path / "garbage.npz").write_bytes(b"these bytes are not numpy's " * 8)
  for args in (("fid", "stats_cut.npz", "stats.npz"), ("fid", "images_cut.npz", "stats.npz"),
               ("is", "images_cut.npz"), ("fid", "garbage.npz", "stats.npz"),
               ("is", "garbage.npz")):
    proc = score("--metric", args[0], *(tmp_path / p for p in args[1:]),
                 "--feature_net", "mnist_classifier", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {tmp_path / args[1]} is not a readable"), lines
    assert "pickle" not in lines[0], lines


def test_fid_of_a_set_with_itself_is_zero_not_negative():
  """Issue 31 §5: rounding in sqrtm left -0.0002 for identical sets."""
  features = np.random.default_rng(0).normal(size=(300, 64))
  stats = fid.feature_statistics(features)
  assert fid.frechet_distance(*stats, *stats) == 0.0
  assert float(fid.frechet_distance_eigh(*stats, *stats)) >= 0.0


def test_is_splits_below_one_say_so(tmp_path):
  np.save(tmp_path / "a.npy", np.zeros((4, 28, 28), np.uint8))
  proc = score("--metric", "is", tmp_path / "a.npy", "--feature_net", "mnist_classifier",
               "--splits", 0, check=False)
  assert proc.returncode == 2 and "splits must be at least 1" in proc.stderr, proc.stderr


def test_save_stats_is_checked_first_and_the_fid_is_printed_anyway(tmp_path, monkeypatch):
  """Issue 31 §2: --save_stats into a folder that cannot be written is refused before
  the features are computed; a write that fails after them still prints the FID."""
  np.savez(tmp_path / "stats.npz", mu=np.zeros(4), sigma=np.eye(4))
  np.save(tmp_path / "a.npy", np.zeros((4, 28, 28), np.uint8))
  computed = []
  monkeypatch.setattr(features, "get", lambda *a, **k: computed.append(1) or 1 / 0)
  for where in (f"{READ_ONLY}/stats.npz", tmp_path / "a.npy" / "stats.npz"):
    proc = score("--metric", "fid", tmp_path / "a.npy", tmp_path / "stats.npz",
                 "--save_stats", where, check=False)
    assert proc.returncode == 2 and "--save_stats" in proc.stderr, proc.stderr
    assert not computed  # refused before the feature network was loaded
  monkeypatch.undo()

  def full_disk(*args):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(fid, "save_statistics", full_disk)
  proc = score("--metric", "fid", tmp_path / "stats.npz", tmp_path / "stats.npz",
               "--save_stats", tmp_path / "out.npz", check=False)
  assert proc.returncode == 2 and "No space left" in proc.stderr, proc.stderr
  assert json.loads(proc.stdout.strip().splitlines()[-1])["value"] == 0.0
