"""Frozen stages end to end: a latent DDPM over a frozen tiny VAE refused when its
stage changes, weights files as stages, and clear errors for stages that cannot
serve (the latent diffusion's own record of its stage: test_ldm.py)."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from conftest import load_config, run_main
from jaxgen import build, errors
from jaxgen.weights import clip as clip_weights
from jaxgen import checkpoint, sharding, stages, train


@pytest.fixture(scope="module")
def vae_stage(tiny_runs):
  """The session's finished configs/vae_mnist.py:tiny run (read only: copy to change)."""
  return tiny_runs("vae_mnist")


def _latent(stage, **train_fields):
  c = load_config("ldm_vae_mnist", "tiny")
  c.stages.autoencoder = stage
  c.eval.metrics = ()
  c.train.update(sample_every=0, **train_fields)
  return c


def _restore(workdir, trainer, config, mesh):
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  try:
    return ckpt.restore(build.abstract_state(trainer, config, mesh))
  finally:
    ckpt.close()


def test_a_swapped_stage_is_refused_and_sample_mode_decodes(tmp_path, tiny_runs,
                                                            vae_stage):
  wd = str(tmp_path / "ldm")
  shutil.copytree(tiny_runs("ldm_vae_mnist"), wd)
  flags = ["--config=configs/ldm_vae_mnist.py:tiny", f"--workdir={wd}",
           f"--config.stages.autoencoder={vae_stage}", "--config.eval.metrics=()"]
  os.remove(os.path.join(wd, "samples", "step_4.png"))
  proc = run_main(*flags, "--mode=sample")
  assert "wrote pictures" in proc.stdout
  assert os.path.isfile(os.path.join(wd, "samples", "step_4.png"))

  # The stage's checkpoint swapped for one of another (differently seeded) VAE run.
  other = str(tmp_path / "other_vae")
  run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={other}",
           "--config.seed=1", "--config.train.sample_every=0", "--config.eval.metrics=()")
  stage = str(tmp_path / "vae")
  shutil.copytree(vae_stage, stage, ignore=shutil.ignore_patterns("checkpoints"))
  shutil.copytree(os.path.join(other, "checkpoints"), os.path.join(stage, "checkpoints"))
  flags[2] = f"--config.stages.autoencoder={stage}"
  config_before = open(os.path.join(wd, "config.json")).read()
  for mode in ("train", "eval", "sample"):
    proc = run_main(*flags, f"--mode={mode}", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: The autoencoder stage changed since"), last
    assert stage in last
  assert open(os.path.join(wd, "config.json")).read() == config_before


def test_a_stage_of_another_latent_size_is_named_as_a_changed_stage(tmp_path,
                                                                   tiny_runs,
                                                                   vae_stage):
  """Issue 15: a resume (train, eval) over a stage whose latent size changed names
  the changed stage, in one line with nothing after it, not a shape mismatch of the
  restore (the stage record is checked before the state is restored)."""
  wd = str(tmp_path / "ldm")
  shutil.copytree(tiny_runs("ldm_vae_mnist"), wd)
  stage = str(tmp_path / "vae8")
  v = load_config("vae_mnist", "tiny")
  v.model.latent_dim = 8
  v.train.sample_every = 0
  v.eval.metrics = ()
  train.train(v, stage)
  c = _latent(stage, num_steps=8)
  mesh = sharding.make_mesh()
  with pytest.raises(errors.StageError, match="The autoencoder stage changed since"):
    train.train(c, wd)
  with pytest.raises(errors.StageError, match="The autoencoder stage changed since"):
    train.restore_latest(build.make_trainer(c, mesh), c, wd, mesh)
  proc = run_main("--config=configs/ldm_vae_mnist.py:tiny", f"--workdir={wd}",
                  f"--config.stages.autoencoder={stage}", "--config.eval.metrics=()",
                  "--mode=eval", check=False)
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert lines[-1].startswith("error: The autoencoder stage changed since"), lines
  assert not any("Traceback" in l or "Exception ignored" in l for l in lines), lines


def test_stage_errors_name_the_problem(tmp_path, vae_stage):
  mesh = sharding.make_mesh()
  c = _latent("")
  with pytest.raises(errors.StageError, match=r"set --config.stages.autoencoder=WORKDIR "
                                              r"to a finished run of family autoencoder_kl or vae or vqvae "
                                              r"\(train it first\)"):
    build.make_trainer(c, mesh)
  with pytest.raises(errors.StageError, match="no such directory"):
    build.make_trainer(_latent(str(tmp_path / "missing")), mesh)
  os.makedirs(tmp_path / "empty")
  with pytest.raises(errors.StageError, match="not a jaxgen run"):
    build.make_trainer(_latent(str(tmp_path / "empty")), mesh)

  # An unfinished stage: its last checkpoint is before its num_steps.
  unfinished = str(tmp_path / "unfinished")
  shutil.copytree(vae_stage, unfinished)
  shutil.rmtree(os.path.join(unfinished, "checkpoints", "4"))
  with pytest.raises(errors.StageError, match=r"not a finished run \(checkpoint step 2 "
                                              r"of 4\): finish it first"):
    build.make_trainer(_latent(unfinished), mesh)

  # A GAN where an autoencoder is needed: refused from its config alone.
  gan = tmp_path / "gan"
  gan.mkdir()
  (gan / "config.json").write_text(
      load_config("gan_toy2d", "tiny").to_json_best_effort())
  with pytest.raises(errors.StageError, match="is a 'gan' run, but the autoencoder stage "
                                              "needs the VectorAutoencoder protocol \\(family "
                                              "autoencoder_kl or vae or vqvae\\)"):
    build.make_trainer(_latent(str(gan)), mesh)

  # Images preprocessed otherwise than the stage saw them.
  c = _latent(vae_stage)
  c.data.binarize = "threshold"
  with pytest.raises(ValueError, match="config.data.binarize='threshold', but the "
                                       "autoencoder stage"):
    build.make_trainer(c, mesh)

  # A family without stages refuses one.
  c = load_config("vae_mnist", "tiny")
  c.stages = {"autoencoder": vae_stage}
  with pytest.raises(errors.StageError, match="not a stage of family 'vae'"):
    build.make_trainer(c, mesh)


def test_a_hugging_face_clip_file_stands_in_as_a_conditioning_stage(tmp_path):
  """config.stages.clip may name CLIP's safetensors file: the stage's embeddings are
  the CLIP port's, normalised, and its digest is recorded like a run's."""
  import safetensors.numpy
  from conftest import load_module
  from jaxgen.models import clip
  from jaxgen.stages import Autoencoder, ConditioningEncoder
  fx = load_module("tests/fixtures/make_clip_fixture.py")
  d = fx.DIMS
  path = tmp_path / "model.safetensors"
  safetensors.numpy.save_file(fx.hf_state_dict(), str(path))
  (tmp_path / "config.json").write_text(json.dumps({
      "projection_dim": d["embed_dim"],
      "vision_config": {"image_size": d["image_size"], "patch_size": d["patch_size"],
                        "hidden_size": d["vision_width"],
                        "num_hidden_layers": d["vision_layers"],
                        "num_attention_heads": d["vision_heads"]},
      "text_config": {"max_position_embeddings": d["context_length"],
                      "vocab_size": d["vocab_size"], "hidden_size": d["text_width"],
                      "num_hidden_layers": d["text_layers"],
                      "num_attention_heads": d["text_heads"]}}))
  mesh = sharding.make_mesh()
  stage = build.load_stage("clip", str(path), mesh, ConditioningEncoder)
  config = clip.CLIPConfig(**d)
  variables = clip_weights.load_hf_checkpoint(path, config)
  assert stage.digest == stages.digest(variables)
  model = clip.CLIP(config)
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(3, 32, 32, 3)).astype(np.float32)
  tokens = rng.integers(0, d["vocab_size"], (3, 16)).astype(np.int32)
  pixels = (images - np.float32(clip.OPENAI_MEAN)) / np.float32(clip.OPENAI_STD)
  direct = np.asarray(model.apply(variables, pixels, method=clip.CLIP.encode_image))
  got = np.asarray(jax.jit(stage.trainer.embed_image)(stage.params, images))
  np.testing.assert_allclose(got, direct / np.linalg.norm(direct, axis=-1, keepdims=True),
                             atol=1e-5)
  direct = np.asarray(model.apply(variables, tokens, method=clip.CLIP.encode_text))
  got = np.asarray(jax.jit(stage.trainer.embed_text)(stage.params, tokens))
  np.testing.assert_allclose(got, direct / np.linalg.norm(direct, axis=-1, keepdims=True),
                             atol=1e-5)
  # The per-token states: the end-of-text one, projected, is the text embedding.
  states, mask = jax.jit(stage.trainer.text_states)(stage.params, tokens)
  end = np.argmax(tokens, axis=-1)
  assert states.shape == (3, 16, d["text_width"]) and mask.shape == (3, 16)
  np.testing.assert_array_equal(mask, np.arange(16)[None] <= end[:, None])
  projection = np.asarray(variables["params"]["text_projection"]["kernel"])
  np.testing.assert_allclose(np.asarray(states)[np.arange(3), end] @ projection, direct,
                             rtol=1e-5, atol=1e-5)
  # Grey images of another size are resized and cropped to CLIP's input.
  assert stage.trainer.embed_image(stage.params, images[:2, :, :24, :1]).shape == (2, 40)
  with pytest.raises(errors.StageError, match="no weights-file reader for the autoencoder "
                                              "stage takes this file; they take: "
                                              "openai_dvae"):
    build.load_stage("autoencoder", str(path), mesh, Autoencoder)


def test_openai_dvae_files_stand_in_as_an_autoencoder_stage(tmp_path):
  """config.stages.autoencoder may name OpenAI's encoder.pkl (decoder.pkl beside it):
  the stage, sized to the run's images, gives the reference's tokens and
  reconstructions (tests/fixtures/dvae_parity.npz, made by the dall_e package) and
  provides the Autoencoder protocol with its number of codes."""
  from jaxgen.stages import Autoencoder, ConditioningEncoder
  fixtures = os.path.join(os.path.dirname(__file__), "fixtures")
  for half in ("encoder", "decoder"):
    shutil.copy(os.path.join(fixtures, f"dvae_{half}_tiny.pkl"), tmp_path / f"{half}.pkl")
  mesh = sharding.make_mesh()
  spec = {"image": jax.ShapeDtypeStruct((32, 32, 3), np.float32)}
  stage = build.load_stage("autoencoder", str(tmp_path / "encoder.pkl"), mesh,
                           Autoencoder, spec)
  assert isinstance(stage.trainer, Autoencoder) and stage.step == 0
  assert stage.trainer.num_codes > 0 and stage.trainer.latent_spec.shape == (4, 4)
  ref = np.load(os.path.join(fixtures, "dvae_parity.npz"))
  codes = np.asarray(jax.jit(stage.trainer.encode)(stage.params, ref["images"]))
  np.testing.assert_array_equal(codes, ref["tokens"])
  np.testing.assert_allclose(jax.jit(stage.trainer.decode)(stage.params, ref["tokens"]),
                             ref["recon"], atol=1e-5)
  assert stage.digest == stages.digest(stage.params)
  with pytest.raises(errors.StageError, match="no weights-file reader for the clip stage "
                                              "takes this file; they take: hf_clip"):
    build.load_stage("clip", str(tmp_path / "encoder.pkl"), mesh, ConditioningEncoder)


def test_a_captioned_run_saves_its_tokenizer_and_its_stage_reads_it_back(tmp_path):
  """A run on captions keeps the caption tokenizer in its workdir; a later run that
  uses it as a stage gets the same token ids back (no dataset needed)."""
  from jaxgen import data
  from jaxgen.stages import Autoencoder
  c = load_config("vae_mnist", "tiny")
  c.data.name = "mnist5k_captions"
  c.train.update(num_steps=2, checkpoint_every=2, sample_every=0)
  c.eval.update(metrics=(), num_examples=8)
  wd = str(tmp_path / "vae_on_captions")
  train.train(c, wd)
  expected = data.get_dataset(c.data).tokenizer()
  assert os.path.isfile(os.path.join(wd, data.TOKENIZER_FILE))
  stage = build.load_stage("autoencoder", wd, sharding.make_mesh(), Autoencoder)
  assert stage.tokenizer.vocab == expected.vocab
  caption = data.get_dataset(c.data).captions("test")[0]
  np.testing.assert_array_equal(stage.tokenizer.encode(caption, 32),
                                expected.encode(caption, 32))
  assert data.load_tokenizer(str(tmp_path)) is None  # a folder without one
