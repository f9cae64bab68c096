"""The ceiling command: the evaluators of config.eval.metrics on the real images of the
eval split, each scored against its own eval example (caption), through
evaluators.compute."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, load_config
from jaxgen import data
from jaxgen.data import mnist5k_derived as derived
from jaxgen.evaluators import ceiling
from jaxgen.metrics import features, fid
from test_clip_r_precision import OneHotByCaption, with_stage


def clip_config(metrics, variant="tiny"):
  c = load_config("clip_mnist", variant)
  c.eval.metrics = metrics
  c.data.layouts = 1  # the FID reference: the 4,500 training canvases of one layout
  return c


def test_the_ceiling_of_fid_and_caption_accuracy_is_the_real_split():
  c = clip_config(("fid", "caption_accuracy"))
  c.eval.sample_batch_size = 100  # the tiny variant's eval.batch_size is 8
  got = ceiling.ceiling(c)
  assert got["ceiling"] == "real images of mnist5k_captions/test"
  assert got["num_samples"] == 500  # the config sets none: the whole split, once
  for a in ("size", "thickness", "slant", "position"):  # the captions' measurement
    assert got[f"caption_accuracy_{a}"] == 1.0
  # Digits: the classifier's accuracy on the real canvases, which the evaluator also
  # reports as its own ceiling, computed here without the evaluators.
  test = derived.caption_data("test", 0)
  net = features.get("mnist_classifier", batch_size=500)
  accuracy = np.mean(net(test["image"], progress=False)["logits"].argmax(-1)
                     == test["label"])
  assert got["caption_accuracy_digit"] == got["caption_accuracy_real_digit"] == accuracy
  assert accuracy >= 0.95
  # FID: the test canvases against the train canvases, in the classifier's features.
  stats = [fid.feature_statistics(net(derived.caption_data(s, 0)["image"],
                                      progress=False)["features"])
           for s in ("test", "train")]
  assert got["fid"] == pytest.approx(fid.frechet_distance(*stats[0], *stats[1]),
                                     rel=1e-3)
  assert got["reference"] == "mnist5k_captions/train (4500 images)"
  assert got["feature_net"] == "mnist-classifier"


def test_the_ceiling_scores_each_image_against_its_own_caption(monkeypatch, tmp_path):
  """A CLIP stage that gives an image the embedding of its real twin's caption: the
  ceiling, which pairs each real canvas with its own caption, is perfect; two digits,
  a subset of the split (eval.num_samples, eval.sample_batch_size)."""
  c = clip_config(("clip_score", "clip_r_precision", "caption_accuracy"), "captions2")
  c.eval.update(clip_stage=str(tmp_path), num_samples=100, sample_batch_size=50)
  with_stage(monkeypatch, OneHotByCaption(c), data.get_dataset(c.data).tokenizer())
  got = ceiling.ceiling(c)
  assert got["num_samples"] == 100
  assert got["clip_score"] == pytest.approx(2.5)
  assert got["clip_r_precision"] == got["clip_r_precision_real"] == 1.0
  for a in ("size_1", "thickness_1", "size_2", "thickness_2"):
    assert got[f"caption_accuracy_{a}"] == 1.0
  assert got["caption_accuracy_digits"] >= 0.9


def run_ceiling(*args):
  return subprocess.run([sys.executable, "-m", "jaxgen.evaluators.ceiling", *args],
                        cwd=REPO, capture_output=True, text=True, timeout=300,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_the_coverage_ceiling_of_real_test_digits():
  """class_coverage and precision_recall of MNIST-5k's 500 test digits against its
  train digits: the ten classes evenly, as varied as the train digits, and precision
  and recall near (not at) 1: what 500 real digits give against 500 others."""
  c = load_config("vae_mnist")
  c.eval.update(metrics=("class_coverage", "precision_recall"), num_samples=0)
  got = ceiling.ceiling(c)
  assert got["num_samples"] == 500 and got["precision_recall_num"] == 500
  assert got["class_coverage"] == 10 and got["class_coverage_effective"] > 9.9
  assert got["class_coverage_kl_uniform"] < 0.01
  assert abs(got["class_coverage_diversity"] - 1) < 0.1
  assert 0.75 < got["precision"] < 1 and 0.75 < got["recall"] < 1


def test_the_command_writes_its_result_and_refuses_wrong_input(tmp_path):
  out = tmp_path / "ceiling.json"
  proc = run_ceiling("--config=configs/clip_mnist.py:captions2",
                     "--config.eval.metrics=caption_accuracy",
                     "--config.eval.num_samples=100", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = json.loads(proc.stdout.strip().splitlines()[-1])
  assert json.loads(out.read_text()) == got
  assert got["ceiling"] == "real images of mnist5k_captions2/test"
  assert got["num_samples"] == 100 and got["caption_accuracy_order"] >= 0.9
  for args, message in (
      (["--config=configs/clip_mnist.py:tiny", "--config.eval.metrics=fid,nope"],
       "Unknown evaluator 'nope'"),
      (["--config=configs/vae_mnist.py:tiny", "--config.eval.metrics=caption_accuracy"],
       "caption_accuracy measures samples against their captions, and 'mnist5k' has "
       "none"),
      (["--config=configs/clip_mnist.py:tiny", "--config.eval.metrics=fid",
        "--config.eval.feature_nt=inception"], "--config.eval.feature_nt: "),
      (["--config=configs/clip_mnist.py:tiny"], "names no metric")):
    proc = run_ceiling(*args)
    assert proc.returncode == 2, (args, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], (args, lines[-3:])
