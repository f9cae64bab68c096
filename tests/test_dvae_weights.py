"""OpenAI's dVAE weight files (pickled dall_e modules) read without PyTorch: parity with
the reference on a seeded reduced-size fixture (tests/fixtures/make_dvae_fixture.py),
and clear errors for files of another architecture or format and for missing files."""
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.weights import torch_pickle
from jaxgen import weights
from jaxgen.weights import dvae_openai

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
ENC, DEC = os.path.join(FIX, "dvae_encoder_tiny.pkl"), os.path.join(FIX, "dvae_decoder_tiny.pkl")


@pytest.fixture(scope="module")
def loaded():
  return dvae_openai.OpenAIDVAE.from_files(ENC, DEC, image_size=32)


def test_tokens_and_reconstructions_match_the_reference(loaded):
  stage, params = loaded
  ref = np.load(os.path.join(FIX, "dvae_parity.npz"))
  x = jnp.asarray(ref["images"])
  np.testing.assert_allclose(jax.jit(stage.logits)(params, x), ref["logits"], atol=1e-5,
                             rtol=1e-5)
  codes = np.asarray(jax.jit(stage.encode)(params, x))
  assert codes.shape == (3, 4, 4) and stage.latent_spec.shape == (4, 4)
  np.testing.assert_array_equal(codes, ref["tokens"])
  tokens = jnp.asarray(ref["tokens"])
  stats = jax.jit(stage.decoder_stats)(params, jax.nn.one_hot(tokens, stage.num_codes))
  np.testing.assert_allclose(stats, ref["stats"], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(stage.decode)(params, tokens), ref["recon"], atol=1e-5)


def test_the_architecture_is_read_from_the_pickled_modules():
  _, params, arch = dvae_openai.load_encoder(ENC)
  assert arch == {"group_count": 4, "n_hid": 8, "n_blk_per_group": 2, "vocab_size": 64,
                  "n_layers": 8, "channels": 3}
  # The 1x1 identity convolution exists only where the width changes.
  assert "id_path" not in params["group_1_block_1"]
  assert params["group_2_block_1"]["id_path"]["kernel"].shape == (1, 1, 8, 16)
  assert "id_path" not in params["group_2_block_2"]
  _, _, darch = dvae_openai.load_decoder(DEC)
  assert darch["n_init"] == 8 and darch["vocab_size"] == 64 and darch["channels"] == 3


def test_files_of_another_architecture_or_kind_are_clear_errors(tmp_path):
  with pytest.raises(dvae_openai.DVAEWeightsError,
                     match=r"does not have the architecture.*missing: group_1_block_2"):
    dvae_openai.load_encoder(os.path.join(FIX, "dvae_encoder_wrong_arch.pkl"))
  with pytest.raises(dvae_openai.DVAEWeightsError,
                     match=r"not OpenAI's dVAE encoder.*dall_e.decoder.Decoder"):
    dvae_openai.load_encoder(DEC)
  state_dict = tmp_path / "state_dict.pth"
  torch_pickle.save_state_dict(state_dict, {"w": np.zeros((2, 2), np.float32)})
  with pytest.raises(dvae_openai.DVAEWeightsError, match="holds a dict, not a pickled "
                                                         "dall_e.decoder.Decoder"):
    dvae_openai.load_decoder(state_dict)


def test_the_reader_refuses_globals_outside_its_list_and_runs_nothing(tmp_path):
  marker = tmp_path / "ran"
  payload = (b"\x80\x02cos\nsystem\nq\x00X" + len(f"touch {marker}").to_bytes(4, "little")
             + f"touch {marker}".encode() + b"\x85R.")
  path = tmp_path / "evil.pkl"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("evil/data.pkl", payload)
  with pytest.raises(torch_pickle.TorchPickleError, match=r"refers to os.system"):
    torch_pickle.load_pickled_module(path, dvae_openai.ENCODER_CLASSES)
  assert not marker.exists()


def test_missing_weights_give_the_registry_error(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXGEN_CACHE", str(tmp_path / "cache"))
  with pytest.raises(weights.WeightsError,
                     match=r"(?s)dVAE encoder weights .*downloading is disabled.*"
                           r"https://cdn.openai.com/dall-e/encoder.pkl"):
    dvae_openai.load_openai(download=False)
  with pytest.raises(weights.WeightsError, match="does not exist"):
    dvae_openai.load_openai(tmp_path / "nope.pkl", DEC)
  assert weights.KNOWN["dalle_decoder"].url == "https://cdn.openai.com/dall-e/decoder.pkl"


def test_one_path_finds_the_decoder_beside_the_encoder(tmp_path, loaded):
  import shutil
  shutil.copy(ENC, tmp_path / "encoder.pkl")
  with pytest.raises(weights.WeightsError, match=r"decoder.pkl.*does not exist"):
    dvae_openai.OpenAIDVAE.from_file(tmp_path / "encoder.pkl", image_size=32)
  shutil.copy(DEC, tmp_path / "decoder.pkl")
  stage, params = dvae_openai.OpenAIDVAE.from_file(tmp_path / "encoder.pkl", image_size=32)
  ref_stage, ref_params = loaded
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_array_equal(a, b)
  assert stage.latent_spec.shape == (4, 4)


def test_the_legacy_torch_format_reads_the_same_weights(loaded):
  _, params, _ = dvae_openai.load_encoder(os.path.join(FIX, "dvae_encoder_tiny_legacy.pkl"))
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded[1]["encoder"])):
    np.testing.assert_array_equal(a, b)
