"""Latent diffusion's paper configurations and variants beyond tests/test_ldm.py: the
three paper configs at CompVis' exact parameter counts with their betas, built without
a first stage (``latent.shape``); ``concat`` conditioning (LDM's super-resolution:
the U-Net sees the low-resolution image, dropped to mid-grey at the p_uncond rate,
scored by the paired metrics against the image it came from); the ``vq`` variant over
a VQ-VAE stage; the two-digit ``captions2`` variant. The stages here are initialised
in the test process from their tiny configs, not trained (none of these checks needs a
trained network): nothing is compiled at the paper's size."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, load_module
from jaxgen import build, data, errors, registry, sharding, stages
from jaxgen import main as cli
from jaxgen.evaluators import EVALUATORS
from jaxgen.models import autoencoder_kl as aekl

LDM = registry.family_class("ldm")

# name -> (the --mode=summary counts, CompVis' linear_start and linear_end, the first
# stage whose latents of 256 x 256 images latent.shape fixes). The counts: ../shared
# REFERENCE.md (CompVis/latent-diffusion configs/latent-diffusion/*.yaml); cin256-v2's
# ClassEmbedder is 1,001 x 512 (the null class 1000 included).
PAPER = {
    "ldm_celebahq": ({"denoiser": 274_056_163}, (0.0015, 0.0195), aekl.VQ_F4),
    "ldm_cin256": ({"denoiser": 400_920_579, "class": 1001 * 512}, (0.0015, 0.0195),
                   aekl.VQ_F4),
    "ldm_txt2img": ({"denoiser": 872_300_484, "text": 581_994_042}, (0.00085, 0.012),
                    aekl.KL_F8),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_the_paper_configs_have_compvis_counts_and_betas_without_a_stage(name, capsys):
  """--mode=summary (shapes only) of each paper config, with no stage named: the
  networks are built on the fixed latents, which are the paper's first stage's."""
  counts, (start, end), first_stage = PAPER[name]
  c = load_config(name, "paper")
  assert cli.summary(c) == counts
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == counts
  assert tuple(c.latent.shape) == first_stage.latent_shape(256, 256)
  trainer = build.make_trainer(c)
  # CompVis' make_beta_schedule("linear"): linear in sqrt(beta), T = 1000.
  betas = np.linspace(start ** 0.5, end ** 0.5, 1000, dtype=np.float64) ** 2
  np.testing.assert_allclose(np.asarray(trainer.process.betas), betas, rtol=1e-6)
  assert trainer.autoencoder is None and "autoencoder" not in trainer.stages
  # Training refuses before it allocates anything; so does any use of the stage.
  for use in (lambda: trainer.init_params(jax.random.key(0)),
              lambda: trainer.encode({}, jnp.zeros((1, *trainer.data_shape)))):
    with pytest.raises(errors.ConfigError, match="stages.autoencoder is not set"):
      use()


def tiny_stage(name: str, variant: str, shapes_only: bool = False) -> stages.Stage:
  """The stage of configs/<name>.py:<variant> at its initial parameters (untrained),
  or their shapes only (for checks that never run the stage)."""
  st = build.make_trainer(load_config(name, variant))
  key = jax.random.key(0)
  state = (jax.eval_shape(st.init_state, key) if shapes_only
           else jax.jit(st.init_state)(key))
  return stages.Stage("autoencoder", f"{name}:{variant}", st, st.stage_params(state), 0,
                      "")


def make_ldm(config, stage):
  return LDM(config, data.example_spec(config.data), {"autoencoder": stage})


def canvases(config, split: str, n: int) -> np.ndarray:
  """n preprocessed images spread over the split (sorted by digit) as the scale
  factor's are."""
  source = data.get_source(config.data, split)
  idx = np.unique(np.linspace(0, len(source) - 1, n).astype(np.int64))
  return data.preprocess.process(source[idx], config.data, np.random.default_rng(0),
                                 train=False, indices=idx)["image"]


def perturbed(params, seed: int):
  """Every leaf moved by noise: the zero-initialised output convolution of the
  U-Net would otherwise give 0 whatever it is conditioned on."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda x: x + 0.05 * rng.standard_normal(x.shape, np.float32),
                      params)


@pytest.fixture(scope="module")
def kl_stage():
  return tiny_stage("autoencoder_kl_mnist", "tiny", shapes_only=True)


@pytest.fixture(scope="module")
def superres(kl_stage):
  c = load_config("ldm_mnist", "superres,tiny")
  c.latent.scale_factor = 1.0  # no need for the data's factor here
  trainer = make_ldm(c, kl_stage)
  params = perturbed(jax.jit(trainer.init_params)(jax.random.key(1)), 2)
  # concat reads no stage parameter: the stage's shapes stay out of the calls
  apply = jax.jit(lambda z, t, images: trainer.apply(params, z, t, {"image": images}, {}))
  return c, trainer, params, apply


def block_means(images: np.ndarray, f: int) -> np.ndarray:
  """(N, H/f, W/f, C): each f x f block's mean, by loops."""
  n, height, width, _ = images.shape
  out = np.zeros((n, height // f, width // f, images.shape[-1]))
  for i in range(height // f):
    for j in range(width // f):
      out[:, i, j] = images[:, i * f:(i + 1) * f, j * f:(j + 1) * f].mean((1, 2))
  return out


def test_concat_feeds_the_low_resolution_image_to_the_unet(superres):
  c, trainer, params, apply = superres
  images = canvases(c, "test", 4)
  h, w, channels = trainer.example_shape
  f = images.shape[1] // h  # the stage's factor
  z = jax.random.normal(jax.random.key(3), (4, h, w, channels))
  t = jnp.array([0, 10, 50, 99])
  pred = apply(z, t, jnp.asarray(images))
  # The U-Net's input: the latent channels and the canvas averaged over the f x f
  # blocks of the latent grid, in [-1, 1].
  assert params["denoiser"]["input_blocks_0_0"]["kernel"].shape[2] == channels + 1
  low = 2.0 * block_means(images, f) - 1.0
  unet = jax.jit(lambda x, t: trainer.denoiser.apply({"params": params["denoiser"]}, x, t))
  direct = unet(jnp.concatenate([z, jnp.asarray(low, z.dtype)], -1), t)
  np.testing.assert_allclose(pred, direct, rtol=1e-4, atol=1e-5)
  # Another conditioning image alone changes the prediction...
  other = apply(z, t, jnp.asarray(images[::-1]))
  assert float(jnp.abs(other - pred).max()) > 1e-2
  # ... and an image with the same block means does not: only the low resolution is
  # seen (each block's pixels flipped).
  flipped = images.reshape(4, h, f, w, f, 1)[:, :, ::-1, :, ::-1].reshape(images.shape)
  assert not np.array_equal(flipped, images)
  same = apply(z, t, jnp.asarray(flipped))
  np.testing.assert_allclose(same, pred, rtol=1e-4, atol=1e-5)


def test_concat_drops_to_mid_grey_at_the_p_uncond_rate_and_guides_with_it(superres):
  c, trainer, params, apply = superres
  images = jnp.asarray(canvases(c, "train", 4000))
  out = trainer.drop_conditioning({"image": images}, jax.random.key(4))["image"]
  out = np.asarray(out)
  dropped = (out == 0.5).all((1, 2, 3))
  assert dropped.mean() == pytest.approx(c.model.p_uncond, abs=0.015)  # sd 0.005
  np.testing.assert_array_equal(out[~dropped], np.asarray(images)[~dropped])
  # The null image's low-resolution input is zeros; guidance mixes with it.
  z = jax.random.normal(jax.random.key(5), (4, *trainer.example_shape))
  t = jnp.array([5, 20, 60, 90])
  cond = {"image": images[:4]}
  unet = jax.jit(lambda x, t: trainer.denoiser.apply({"params": params["denoiser"]}, x, t))
  uncond = unet(jnp.concatenate([z, jnp.zeros((*z.shape[:-1], 1))], -1), t)
  conditional = apply(z, t, cond["image"])
  guided = jax.jit(lambda z, t: trainer.model_fn(params, {}, cond, 3.0)(z, t))(z, t)
  np.testing.assert_allclose(guided, uncond + 3.0 * (conditional - uncond), rtol=1e-4,
                             atol=1e-4)


def test_the_paired_metrics_score_each_sample_against_its_own_image(superres):
  """eval.paired_key="image": PSNR of the samples against the canvases they were
  conditioned on (the shuffled baseline gives another canvas's samples)."""
  c, trainer, _, _ = superres
  assert trainer.conditioning_keys == ("image",)
  psnr = EVALUATORS.get("psnr")(c, sharding.make_mesh(), {})
  assert psnr.needs == ("image",)
  truth = canvases(c, "test", 8)
  samples = np.clip(truth + np.random.default_rng(0).normal(0, 0.1, truth.shape), 0, 1)
  psnr.update(samples, {"image": truth})
  mse = ((samples - truth) ** 2).reshape(8, -1).mean(1)
  assert psnr.result()["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse)))
  assert EVALUATORS.get("psnr")(load_config("pix2pix_mnist", "tiny"),
                                sharding.make_mesh(), {}).needs == ("target",)


def test_the_vq_variant_diffuses_the_vqvae_vectors_before_quantisation():
  """ldm_mnist:vq over configs/vqvae_mnist.py:captions: the latents are the encoder's
  vectors (times the scale factor, 1 / their std over training canvases) and samples
  are decoded through the nearest codes."""
  module = load_module("configs/ldm_mnist.py")
  assert module.stage_config({"vq"}) == "vqvae_mnist:captions"
  assert module.stage_config(set()) == module.STAGE_CONFIGS["autoencoder"]
  assert module.stage_config({"f4", "captions2"}) == "autoencoder_kl_mnist:captions2"
  assert module.stage_config({"captions2"}, "clip") == "clip_mnist:captions2"
  c = load_config("ldm_mnist", "vq,joint,tiny")  # the stage alone: no CLIP
  assert c.data == load_config("vqvae_mnist", "captions,tiny").data
  stage = tiny_stage("vqvae_mnist", "captions,tiny")
  vq, vq_params = stage.trainer, stage.params
  trainer = make_ldm(c, stage)
  frozen = stages.frozen_params(trainer.stages)
  images = canvases(c, "test", 8)
  vectors = np.asarray(vq.encode_vectors(vq_params, jnp.asarray(images)))
  code_dim = load_config("vqvae_mnist", "captions,tiny").model.code_dim
  assert trainer.example_shape == vectors.shape[1:] == (8, 8, code_dim)  # f = 4
  train_vectors = np.asarray(vq.encode_vectors(
      vq_params, jnp.asarray(canvases(c, "train", c.latent.scale_examples))))
  assert trainer.scale_factor == pytest.approx(1 / train_vectors.std(), rel=1e-4)
  z = np.asarray(trainer.encode(frozen, jnp.asarray(images)))
  np.testing.assert_allclose(z, vectors * trainer.scale_factor, rtol=1e-4, atol=1e-5)
  codebook = np.asarray(vq_params["quantizer"]["codebook"])
  codes = ((vectors[..., None, :] - codebook) ** 2).sum(-1).argmin(-1)
  np.testing.assert_allclose(trainer.decode(frozen, jnp.asarray(z)),
                             vq.decode(vq_params, jnp.asarray(codes)), atol=1e-5)


def test_the_two_digit_variant_runs_over_a_stage_of_the_two_digit_canvases():
  c = load_config("ldm_mnist", "captions2,joint,tiny")  # the stage alone: no CLIP
  stage_data = load_config("autoencoder_kl_mnist", "captions2,tiny").data
  assert c.data == stage_data and c.data.name == "mnist5k_captions2"
  c.latent.scale_factor = 1.0
  stage = tiny_stage("autoencoder_kl_mnist", "captions2,tiny", shapes_only=True)
  trainer = make_ldm(c, stage)
  f = 2 ** (len(load_config("autoencoder_kl_mnist", "captions2,tiny").model.ch_mult) - 1)
  assert trainer.example_shape == (32 // f, 64 // f, 4)  # the 32 x 64 canvases' latents
  two, one = (data.get_dataset(d).tokenizer() for d in (stage_data, load_config(
      "ldm_mnist", "tiny").data))
  assert trainer.tokenizer == two != one  # the two-digit captions' words


def test_refusals(kl_stage):
  c = load_config("ldm_mnist", "superres,tiny")
  c.latent.shape = (4, 4, 4)
  with pytest.raises(errors.ConfigError, match=r"latent.shape=\(4, 4, 4\), but the "
                                               r"autoencoder stage .* \(16, 16, 4\)"):
    make_ldm(c, kl_stage)
  c = load_config("ldm_mnist", "superres,tiny")
  c.model.network = "mlp"
  with pytest.raises(errors.ConfigError, match="use network='unet'"):
    make_ldm(c, kl_stage)
  c = load_config("ldm_celebahq", "paper")
  c.latent.scale_factor = 0.0
  with pytest.raises(errors.ConfigError, match="no stage is named"):
    build.make_trainer(c)
