"""The PixelCNN prior over VQ-VAE codes (family pixelcnn_prior), and completion of
image files through ``python -m jaxgen.families.pixelcnn.complete``'s function."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from jaxgen import build, data
from jaxgen.stages import Stage, StageError


def _stage(config_name, family_cls):
  """An (untrained) run of ``config_name`` as a Stage object, without a workdir."""
  config = load_config(config_name, "tiny")
  trainer = family_cls(config, data.example_spec(config.data))
  state = jax.jit(trainer.init_state)(jax.random.key(0))
  return Stage("autoencoder", f"/runs/{config_name}", trainer,
               trainer.stage_params(state), 4, "digest")


def test_prior_needs_a_vqvae_stage():
  from jaxgen.families.pixelcnn_prior.trainer import PixelCNNPriorTrainer
  from jaxgen.families.vae.trainer import VAETrainer
  config = load_config("pixelcnn_prior_mnist", "tiny")
  with pytest.raises(StageError, match="set --config.stages.autoencoder"):
    build.make_trainer(config)  # no stage named
  config.data.binarize = "dynamic"  # as configs/vae_mnist.py's run saw the images
  vae = _stage("vae_mnist", VAETrainer)
  with pytest.raises(StageError, match="not integer codes"):
    PixelCNNPriorTrainer(config, data.example_spec(config.data), {"autoencoder": vae})


def test_prior_trains_on_codes_and_samples_decode_through_the_stage():
  from jaxgen.families.pixelcnn_prior.trainer import PixelCNNPriorTrainer
  from jaxgen.families.vqvae.trainer import VQVAETrainer
  config = load_config("pixelcnn_prior_mnist", "tiny")
  vq = _stage("vqvae_mnist", VQVAETrainer)
  tr = PixelCNNPriorTrainer(config, data.example_spec(config.data), {"autoencoder": vq})
  k = vq.trainer.num_codes
  assert tr.levels == k and tr.shape == (*vq.trainer.latent_spec.shape, 1)
  assert tr.conditioning_keys == ("label",)
  frozen = {"autoencoder": vq.params}
  state = jax.jit(tr.init_state)(jax.random.key(1))
  x = jax.random.uniform(jax.random.key(2), (8, 28, 28, 1))
  batch = {"image": x, "label": jnp.arange(8) % 10}
  codes = jax.jit(tr.example_levels)(batch, frozen)
  np.testing.assert_array_equal(codes[..., 0],
                                jax.jit(vq.trainer.encode)(vq.params, x))
  new, metrics = jax.jit(tr.train_step)(state, batch, jax.random.key(3), frozen)
  # the NLL is that of the K-way categorical over the codes: about log K at init
  h, w = vq.trainer.latent_spec.shape
  assert abs(float(metrics["loss"]) - np.log(k)) < 0.5
  assert float(metrics["nll_nats"]) == pytest.approx(float(metrics["loss"]) * h * w,
                                                     rel=1e-5)

  def both(state, rng, labels, frozen):
    images = tr.generate(state, rng, 4, {"label": labels}, frozen)
    drawn = tr.sample_levels(state.ema_params, jax.random.split(rng)[1], 4, labels)
    return images, drawn, vq.trainer.decode(frozen["autoencoder"], drawn[..., 0])
  images, drawn, decoded = (np.asarray(a) for a in jax.jit(both)(
      new, jax.random.key(4), jnp.arange(4), frozen))
  assert images.shape == (4, 28, 28, 1) and 0 <= images.min() <= images.max() <= 1
  # samples are the stage's decodings of sampled codes
  assert drawn.min() >= 0 and drawn.max() < k
  np.testing.assert_allclose(images, np.clip(decoded, 0, 1), atol=1e-5)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  from jaxgen import train
  config = load_config("pixelcnn_mnist", "tiny")
  config.eval.metrics = ()
  workdir = str(tmp_path_factory.mktemp("pixelcnn_tiny"))
  train.train(config, workdir)
  return config, workdir


def test_complete_image_files(tiny_run, tmp_path):
  from PIL import Image

  from jaxgen.families.pixelcnn.complete import complete_files
  config, workdir = tiny_run
  paths = []
  for i in range(2):  # a 40x40 RGB file: converted to 28x28 grey and binarised
    a = np.zeros((40, 40, 3), np.uint8)
    a[5 + 10 * i:20 + 10 * i, 10:30] = 255
    paths.append(str(tmp_path / f"digit{i}.png"))
    Image.fromarray(a).save(paths[-1])
  out = complete_files(config, workdir, paths, mask="rows:10", num_completions=3,
                       out=str(tmp_path / "completion.png"))
  picture = np.asarray(Image.open(out))
  factor = picture.shape[0] // (2 * 29 + 1)  # save_png enlarges by an integer factor
  assert picture.shape[:2] == ((2 * 29 + 1) * factor, (5 * 29 + 1) * factor)
  with pytest.raises(ValueError, match="occludes nothing"):
    complete_files(config, workdir, paths, mask="rows:28", out=str(tmp_path / "x.png"))
  assert os.path.exists(out)
