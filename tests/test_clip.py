"""CLIP: architecture, HF weight loading, tokenizer, preprocessing and CLIPScore.

The model is jaxgen.models.clip, the tokenizer jaxgen.data.clip_tokenizer, the score and
the embedder jaxgen.metrics.clip_score (built by jaxgen.metrics.features.clip_embedder).

Reference outputs come from transformers' CLIPModel, OpenAI's tokenizer (open_clip's copy),
transformers' CLIPTokenizer and torchvision's transform, recorded by
tests/fixtures/make_clip_fixture.py (run it with the reference environment to refresh them).
"""
import dataclasses
import gzip
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import safetensors.numpy
from PIL import Image

from conftest import REPO, fake_devices
from jaxgen.weights import clip as clip_weights
from jaxgen.data.clip_tokenizer import CLIPTokenizer
from jaxgen.metrics import clip_score, features
from jaxgen import weights
from jaxgen.models import clip

FIXTURES = os.path.join(REPO, "tests", "fixtures")


def _fixture_module():
  spec = importlib.util.spec_from_file_location(
      "make_clip_fixture", os.path.join(FIXTURES, "make_clip_fixture.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


FX = _fixture_module()
SMALL = clip.CLIPConfig(**FX.DIMS)


@pytest.fixture(scope="module")
def tokenizer():
  return CLIPTokenizer.from_files(os.path.join(FIXTURES, "clip_vocab.json"),
                                  os.path.join(FIXTURES, "clip_merges.txt"))


@pytest.fixture(scope="module")
def token_record():
  with open(os.path.join(FIXTURES, "clip_tokens.json"), encoding="utf-8") as f:
    return json.load(f)


def _save(state, path):
  safetensors.numpy.save_file(state, str(path))
  return path


def _random_variables(config, seed=0):
  """Random weights without compiling Flax's initialisers (slow on a busy CPU)."""
  rng = np.random.default_rng(seed)
  return {"params": jax.tree.map(
      lambda s: (0.2 * rng.standard_normal(s.shape)).astype(np.float32),
      clip.param_shapes(config))}


@pytest.fixture(scope="module")
def hf_variables(tmp_path_factory):
  path = tmp_path_factory.mktemp("clip") / "model.safetensors"
  return clip_weights.load_hf_checkpoint(_save(FX.hf_state_dict(), path), SMALL)


# ---------------------------------------------------------------------------------------
# Model and weights.

def test_vit_b32_parameter_count_is_openais():
  shapes = clip.param_shapes(clip.VIT_B_32)
  assert sum(x.size for x in jax.tree.leaves(shapes)) == 151_277_313


def test_a_conv_stem_replaces_the_patch_convolution_and_sees_shifts_alike():
  base = clip.CLIPConfig(embed_dim=8, image_size=16, patch_size=4, vision_width=16,
                         vision_layers=1, vision_heads=2, context_length=8,
                         vocab_size=20, text_width=8, text_layers=1, text_heads=2,
                         image_channels=1)
  stem = dataclasses.replace(base, conv_stem=(4, 6))
  count = lambda c: sum(x.size for x in jax.tree.leaves(clip.param_shapes(c)))
  # The 4x4x1x16 patch kernel becomes 3x3x1x4 + 4 and 3x3x4x6 + 6 convs and a 1x1x6x16.
  assert count(stem) - count(base) == (9 * 4 + 4) + (9 * 4 * 6 + 6) + 6 * 16 - 16 * 16
  # Each stride-2 3x3 conv reads a pixel's 3x3 neighbourhood: a dot moved by one
  # patch (4 pixels) gives the embedding grid moved by one cell.
  embed = clip.VisionEmbeddings(4, 16, (4, 6))
  dot = np.zeros((2, 16, 16, 1), np.float32)
  dot[0, 5, 5], dot[1, 9, 5] = 1, 1
  variables = embed.init(jax.random.key(0), dot)
  pos = variables["params"]["position_embedding"]["embedding"]
  grid = np.asarray(embed.apply(variables, dot) - pos[None])[:, 1:].reshape(2, 4, 4, 16)
  assert np.abs(grid[0, 1:3]).max() > 1e-3
  np.testing.assert_allclose(grid[0, 1:3], grid[1, 2:4], atol=1e-6)
  with pytest.raises(ValueError, match="patch_size must be 4, not 8"):
    dataclasses.replace(base, patch_size=8, conv_stem=(4, 6))


def test_matches_transformers_clip_model_on_hf_weights(tmp_path):
  state = FX.hf_state_dict()
  reference = np.load(os.path.join(FIXTURES, "clip_model.npz"))
  sums = [v.astype(np.float64).sum() for _, v in sorted(state.items())]
  np.testing.assert_allclose(sums, reference["weight_sums"], rtol=1e-6,
                             err_msg="the fixture's weight generator changed; re-run it")
  # Older transformers saved the position_ids buffers; loading must ignore them.
  state["text_model.embeddings.position_ids"] = np.arange(SMALL.context_length)[None]
  state["vision_model.embeddings.position_ids"] = np.arange(17)[None]
  variables = clip_weights.load_hf_checkpoint(_save(state, tmp_path / "model.safetensors"), SMALL)
  images, tokens = FX.model_inputs()
  model = clip.CLIP(SMALL)
  outputs = jax.jit(lambda v, x, t: {
      "image_embeds": model.apply(v, x, method=clip.CLIP.encode_image),
      "text_embeds": model.apply(v, t, method=clip.CLIP.encode_text),
      "logits_per_image": model.apply(v, x, t),
  })(variables, images, tokens)
  for name, ours in outputs.items():
    ref = reference[name]
    assert ours.shape == ref.shape
    error = np.max(np.abs(np.asarray(ours) - ref)) / np.max(np.abs(ref))
    assert error < 1e-4, (name, error)


def test_loader_names_missing_unexpected_and_misshaped_keys(tmp_path):
  state = FX.hf_state_dict()
  del state["text_model.final_layer_norm.bias"]
  state["vision_model.extra.weight"] = np.zeros(3, np.float32)
  q = "vision_model.encoder.layers.1.self_attn.q_proj.weight"
  state[q] = np.zeros((64, 32), np.float32)
  state["visual_projection.weight"] = state["visual_projection.weight"].T.copy()
  with pytest.raises(ValueError) as error:
    clip_weights.load_hf_checkpoint(_save(state, tmp_path / "bad.safetensors"), SMALL)
  message = str(error.value)
  assert "1 missing keys: text_model.final_layer_norm.bias" in message
  assert "1 unexpected keys: vision_model.extra.weight" in message
  assert f"{q} is (64, 32), the model needs (64, 64)" in message
  assert "visual_projection.weight is (64, 40), the model needs (40, 64)" in message


def test_loader_rejects_a_checkpoint_of_another_size(tmp_path):
  path = _save(FX.hf_state_dict(), tmp_path / "small.safetensors")
  with pytest.raises(ValueError, match="shape mismatches"):
    clip_weights.load_hf_checkpoint(path, clip.CLIPConfig(**{**FX.DIMS, "vision_width": 32}))


def test_text_pooling_reads_the_end_token_position(hf_variables):
  encode = jax.jit(lambda tokens: clip.CLIP(SMALL).apply(hf_variables, tokens,
                                                         method=clip.CLIP.encode_text))
  tokens = np.zeros((3, 16), np.int32)
  tokens[:, :4] = [298, 5, 7, 299]
  tokens[1, 4:6] = [11, 12]  # after the end token: invisible to it (causal attention)
  tokens[2, 1] = 6  # before it: changes the embedding
  out = encode(tokens)
  np.testing.assert_allclose(out[0], out[1], rtol=1e-6)
  assert np.max(np.abs(out[0] - out[2])) > 1e-3


# ---------------------------------------------------------------------------------------
# Tokenizer.

def test_tokenizer_rules(tokenizer):
  s, e = tokenizer.start_id, tokenizer.end_id
  ids = tokenizer("a cat")
  assert ids.shape == (1, 77) and ids.dtype == np.int32
  body = tokenizer.encode("a cat")
  assert ids[0, :len(body) + 2].tolist() == [s, *body, e]
  assert not ids[0, len(body) + 2:].any()  # zero padding
  assert tokenizer.encode("A CAT") == body  # lower case
  assert tokenizer.encode("  a \t\n cat  ") == body  # whitespace collapsed and stripped
  assert tokenizer.encode("Tom &amp;amp; Jerry") == tokenizer.encode("tom & jerry")
  assert tokenizer.encode("12") == [tokenizer.vocab["1</w>"], tokenizer.vocab["2</w>"]]
  assert tokenizer("").tolist()[0][:3] == [s, e, 0]
  assert tokenizer(["a", "b"], context_length=5).shape == (2, 5)


def test_tokenizer_truncates_keeping_the_end_token(tokenizer):
  text = " ".join(["photographs of the words"] * 30)
  full = [tokenizer.start_id, *tokenizer.encode(text), tokenizer.end_id]
  assert len(full) > 77
  ids = tokenizer(text)[0].tolist()
  assert ids == full[:76] + [tokenizer.end_id]
  with pytest.raises(ValueError, match="more than the context length 77"):
    tokenizer(text, truncate=False)
  assert tokenizer("a cat", truncate=False)[0, 0] == tokenizer.start_id


def test_tokenizer_reproduces_openai_and_transformers(tokenizer, token_record):
  ours = tokenizer(token_record["captions"], token_record["context_length"]).tolist()
  for caption, mine, openai in zip(token_record["captions"], ours, token_record["openai"]):
    assert mine == openai, caption
  # transformers normalises with NFC instead of ftfy + HTML unescaping; where that does
  # not matter, all three agree.
  agree = [i for i, (a, b) in enumerate(zip(token_record["openai"], token_record["hf"]))
           if a == b]
  assert len(agree) >= 10
  for i in agree:
    assert ours[i] == token_record["hf"][i], token_record["captions"][i]


def test_openai_bpe_file_gives_the_same_tokenizer(tokenizer, token_record, tmp_path):
  with open(os.path.join(FIXTURES, "clip_merges.txt"), encoding="utf-8") as f:
    merges = f.read().split("\n")[1:]
  path = tmp_path / "bpe.txt.gz"
  with gzip.open(path, "wt", encoding="utf-8") as f:
    f.write("\n".join(["bpe_simple_vocab_16e6.txt#version: 0.2", *merges]))
  from_gz = CLIPTokenizer.from_openai_bpe(path)
  assert from_gz.vocab == tokenizer.vocab  # the same ids, in OpenAI's order
  assert from_gz(token_record["captions"]).tolist() == token_record["openai"]


def test_tokenizer_rejects_files_that_do_not_belong_together(tmp_path):
  with open(os.path.join(FIXTURES, "clip_vocab.json"), encoding="utf-8") as f:
    vocab = json.load(f)
  with pytest.raises(ValueError, match="do not belong together"):
    CLIPTokenizer(vocab, [("q", "z</w>")])


def test_real_vocabulary_ids(token_record):
  """OpenAI's ids with the real 49408-token vocabulary, where its file is cached (it
  cannot be downloaded at test time)."""
  path = weights.cache_dir() / weights.KNOWN["clip_bpe"].filename
  if not path.is_file():
    pytest.skip(f"{path} is not in the weights cache (no network at test time)")
  real = CLIPTokenizer.from_openai_bpe(weights.resolve("clip_bpe"))
  assert real(token_record["real_captions"]).tolist() == token_record["real_openai"]


# ---------------------------------------------------------------------------------------
# Images.

def test_preprocess_matches_clipscore_transform():
  reference = np.load(os.path.join(FIXTURES, "clip_preprocess.npz"))
  for i, image in enumerate(FX.preprocess_images()):
    ours = clip.preprocess(image[None], size=16)[0]
    np.testing.assert_allclose(ours, reference[f"image{i}"], atol=1e-6, err_msg=f"image{i}")


def test_resize_center_crop_at_224_is_pil_bicubic():
  image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), np.uint8)
  ours = clip.resize_center_crop(np.stack([image, image[::-1]]))
  # int(224 * 400 / 300) = 298 columns, crop offset round(74 / 2) = 37.
  direct = np.asarray(Image.fromarray(image).resize((298, 224), Image.BICUBIC))[:, 37:261]
  assert ours.shape == (2, 224, 224, 3) and ours.dtype == np.uint8
  np.testing.assert_array_equal(ours[0], direct)


def test_float_images_are_rounded_to_8_bits():
  image = np.random.default_rng(1).integers(0, 256, (2, 20, 28, 3), np.uint8)
  np.testing.assert_array_equal(clip.preprocess(image / 255.0, 16), clip.preprocess(image, 16))


@pytest.mark.parametrize("images, match", [
    (np.zeros((20, 20, 3), np.uint8), "add a leading axis"),
    (np.zeros((1, 20, 20, 4), np.uint8), "Drop an alpha channel"),
    (np.zeros((1, 3, 20, 20), np.uint8), "channels-first"),
    (np.full((1, 8, 8, 3), 1.5), r"must lie in \[0, 1\]"),
    (np.full((1, 8, 8, 3), -0.5), r"\(x \+ 1\) / 2"),
    (np.zeros((1, 8, 8, 3), np.int16), "uint8 or float"),
])
def test_preprocess_rejects_bad_images(images, match):
  with pytest.raises(ValueError, match=match):
    clip.preprocess(images)


# ---------------------------------------------------------------------------------------
# CLIPScore.

def test_clipscore_formula():
  e = np.eye(3)
  assert clip_score.clip_score(e, e).value == pytest.approx(2.5)  # identical
  assert clip_score.clip_score(e, np.roll(e, 1, axis=0)).value == 0.0  # orthogonal
  assert clip_score.clip_score(e, -e).value == 0.0  # negative cosines clip to 0
  image = np.array([[1.0, 0.0], [3.0, 4.0]])
  text = np.array([[2.0, 2.0], [-3.0, -4.0]])  # cos 1/sqrt(2) and -1
  score = clip_score.clip_score(image, text)
  assert score.variant == "clipscore"
  np.testing.assert_allclose(score.per_sample, [2.5 / np.sqrt(2), 0.0])
  assert score.value == pytest.approx(2.5 / np.sqrt(2) / 2)
  assert "clipscore" in str(score)


def test_torchmetrics_variant_clips_the_mean_not_each_pair():
  image = np.array([[1.0, 0.0], [0.0, 1.0]])
  text = np.array([[1.0, 1.0], [0.3, -1.0]])
  score = clip_score.clip_score(image, text, variant="torchmetrics")
  cos = np.array([1 / np.sqrt(2), -1 / np.sqrt(1.09)])
  np.testing.assert_allclose(score.per_sample, 100 * cos)
  assert score.value == pytest.approx(max(100 * cos.mean(), 0.0))
  assert clip_score.clip_score(image, -image, variant="torchmetrics").value == 0.0
  with pytest.raises(ValueError, match="Unknown CLIP score variant"):
    clip_score.clip_score(image, text, variant="hessel")
  with pytest.raises(ValueError, match="paired embeddings"):
    clip_score.clip_score(image, text[:1])


# ---------------------------------------------------------------------------------------
# Embedding many images and captions.

@pytest.fixture(scope="module")
def small_model(tokenizer):
  config = clip.CLIPConfig(**{**FX.DIMS, "vocab_size": len(tokenizer.vocab)})
  return config, _random_variables(config)


def test_embedder_streams_batches_like_one_direct_call(small_model, tokenizer):
  config, variables = small_model
  images = np.random.default_rng(3).integers(0, 256, (5, 20, 28, 3), np.uint8)
  captions = ["a cat", "two dogs on a mat", "", "UPPER case", "the " * 40]
  embedder = features.clip_embedder(tokenizer, variables=variables, config=config,
                                    batch_size=2)
  model = clip.CLIP(config)
  direct_images, direct_texts = jax.jit(lambda v, x, t: (
      model.apply(v, x, method=clip.CLIP.encode_image),
      model.apply(v, t, method=clip.CLIP.encode_text)))(
          variables, clip.preprocess(images, 32), tokenizer(captions, 16))
  np.testing.assert_allclose(embedder.embed_images(images), direct_images, atol=1e-5)
  streamed = embedder.embed_images(iter([images[:3], images[3:4], images[4:]]))
  np.testing.assert_allclose(streamed, direct_images, atol=1e-5)
  np.testing.assert_allclose(embedder.embed_texts(captions), direct_texts, atol=1e-5)
  np.testing.assert_allclose(embedder.embed_tokens(tokenizer(captions, 16)), direct_texts,
                             atol=1e-5)
  image_net = features.clip_image_net(variables, config, batch_size=2, progress=False)
  assert image_net.name == "clip-vit-b32 images"
  np.testing.assert_allclose(image_net(images)["features"], direct_images, atol=1e-5)

  score = clip_score.compute_clip_score(embedder, images, captions)
  prefixed = embedder.embed_texts(["A photo depicts " + c for c in captions])
  assert score.variant == "clipscore"
  assert score.value == pytest.approx(clip_score.clip_score(direct_images, prefixed).value,
                                      abs=1e-5)
  tm = clip_score.compute_clip_score(embedder, images, captions, variant="torchmetrics")
  np.testing.assert_allclose(tm.per_sample,
                             clip_score.clip_score(direct_images, direct_texts, "torchmetrics")
                             .per_sample, atol=1e-3)
  with pytest.raises(ValueError, match="5 images but 4 captions"):
    clip_score.compute_clip_score(embedder, images, captions[:4])


def test_embedder_checks_tokenizer_and_batch(small_model, tokenizer):
  config, variables = small_model
  with pytest.raises(ValueError, match="different CLIPs"):
    features.clip_embedder(tokenizer, variables=variables, config=SMALL)
  embedder = features.clip_embedder(None, variables=variables, config=config, batch_size=4)
  with pytest.raises(ValueError, match="no tokenizer"):
    embedder.embed_texts(["a cat"])
  with pytest.raises(ValueError, match="Token ids must be integers"):
    embedder.embed_tokens(np.zeros((2, 5), np.float32))
  with pytest.raises(ValueError, match="No images"):
    embedder.embed_images(iter([]))


def test_embedder_shards_the_batch_over_devices():
  script = textwrap.dedent("""
      import jax, numpy as np
      from jaxgen import sharding
      from jaxgen.metrics import features
      from jaxgen.models import clip
      assert jax.device_count() == 2
      config = clip.CLIPConfig(embed_dim=8, image_size=16, patch_size=8, vision_width=16,
                               vision_layers=1, vision_heads=2, context_length=8,
                               vocab_size=20, text_width=16, text_layers=1, text_heads=2)
      rng = np.random.default_rng(0)
      variables = {"params": jax.tree.map(
          lambda s: rng.standard_normal(s.shape).astype(np.float32) * 0.2,
          clip.param_shapes(config))}
      images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), np.uint8)
      out = [features.clip_embedder(variables=variables, config=config, batch_size=4,
                                    mesh=sharding.make_mesh(d)).embed_images(images)
             for d in (jax.devices()[:1], jax.devices())]
      np.testing.assert_allclose(out[0], out[1], atol=1e-5)
      print("ok")
  """)
  env = {**os.environ, **fake_devices(2)}
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
