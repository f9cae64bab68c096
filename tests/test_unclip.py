"""The unclip family beyond the conformance suite: the embedding arithmetic (slerp,
standardisation, candidate selection, text diffs), the x0 parameterisation and the
guidance of the prior, karlo's parameter counts, the upsampler's blur, and the bad
stages, each one clear error line."""
import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from jaxgen import build, data, stages
from jaxgen.diffusion import samplers
from jaxgen.diffusion.process import GaussianDiffusion
from jaxgen.errors import ConfigError, StageError
from jaxgen.families.base import count_params
from jaxgen.families.unclip import embeddings as E
from jaxgen.families.unclip import trainer as unclip


# --- embedding arithmetic ---------------------------------------------------------------
def test_slerp_endpoints_norm_and_angle():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
  a, b = a / np.linalg.norm(a, axis=-1, keepdims=True), b / np.linalg.norm(
      b, axis=-1, keepdims=True)
  np.testing.assert_allclose(E.slerp(a, b, 0.0), a, atol=1e-6)
  np.testing.assert_allclose(E.slerp(a, b, 1.0), b, atol=1e-6)
  omega = np.arccos(np.sum(a * b, -1))
  for theta in (0.25, 0.5, 0.8):
    m = np.asarray(E.slerp(a, b, theta))
    np.testing.assert_allclose(np.linalg.norm(m, axis=-1), 1.0, atol=1e-6)
    # the angle to a is theta * omega: along the great circle, not a chord
    np.testing.assert_allclose(np.arccos(np.clip(np.sum(m * a, -1), -1, 1)),
                               theta * omega, atol=1e-5)
  # 90 degrees apart: the midpoint is (a + b) / sqrt(2); element-wise "angles" are not
  e0, e1 = np.eye(4)[0], np.eye(4)[1]
  np.testing.assert_allclose(E.slerp(e0, e1, 0.5), (e0 + e1) / np.sqrt(2), atol=1e-6)


def test_slerp_interpolates_the_norm_and_survives_collinear_vectors():
  a = np.array([2.0, 0.0, 0.0])
  np.testing.assert_allclose(np.linalg.norm(E.slerp(a, np.array([0.0, 4.0, 0.0]), 0.5)),
                             3.0, rtol=1e-6)
  np.testing.assert_allclose(E.slerp(a, 3 * a, 0.5), 2 * a, rtol=1e-6)  # norms 2 and 6


def test_text_diff_moves_toward_the_caption_difference():
  z = np.array([1.0, 0.0, 0.0])
  t0, t1 = np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0])  # difference: +z axis 3
  out = np.asarray(E.text_diff(z, t0, t1, 0.5))
  np.testing.assert_allclose(out, np.array([1.0, 0.0, 1.0]) / np.sqrt(2), atol=1e-6)
  np.testing.assert_allclose(E.text_diff(z, t0, t1, 0.0), z, atol=1e-6)


def test_candidate_selection_picks_the_higher_dot_product():
  text = np.array([[1.0, 0.0], [0.0, 1.0]])
  candidates = np.array([[[0.2, 0.9], [0.8, 0.1]],  # caption 0: the second wins
                         [[0.1, 0.5], [3.0, 0.4]]])  # caption 1: the first wins
  best, index = E.pick_candidates(candidates, text)
  np.testing.assert_array_equal(index, [1, 0])
  np.testing.assert_allclose(best, [[0.8, 0.1], [0.1, 0.5]], rtol=1e-6)


def test_standardisation_round_trip_and_statistics():
  rng = np.random.default_rng(1)
  e = rng.normal(3.0, [0.1, 2.0, 5.0], size=(4000, 3)).astype(np.float32)
  mean, std = E.statistics(e)
  np.testing.assert_allclose(mean, e.mean(0), rtol=1e-5)
  np.testing.assert_allclose(std, e.std(0), rtol=1e-4)
  z = np.asarray(E.standardize(e, mean, std))
  np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(z.std(0), 1.0, atol=1e-4)
  np.testing.assert_allclose(E.unstandardize(z, mean, std), e, rtol=1e-5, atol=1e-5)
  assert E.statistics(np.ones((5, 2)))[1].min() == E.MIN_STD  # no division by 0


# --- the prior's diffusion: x0 prediction and guidance ----------------------------------
def test_x0_parameterisation_identities():
  process = GaussianDiffusion.create("cosine", 100)
  rng = np.random.default_rng(2)
  x0, noise = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(4, 6))
  t = jnp.array([0, 10, 50, 99])
  xt = process.q_sample(x0, t, noise)
  assert process.target(x0, noise, t, "x0") is x0
  got_x0, got_eps = process.predict_x0_and_eps(x0, xt, t, "x0")
  np.testing.assert_allclose(got_x0, x0)
  np.testing.assert_allclose(got_eps, noise, rtol=1e-3, atol=2e-3)
  # DDIM with a model that knows x0 lands on it (eta 0, x0 output)
  out, _ = samplers.ddim(lambda x, t: jnp.broadcast_to(x0, x.shape), process, x0.shape,
                         jax.random.key(0), num_steps=5, parameterization="x0",
                         clip_x0=False)
  np.testing.assert_allclose(out, x0, atol=1e-5)


def test_guidance_mixes_x0_predictions():
  cond, null = jnp.array([[1.0, 2.0]]), jnp.array([[0.5, -1.0]])
  fn = samplers.guided(lambda x, t, c: c + 0 * x, cond, null, 4.0)
  np.testing.assert_allclose(fn(jnp.zeros((1, 2)), jnp.zeros((1,), jnp.int32)),
                             null + 4.0 * (cond - null))
  per_example = samplers.guided(lambda x, t, c: c + 0 * x, jnp.concatenate([cond, cond]),
                                jnp.concatenate([null, null]), jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(per_example(jnp.zeros((2, 2)), jnp.zeros((2,), jnp.int32)),
                             np.concatenate([cond, null]))


def test_gaussian_blur_keeps_constants_and_narrow_sigma_is_the_identity():
  x = np.random.default_rng(3).normal(size=(2, 8, 8, 1)).astype(np.float32)
  np.testing.assert_allclose(unclip.gaussian_blur(x, jnp.array([1e-4, 1e-4])), x,
                             atol=1e-6)
  flat = np.full((1, 8, 8, 1), 0.3, np.float32)
  np.testing.assert_allclose(unclip.gaussian_blur(flat, jnp.array([0.6])), flat, atol=1e-6)
  blurred = np.asarray(unclip.gaussian_blur(x, jnp.array([0.6, 0.6])))
  assert blurred.std() < x.std()


# --- karlo's counts -----------------------------------------------------------------------
@pytest.mark.parametrize("name,network,count", [
    ("unclip_prior_mnist", "prior", 1_022_028_544),
    ("unclip_mnist", "decoder", 893_318_086),
    ("unclip_upsampler_mnist", "upsampler", 691_579_523)])
def test_paper_counts_are_karlos(name, network, count):
  trainer = build.make_trainer(load_config(name, "paper"))  # no stage needed
  module, args, kwargs = trainer.networks()[network]
  assert count_params(module, *args, **kwargs) == count


def test_paper_decoder_refuses_to_train_learned_variances():
  trainer = build.make_trainer(load_config("unclip_mnist", "paper"))
  with pytest.raises(ConfigError, match="stages.clip is not set"):
    trainer.init_state(jax.random.key(0))


# --- bad stages -------------------------------------------------------------------------
class FakeClip(stages.ConditioningEncoder):
  """A stand-in CLIP: 8-d embeddings, 4-wide token states."""

  def embed_image(self, params, images):
    return E.normalize(images.reshape(images.shape[0], -1)[:, :8] + params)

  def embed_text(self, params, tokens):
    return E.normalize(jax.nn.one_hot(tokens[:, 1], 8) + params)

  def text_states(self, params, tokens):
    return jax.nn.one_hot(tokens, 4) + params, tokens > 0


class NoStates(FakeClip):
  text_states = stages.ConditioningEncoder.text_states  # raises NotImplementedError


def fake_stage(name, trainer, digest="a" * 64):
  return stages.Stage(name, f"/runs/{name}", trainer, jnp.zeros(()), 4, digest)


def make(config, **named):
  return unclip.UnCLIPTrainer(config, data.example_spec(config.data), named)


def test_a_clip_stage_without_text_states_is_refused():
  c = load_config("unclip_prior_mnist", "tiny")
  with pytest.raises(StageError, match="no per-token text states"):
    make(c, clip=fake_stage("clip", NoStates()))


def test_a_prior_over_another_clip_is_refused():
  c = load_config("unclip_mnist", "tiny")
  prior = types.SimpleNamespace(role="prior",
                                stages={"clip": fake_stage("clip", FakeClip(), "b" * 64)})
  with pytest.raises(StageError, match="over another CLIP than this decoder") as e:
    make(c, clip=fake_stage("clip", FakeClip()), prior=fake_stage("prior", prior))
  assert "\n" not in str(e.value)
  # the same CLIP passes
  same = types.SimpleNamespace(role="prior", stages={"clip": fake_stage("clip", FakeClip())},
                               text_drop=0.1)
  assert make(c, clip=fake_stage("clip", FakeClip()),
              prior=fake_stage("prior", same)).conditioning_keys == ("text",)


def test_prior_guidance_of_a_prior_trained_without_text_dropout_is_refused():
  c = load_config("unclip_mnist", "tiny")  # sample.prior_guidance_scale 4, grid (1, 4)
  prior = types.SimpleNamespace(role="prior", stages={"clip": fake_stage("clip", FakeClip())},
                                text_drop=0.0)
  with pytest.raises(ConfigError, match="Prior guidance scales other than 1 .* need a "
                                        "prior trained with text dropout"):
    make(c, clip=fake_stage("clip", FakeClip()), prior=fake_stage("prior", prior))
  c.sample.prior_guidance_scale = 1.0
  c.eval.prior_guidance_scales = (1.0,)
  assert make(c, clip=fake_stage("clip", FakeClip()),
              prior=fake_stage("prior", prior)).prior_scale == 1.0


def test_an_upsampler_of_another_low_resolution_is_refused():
  c = load_config("unclip_mnist", "tiny")  # the decoder samples at 16 x 16
  up = types.SimpleNamespace(role="upsampler", low_resolution=8, data_shape=(32, 32, 1))
  with pytest.raises(StageError, match="upsamples 8x8 images to 32x32, and this decoder "
                                       "samples at 16x16"):
    make(c, clip=fake_stage("clip", FakeClip()), upsampler=fake_stage("upsampler", up))
  wrong_role = types.SimpleNamespace(role="decoder")
  with pytest.raises(StageError, match="not an upsampler"):
    make(c, clip=fake_stage("clip", FakeClip()),
         upsampler=fake_stage("upsampler", wrong_role))


def test_the_decoder_run_records_clip_and_samples_through_any_prior_and_upsampler():
  """The decoder's loss reads CLIP alone: its checkpoint records the clip stage, and a
  later evaluation may name another prior or upsampler (or none), while a changed CLIP
  is still refused by name."""
  assert unclip.UnCLIPTrainer.sampling_stages == ("prior", "upsampler")
  ignore = unclip.UnCLIPTrainer.sampling_stages
  trained = {"clip": fake_stage("clip", None), "prior": fake_stage("prior", None),
             "upsampler": fake_stage("upsampler", None)}
  recorded = stages.record(trained, ignore)
  assert set(recorded) == {"clip"}
  later = {"clip": fake_stage("clip", None), "prior": fake_stage("prior", None, "b" * 64),
           "upsampler": fake_stage("upsampler", None, "c" * 64)}
  stages.check_record(later, recorded, "/runs/decoder", ignore)
  stages.check_record({"clip": trained["clip"]}, recorded, "/runs/decoder", ignore)
  # a record written before the decoder left them out still reads
  stages.check_record(later, stages.record(trained), "/runs/decoder", ignore)
  with pytest.raises(StageError, match="The clip stage changed since /runs/decoder"):
    stages.check_record({**later, "clip": fake_stage("clip", None, "d" * 64)}, recorded,
                        "/runs/decoder", ignore)
  with pytest.raises(StageError, match="trained with stages"):
    stages.check_record(later, recorded, "/runs/decoder")  # without ignore: refused


def test_bad_role_and_prior_parameterisation():
  c = load_config("unclip_prior_mnist", "tiny")
  c.model.role = "vocoder"
  with pytest.raises(ConfigError, match="model.role='vocoder'"):
    make(c, clip=fake_stage("clip", FakeClip()))
  c = load_config("unclip_prior_mnist", "tiny")
  c.diffusion.parameterization = "eps"
  with pytest.raises(ConfigError, match="predicts the unnoised embedding"):
    make(c, clip=fake_stage("clip", FakeClip()))


# --- the shared tiny pipeline -------------------------------------------------------------
def test_tiny_pipeline_pictures_and_prior_readout(tiny_runs):
  decoder = tiny_runs("unclip_mnist")
  for name in ("variations", "interpolation", "text_diff"):
    assert os.path.isfile(os.path.join(decoder, "samples", f"{name}_step_4.png"))
  with open(os.path.join(decoder, "eval.json")) as f:
    result = json.load(f)
  assert "caption_accuracy_digit_guidance_3" in result
  prior = tiny_runs("unclip_prior_mnist")
  with open(os.path.join(prior, "eval.json")) as f:
    readout = json.load(f)
  for key in ("cosine_guidance_1", "cosine_guidance_4", "cosine_text_baseline",
              "cosine_mean_baseline", "x0_mse"):
    assert np.isfinite(readout[key])
  assert -1 <= readout["cosine_guidance_4"] <= 1


# --- bipartite variations: the decoder's DDIM inversion ---------------------------------
MU, S = 0.0, 0.5  # Gaussian data, whose exact denoiser stands in for the decoder


def gaussian_decoder(process, parameterization):
  """The exact denoiser of N(MU, S^2) pixels, as the network's output in the
  trainer's parameterization."""
  def apply(params, x, t, cond, **unused):
    a = process.alphas_cumprod[t][:, None, None, None]
    eps = jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * MU) / (a * S ** 2 + 1 - a)
    x0 = (x - jnp.sqrt(1 - a) * eps) / jnp.sqrt(a)
    return process.target(x0, eps, t, parameterization)
  return apply


def test_the_decoders_inversion_then_eta0_redraws_the_image():
  """With the exact denoiser of Gaussian data as the decoder (its ODE is then exact in
  the limit of many steps), the trainer's inversion (conditioned, guided) decoded with
  eta 0 gives the image back at the decoder's resolution; eta 1 does not."""
  c = load_config("unclip_mnist", "tiny")  # T = 100, 16 x 16 decoder for 32 x 32 data
  c.sample.num_steps = 100
  trainer = make(c, clip=fake_stage("clip", FakeClip()))
  trainer.apply_decoder = gaussian_decoder(trainer.process, trainer.param)
  low = np.clip(MU + S * np.random.default_rng(5).normal(size=(2, 16, 16, 1)), -1, 1)
  images = jnp.asarray((low.repeat(2, 1).repeat(2, 2) + 1) / 2, jnp.float32)  # [0, 1]
  frozen = {"clip": jnp.zeros(())}
  x_t = trainer.invert(None, frozen, images)
  assert x_t.shape == (2, 16, 16, 1)
  e = trainer.image_embedding(frozen["clip"], images)
  back = trainer.decode(None, frozen, jax.random.key(0), e, noise=x_t, eta=0.0)
  np.testing.assert_allclose(back, images, atol=0.03)
  # from other noise, or with eta 1, the image is not redrawn
  other = trainer.decode(None, frozen, jax.random.key(0), e, eta=0.0)
  assert np.abs(np.asarray(other) - images).max() > 0.3
  bip = trainer.bipartite_variations(None, frozen, jax.random.key(1), images, seeds=2,
                                     eta=1.0)
  assert bip.shape == (2, 2, 32, 32, 1)
  assert np.abs(np.asarray(bip[:, 0]) - np.asarray(bip[:, 1])).max() > 0.1
  assert np.abs(np.asarray(bip[:, 0]) - np.asarray(images)).mean() > np.abs(
      np.asarray(back) - np.asarray(images)).mean()


def test_the_pipeline_guides_the_prior_with_the_decoder_runs_scale():
  """sample.prior_guidance_scale of the decoder run (not the prior run's), or each
  sample's prior_guidance_scale, reaches the prior stage."""
  seen = []

  def image_embeddings(prior_params, clip_params, rng, tokens, scale=None):
    seen.append(scale)
    return E.normalize(jnp.ones((tokens.shape[0], 8)))

  prior = types.SimpleNamespace(role="prior", stages={"clip": fake_stage("clip", FakeClip())},
                                text_drop=0.1, image_embeddings=image_embeddings)
  c = load_config("unclip_mnist", "tiny")
  c.sample.prior_guidance_scale = 2.5
  trainer = make(c, clip=fake_stage("clip", FakeClip()), prior=fake_stage("prior", prior))
  trainer.apply_decoder = gaussian_decoder(trainer.process, trainer.param)
  tokens = jnp.ones((2, trainer.text_length), jnp.int32)
  frozen = {"clip": jnp.zeros(()), "prior": None}
  trainer.sample(None, jax.random.key(0), 2, {"text": tokens}, frozen)
  assert seen == [2.5]
  scaled = unclip.PriorScaled(trainer, 1.0)
  scaled.generate(types.SimpleNamespace(ema_params=None), jax.random.key(0), 2,
                  {"text": tokens}, frozen)
  np.testing.assert_array_equal(seen[-1], [1.0, 1.0])
