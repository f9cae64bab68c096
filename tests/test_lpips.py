"""LPIPS (jaxgen/metrics/lpips.py) against the ``lpips`` package, its weights files
through jaxgen/weights/lpips.py, and the ``lpips`` paired evaluator.

The committed fixtures come from tests/fixtures/make_lpips_fixture.py (torch,
torchvision, lpips 0.1.4): the package's distances on seeded random VGG16 weights
at full shape and random heads, which the test regenerates with numpy
(tests/fixtures/first_stage_random_weights.py), writes as PyTorch state dicts in a
temporary folder and reads through the same reader as the real files; and the
package's own trained heads file (lpips_vgg.pth).
"""
from __future__ import annotations

import pathlib

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import load_module
from jaxgen import weights
from jaxgen.evaluators import EVALUATORS
from jaxgen.metrics import lpips
from jaxgen.weights import lpips as lpips_weights
from jaxgen.weights import torch_pickle

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


rw = load_module("tests/fixtures/first_stage_random_weights.py")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """The seeded weights as .pth files in torchvision's and lpips' layouts."""
  root = tmp_path_factory.mktemp("lpips_weights")
  vgg, heads = root / "vgg16.pth", root / "heads.pth"
  torch_pickle.save_state_dict(vgg, rw.vgg16_features())
  torch_pickle.save_state_dict(heads, rw.lpips_heads())
  return str(vgg), str(heads)


@pytest.fixture(scope="module")
def params(files):
  return lpips.load_params(*files, download=False)


def test_distances_match_the_lpips_package(params):
  expected = np.load(FIXTURES / "lpips_parity.npz")
  for i, (x0, x1) in enumerate(rw.lpips_pairs()):
    per_layer = np.asarray(lpips.LPIPS().apply({"params": params}, jnp.asarray(x0),
                                               jnp.asarray(x1), per_layer=True))
    np.testing.assert_allclose(per_layer, expected[f"layers_{i}"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(lpips.distance(params, x0, x1)),
                               expected[f"d_{i}"], rtol=1e-4)


def test_identical_images_are_at_zero_and_grey_is_repeated(params):
  x0, x1 = rw.lpips_pairs()[0]
  np.testing.assert_allclose(np.asarray(lpips.distance(params, x0, x0)), 0.0, atol=1e-7)
  grey0, grey1 = x0[..., :1], x1[..., :1]
  np.testing.assert_allclose(
      np.asarray(lpips.distance(params, grey0, grey1)),
      np.asarray(lpips.distance(params, np.repeat(grey0, 3, -1), np.repeat(grey1, 3, -1))),
      rtol=1e-6)


def test_the_packages_heads_file_reads():
  """lpips' own vgg.pth (PyTorch's legacy format), pinned by its digest."""
  path = FIXTURES / "lpips_vgg.pth"
  assert weights.sha256(path) == weights.KNOWN["lpips_vgg"].sha256
  heads = lpips_weights.read_heads(path)
  assert {k: v["kernel"].shape for k, v in heads.items()} == {
      f"lin{k}": (c, 1) for k, c in enumerate(lpips.CHANNELS)}
  assert all((v["kernel"] >= 0).all() for v in heads.values())


def test_a_wrong_file_is_named(files):
  vgg, heads = files
  with pytest.raises(weights.WeightsError, match="not LPIPS' linear heads"):
    lpips.load_params(vgg, vgg, download=False)
  with pytest.raises(weights.WeightsError, match="not a torchvision VGG"):
    lpips.load_params(heads, heads, download=False)
  with pytest.raises(weights.WeightsError, match="are not available"):
    lpips.load_params(download=False)  # nothing in the (test) cache


def test_the_paired_evaluator(files, params):
  vgg, heads = files
  config = ml_collections.ConfigDict(dict(
      data=dict(scale="unit"),
      eval=dict(lpips_vgg_weights=vgg, lpips_heads_weights=heads)))
  evaluator = EVALUATORS.get("lpips")(config, None, {})
  x0, x1 = rw.lpips_pairs()[0]
  unit0, unit1 = (x0 + 1) / 2, (x1 + 1) / 2
  evaluator.update(unit1[:2], {"target": unit0[:2]})
  evaluator.update(unit1[2:], {"target": unit0[2:]})
  expected = np.asarray(lpips.distance(params, x1, x0)).mean()
  assert evaluator.result()["lpips"] == pytest.approx(expected, rel=1e-5)
