"""Official NVlabs StyleGAN2 pickles: read as data (no code from the file runs), mapped
onto the Flax networks, and the same images and logits as NVlabs' own code.

The fixture (tests/fixtures/stylegan2_nvlabs.pkl, written by
tests/fixtures/make_stylegan2_fixture.py in the reference venv) holds NVlabs' networks
with seeded random weights, pickled as its training loop does, and their outputs from
its reference ops on the CPU."""
import os
import pickle

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.weights import stylegan2 as sp
from jaxgen.weights import torch_pickle as tp
from jaxgen.families.stylegan2 import networks as sg

HERE = os.path.dirname(os.path.abspath(__file__))
PKL = os.path.join(HERE, "fixtures", "stylegan2_nvlabs.pkl")
EXPECTED = os.path.join(HERE, "fixtures", "stylegan2_nvlabs_expected.npz")


@pytest.fixture(scope="module")
def nets():
  return sp.load_network_pkl(PKL)


@pytest.fixture(scope="module")
def expected():
  with np.load(EXPECTED) as f:
    return dict(f)


def test_pickle_is_read_with_buffers(nets):
  assert sorted(nets) == ["D", "G", "G_ema"]
  state = nets["G_ema"].state_dict()
  assert state["mapping.w_avg"].shape == (16,)
  assert state["synthesis.b16.conv0.noise_const"].shape == (16, 16)
  assert state["synthesis.b8.conv0.affine.weight"].shape == (16, 16)
  assert state["mapping.embed.weight"].shape == (16, 3)


def test_generator_matches_nvlabs(nets, expected):
  g, variables = sp.generator_from_pickle(nets["G_ema"])
  z, c = jnp.asarray(expected["z"]), jnp.asarray(expected["c"])
  w = g.apply(variables, z, c, method=sg.Generator.map)
  np.testing.assert_allclose(np.asarray(w), expected["w"], atol=1e-5)
  for key, psi, cutoff in (("psi1", 1.0, None), ("psi07", 0.7, None),
                           ("psi05_cut3", 0.5, 3)):
    img = g.apply(variables, z, c, psi, cutoff, noise_mode="const")
    np.testing.assert_allclose(np.asarray(img), expected[f"img_{key}"], atol=1e-4,
                               err_msg=key)
  img = g.apply(variables, z, c, noise_mode="none")
  np.testing.assert_allclose(np.asarray(img), expected["img_none"], atol=1e-4)
  g2, v2 = sp.generator_from_pickle(nets["G"])  # G differs from G_ema
  np.testing.assert_allclose(np.asarray(g2.apply(v2, z, c, noise_mode="const")),
                             expected["img_g"], atol=1e-4)
  assert np.abs(expected["img_g"] - expected["img_psi1"]).max() > 1e-2


def test_discriminator_matches_nvlabs(nets, expected):
  d, variables = sp.discriminator_from_pickle(nets["D"])
  logits = d.apply(variables, jnp.asarray(expected["img_psi1"]),
                   jnp.asarray(expected["c"]))
  np.testing.assert_allclose(np.asarray(logits), expected["d_logits"], rtol=1e-4,
                             atol=1e-4)


def test_sample_and_official_names(tmp_path):
  g, variables = sp.load_official(PKL)
  img = np.asarray(sp.sample(g, variables, [1, 2], labels=[0, 2], truncation_psi=0.5))
  assert img.shape == (2, 16, 16, 3) and 0.0 <= img.min() <= img.max() <= 1.0
  with pytest.raises(ValueError, match="conditional"):
    sp.sample(g, variables, [1])
  from jaxgen import weights
  assert weights.KNOWN["stylegan2_ada_ffhq"].url.endswith("/pretrained/ffhq.pkl")
  assert weights.KNOWN["stylegan2_ada_cifar10"].url.endswith("/pretrained/cifar10.pkl")


class _Evil:
  def __reduce__(self):
    return (os.system, ("echo pwned > /dev/null",))


def test_code_in_the_file_is_refused(tmp_path):
  path = tmp_path / "evil.pkl"
  with open(path, "wb") as f:
    pickle.dump({"G": _Evil()}, f)
  with pytest.raises(tp.TorchPickleError, match="posix.system|os.system|system"):
    sp.load_network_pkl(path)
  path = tmp_path / "none.pkl"
  with open(path, "wb") as f:
    pickle.dump({"x": 1}, f)
  with pytest.raises(tp.TorchPickleError, match="no G, D or G_ema"):
    sp.load_network_pkl(path)
