"""The clip family (jaxgen/families/clip/): the contrastive loss by hand and with equal
captions, the temperature clamp, AdamW's decay mask, the zero-shot prompts, the
paper count, the start from a Hugging Face file, the evaluation and the pictures,
and its errors. The run/resume/eval/4-device contract is the conformance suite's."""
import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import safetensors.numpy

from conftest import load_config, load_module
from jaxgen import build, data, errors, losses, sharding, stages, train, viz
from jaxgen.families import base
from jaxgen.families.clip import trainer as clip_trainer
from jaxgen.families.clip import zero_shot
from jaxgen.data import mnist5k_derived
from jaxgen.models import clip
from jaxgen.weights import clip as clip_weights


def _log_softmax(x, axis):
  x = np.asarray(x, np.float64)
  m = x.max(axis, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


# ---------------------------------------------------------------------------------
# The loss.

def test_contrastive_loss_is_clips_symmetric_cross_entropy_by_hand():
  logits = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32) * 3
  rows, cols = _log_softmax(logits, 1), _log_softmax(logits, 0)
  expected = -0.5 * (np.diag(rows) + np.diag(cols))
  np.testing.assert_allclose(losses.contrastive_loss(jnp.asarray(logits)), expected,
                             rtol=1e-5)
  same = losses.equal_rows(jnp.eye(4, dtype=jnp.int32))  # distinct rows: the diagonal
  np.testing.assert_allclose(losses.contrastive_loss(jnp.asarray(logits), same),
                             expected, rtol=1e-5)


def test_equal_token_rows_are_positives_and_their_loss_is_the_mass_on_them():
  tokens = jnp.asarray([[1, 5, 2, 0], [1, 6, 2, 0], [1, 5, 2, 0]])
  same = np.asarray(losses.equal_rows(tokens))
  np.testing.assert_array_equal(same, [[1, 0, 1], [0, 1, 0], [1, 0, 1]])
  logits = np.random.default_rng(1).normal(size=(3, 3)) * 2
  p_rows, p_cols = np.exp(_log_softmax(logits, 1)), np.exp(_log_softmax(logits, 0))
  expected = [-0.5 * (np.log((p_rows[i] * same[i]).sum())
                      + np.log((p_cols[:, i] * same[:, i]).sum())) for i in range(3)]
  np.testing.assert_allclose(
      losses.contrastive_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(same)),
      expected, rtol=1e-5)


def test_text_negatives_join_only_the_image_side_and_minus_inf_drops_one():
  """NegCLIP's hard negatives by hand: image i's softmax runs over the N batch
  captions and the M extra ones; the text side is unchanged; a -inf column is as if
  it were absent."""
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(3, 3)).astype(np.float32) * 2
  extra = rng.normal(size=(3, 2)).astype(np.float32) * 2
  rows = _log_softmax(np.concatenate([logits, extra], 1), 1)[:, :3]
  cols = _log_softmax(logits, 0)
  expected = -0.5 * (np.diag(rows) + np.diag(cols))
  got = losses.contrastive_loss(jnp.asarray(logits), None, jnp.asarray(extra))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  assert np.all(np.asarray(got) > np.asarray(losses.contrastive_loss(jnp.asarray(logits))))
  dropped = extra.copy()
  dropped[:, 1] = -np.inf
  rows = _log_softmax(np.concatenate([logits, extra[:, :1]], 1), 1)[:, :3]
  np.testing.assert_allclose(
      losses.contrastive_loss(jnp.asarray(logits), None, jnp.asarray(dropped)),
      -0.5 * (np.diag(rows) + np.diag(cols)), rtol=1e-5)


def test_swapped_negatives_exchange_the_two_digits_and_need_two_digit_captions():
  c = load_config("clip_mnist", "tiny,captions2")
  c.model.swapped_negatives = True
  tr = build.make_trainer(c)
  tokens = data.get_source(c.data, "train").arrays["text"][:300]
  out = tr.tokenizer.decode_batch(np.asarray(jax.jit(tr.swap_digits)(jnp.asarray(tokens))))
  changed = 0
  for before, after in zip(tr.tokenizer.decode_batch(tokens), out):
    words = before.split()
    at = [i for i, w in enumerate(words) if w.isdigit()]
    assert len(at) == 2, before
    words[at[0]], words[at[1]] = words[at[1]], words[at[0]]
    assert after == " ".join(words)
    changed += after != before
  assert changed > 250  # equal digits stay: about 1 in 10
  c.model.short_caption_rate = 1.0  # cut after the first digit: nothing to swap
  one = build.make_trainer(c).short_captions(jnp.asarray(tokens[:5]), jax.random.key(0))
  np.testing.assert_array_equal(tr.swap_digits(one), one)
  batch = {"image": jnp.zeros((4, *tr.example_shape)), "text": jnp.asarray(tokens[:4])}
  params = tr.init_params(jax.random.key(0))
  loss, _ = tr.loss(params, batch, jax.random.key(1))
  assert np.isfinite(float(loss))
  c1 = load_config("clip_mnist", "tiny")
  c1.model.swapped_negatives = True
  with pytest.raises(errors.ConfigError, match="swapped_negatives exchanges a caption's "
                                               "two digits"):
    build.make_trainer(c1)


def test_two_equal_captions_in_a_batch_do_not_push_each_other_apart():
  """Images 0 and 1 have the same caption (so the same text embedding t), image 1
  closer to it; image 2 and text 2 differ. CLIP's one-hot target pushes image 1 away
  from the caption it shares with image 0; the multi-positive loss pulls both images
  towards it and lowers no positive logit."""
  t, e1, e2 = np.eye(3, dtype=np.float32)
  images = jnp.asarray([0.6 * t + 0.8 * e1, t, e1])
  texts = jnp.asarray([t, t, e2])
  same = losses.equal_rows(jnp.asarray([[1, 4, 2], [1, 4, 2], [1, 5, 2]]))

  def loss(u, positives):
    return losses.contrastive_loss(10.0 * u @ texts.T, positives).sum()

  pull = lambda positives: -np.asarray(jax.grad(loss)(images, positives)) @ t
  assert pull(None)[1] < 0  # one-hot: image 1 is pushed away from its own caption
  assert np.all(pull(same)[:2] > 0)  # multi-positive: both pulled towards it
  logits = 10.0 * images @ texts.T
  grads = np.asarray(jax.grad(lambda l: losses.contrastive_loss(l, same).sum())(logits))
  assert np.all(grads[np.asarray(same)] <= 1e-7)  # no positive logit is lowered
  one_hot = np.asarray(jax.grad(lambda l: losses.contrastive_loss(l).sum())(logits))
  assert one_hot[1, 0] > 0 and one_hot[0, 1] > 0


# ---------------------------------------------------------------------------------
# The optimiser and the temperature.

def _adamw(mask):
  return ml_collections.ConfigDict(dict(
      name="adamw", learning_rate=0.1, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.5,
      schedule="constant", warmup_steps=0, end_factor=1.0, grad_clip_norm=0.0,
      **({"weight_decay_mask": mask} if mask else {})))


@pytest.mark.parametrize("mask", ["", "all", "matrices"])
def test_adamw_decays_only_matrices_under_open_clips_rule(mask):
  params = {"dense": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)},
            "norm": {"scale": jnp.ones(3)}, "class_embedding": jnp.ones(3),
            "logit_scale": jnp.ones(())}
  tx = base.make_optimizer(_adamw(mask), 10)
  zero = jax.tree.map(jnp.zeros_like, params)
  new, _ = base.optimizer_step(tx, zero, tx.init(params), params)
  moved = {"/".join(str(getattr(k, "key", k)) for k in path): bool(np.any(v != 1))
           for path, v in jax.tree_util.tree_leaves_with_path(new)}
  assert moved.pop("dense/kernel")  # a matrix decays
  assert set(moved.values()) == {mask != "matrices"}, moved
  with pytest.raises(ValueError, match="weight_decay_mask"):
    base.make_optimizer(_adamw("biases"), 10)


def test_the_clip_config_decays_kernels_and_embeddings_not_the_temperature():
  c = load_config("clip_mnist", "tiny")
  assert c.optim.weight_decay_mask == "matrices"
  tr = build.make_trainer(c)
  shapes = jax.eval_shape(tr.init_params, jax.random.key(0))
  decays = base.decays_matrices(shapes)
  assert not decays["logit_scale"]
  assert not decays["vision_model"]["embeddings"]["class_embedding"]
  assert not decays["vision_model"]["pre_layrnorm"]["scale"]
  assert decays["text_model"]["embeddings"]["token_embedding"]["embedding"]
  assert decays["visual_projection"]["kernel"]


@pytest.fixture(scope="module")
def tiny():
  c = load_config("clip_mnist", "tiny")
  tr = build.make_trainer(c)
  state = jax.jit(tr.init_state)(jax.random.key(0))
  batch = next(data.Loader(data.get_source(c.data, "train"), c.data, 8, 0))
  return c, tr, state, batch


def test_the_temperature_starts_at_1_over_007_and_is_clamped_after_each_step(tiny):
  _, tr, state, batch = tiny
  assert float(state.params["logit_scale"]) == pytest.approx(math.log(1 / 0.07))
  step = jax.jit(tr.train_step)
  for value, bound in ((5.0, math.log(100)), (-1.0, 0.0)):
    params = {**state.params, "logit_scale": jnp.float32(value)}
    new, metrics = step(state.replace(params=params, ema_params=params), batch,
                        jax.random.key(1))
    assert float(new.params["logit_scale"]) == pytest.approx(bound)
    assert float(new.ema_params["logit_scale"]) == pytest.approx(bound)
    assert np.isfinite(float(metrics["loss"]))


@pytest.mark.parametrize("variant", ["tiny", "tiny,captions2"])
def test_short_captions_end_after_the_first_digit_at_their_rate(variant):
  c = load_config("clip_mnist", variant)
  c.model.short_caption_rate = 0.3
  tr = build.make_trainer(c)
  tokens = data.get_source(c.data, "train").arrays["text"][:2000]
  full = tr.tokenizer.decode_batch(tokens)
  out = tr.tokenizer.decode_batch(np.asarray(
      jax.jit(tr.short_captions)(jnp.asarray(tokens), jax.random.key(3))))
  cut = 0
  for before, after in zip(full, out):
    words = before.split()
    first_digit = next(i for i, w in enumerate(words) if w.isdigit())
    if after != before:
      cut += 1
      assert after == " ".join(words[:first_digit + 1])  # "a thick small 3"
  assert cut / len(full) == pytest.approx(0.3, abs=0.04)  # 2000 draws: sd 0.01
  c.model.short_caption_rate = 1.5
  with pytest.raises(errors.ConfigError, match="short_caption_rate=1.5 is a "
                                               "probability"):
    build.make_trainer(c)


# ---------------------------------------------------------------------------------
# Zero-shot prompts and errors.

@pytest.mark.parametrize("split", ["train", "test"])
def test_every_caption_parses_and_is_one_of_its_attribute_variants(split):
  for caption in mnist5k_derived.caption_data(split)["caption"][::7]:
    parts = zero_shot.parse(str(caption))
    assert zero_shot.caption(**parts) == caption
    for attribute, values in zero_shot.ATTRIBUTES.items():
      variants, i = zero_shot.attribute_variants(str(caption), attribute)
      assert variants[i] == caption and len(variants) == len(values)
  prompts = zero_shot.digit_prompts()
  assert len(prompts) == 10 and len(prompts[3]) == 3 * 3 * 3 * 9
  assert "an 8 upright in the top left" in prompts[8]
  assert prompts[8][0] == "a thin small 8 slanted left in the top left"


def test_an_out_of_vocabulary_prompt_word_is_a_clear_error(tiny):
  _, tr, _, _ = tiny
  tr.encode_prompts(["a thick 3 upright in the centre"])
  with pytest.raises(errors.ConfigError, match="'purple', which is not in the run's "
                                               "caption vocabulary"):
    tr.encode_prompts(["a purple 3 upright in the centre"])


def test_a_stage_with_another_tokenizer_is_refused(tiny):
  _, tr, _, _ = tiny
  stage = stages.Stage("clip", "run", tr, None, 0, "", tokenizer=tr.tokenizer)
  stages.check_tokenizer(
      stage, data.get_dataset(load_config("clip_mnist", "tiny").data).tokenizer(), "x")
  other = data.get_dataset(load_config("clip_mnist", "tiny,captions2").data).tokenizer()
  with pytest.raises(errors.StageError, match="train the clip stage on the same"):
    stages.check_tokenizer(stage, other, "a run on mnist5k_captions2")


def test_clip_does_not_generate():
  c = load_config("clip_mnist", "tiny")
  tr = build.make_trainer(c)
  assert tr.generates is False
  with pytest.raises(errors.ConfigError, match="generates no images"):
    tr.generate(None, jax.random.key(0), 4)


def test_a_dataset_without_captions_is_refused():
  c = load_config("clip_mnist", "tiny")
  c.data.name = "mnist5k"
  with pytest.raises(ValueError, match="image, text"):
    build.make_trainer(c)


# ---------------------------------------------------------------------------------
# Sizes and weights.

def test_the_paper_config_is_openais_vit_b32():
  tr = build.make_trainer(load_config("clip_mnist", "paper"))
  shapes = jax.eval_shape(tr.init_params, jax.random.key(0))
  assert sum(x.size for x in jax.tree.leaves(shapes)) == 151_277_313
  assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(
      lambda s: s.shape, clip.param_shapes(clip.VIT_B_32))


def test_a_tiny_clip_started_from_a_hugging_face_file_embeds_as_the_port(tmp_path):
  fx = load_module("tests/fixtures/make_clip_fixture.py")
  d = fx.DIMS
  path = tmp_path / "model.safetensors"
  safetensors.numpy.save_file(fx.hf_state_dict(), str(path))
  c = load_config("clip_mnist", "tiny")
  c.model.update(embed_dim=d["embed_dim"], image_size=(32, 32), image_channels=3,
                 patch_size=d["patch_size"], vision_width=d["vision_width"],
                 vision_layers=d["vision_layers"], vision_heads=d["vision_heads"],
                 text_width=d["text_width"], text_layers=d["text_layers"],
                 text_heads=d["text_heads"], context_length=d["context_length"],
                 vocab_size=d["vocab_size"], init=str(path),
                 conv_stem=())  # OpenAI's layout: the stride-p patch conv
  tr = build.make_trainer(c)
  params = jax.jit(tr.init_state)(jax.random.key(0)).params
  port = clip_weights.CLIPEncoder(clip.CLIPConfig(**d))
  variables = clip_weights.load_hf_checkpoint(path, port.clip_config)
  images = np.random.default_rng(0).uniform(size=(3, 32, 32, 1)).astype(np.float32)
  np.testing.assert_allclose(tr.embed_image(params, images),
                             port.embed_image(variables, images), atol=1e-5)
  # Tokens whose largest id ends the text: OpenAI's argmax and the caption length
  # find the same end.
  _, tokens = fx.model_inputs()
  assert np.array_equal(clip.end_positions(tokens), clip.end_positions(tokens, "length"))
  np.testing.assert_allclose(tr.embed_text(params, tokens),
                             port.embed_text(variables, tokens), atol=1e-5)
  # The word tokenizer's captions end in <eos> = 2, not the largest id: the family
  # pools at the caption's length (the port with that rule agrees).
  words = data.get_dataset(c.data).tokenizer().encode(["a thick 3 upright at the top"], 16)
  by_length = clip_weights.CLIPEncoder(dataclasses.replace(port.clip_config,
                                                           end_of_text="length"))
  np.testing.assert_allclose(tr.embed_text(params, words),
                             by_length.embed_text(variables, words), atol=1e-5)
  c.model.init = str(tmp_path / "missing.safetensors")
  with pytest.raises(errors.ConfigError, match="config.model.init"):
    build.make_trainer(c).init_params(jax.random.key(0))


# ---------------------------------------------------------------------------------
# Evaluation and pictures.

def test_the_tiny_run_evaluates_zero_shot_and_retrieval_and_draws(tiny_runs):
  workdir = tiny_runs("clip_mnist")
  result = json.load(open(os.path.join(workdir, "eval.json")))
  for key in ("zero_shot_digit_accuracy", "zero_shot_size_accuracy",
              "zero_shot_thickness_accuracy", "zero_shot_slant_accuracy",
              "zero_shot_position_accuracy", "recall_at_1_image_to_text",
              "recall_at_5_image_to_text", "recall_at_1_text_to_image",
              "recall_at_5_text_to_image"):
    assert 0 <= result[key] <= 1, key
  assert result["recall_at_5_text_to_image"] >= result["recall_at_1_text_to_image"]
  assert 1 <= result["temperature"] <= 100
  pictures = os.listdir(os.path.join(workdir, "samples"))
  assert {"step_4.png", "similarity_step_4.png"} <= set(pictures), pictures


def test_the_two_digit_evaluation_has_the_order_test():
  c = load_config("clip_mnist", "tiny,captions2")
  mesh = sharding.make_mesh()
  tr = build.make_trainer(c, mesh)
  state = jax.jit(tr.init_state)(jax.random.key(0))
  result = train.evaluate(tr, state, c, mesh)
  assert 0 <= result["order_accuracy"] <= 1 and result["order_examples"] > 0
  for key in ("zero_shot_pair_accuracy", "zero_shot_left_digit_accuracy",
              "zero_shot_digit_accuracy", "recall_at_5_image_to_text"):
    assert 0 <= result[key] <= 1, key
  pictures = tr.visualize(state, jax.random.key(0), data.spread_batch(
      data.get_source(c.data, "test"), c.data, 16, 0))
  assert pictures["similarity"].shape == (17 * 32, 17 * 64, 3)
  assert pictures["samples"].dtype == np.uint8 and pictures["samples"].ndim == 3


def test_pictures_by_hand():
  sims = np.asarray([[1.0, -1.0], [0.0, 1.0]])
  images = np.full((2, 2, 3, 3), 7, np.uint8)
  out = clip_trainer.similarity_picture(sims, images)
  assert out.shape == (6, 9, 3)
  assert out[2, 3, 0] == 255 and out[2, 6, 0] == 0 and out[4, 3, 0] == 128
  assert out[2, 0, 0] == 7 and out[0, 3, 0] == 7
  grid = viz.captioned_rows(["a 3", "a 4"], np.zeros((2, 5, 4, 4, 3), np.uint8))
  assert grid.shape[0] == 2 * 6 and grid.dtype == np.uint8
