"""Every refusal of ``python -m jaxgen.main`` is one ``error:`` line with exit status 2,
names the field, and leaves no workdir behind (issue 31). The families' config checks
run in this process through ``jaxgen.main``'s own flag parsing and ``main`` (a
subprocess per case would cost seconds of imports each); one case runs as a real
command."""
import contextlib
import io
import json
import os
import shutil
import sys

import pytest

from conftest import load_config, run_main

# (config, overrides, what the error line must name). A staged config's stages are the
# shared tiny runs of its STAGE_CONFIGS.
CASES = [
    ("vae_mnist", ["--config.model.likelihood=bogus"], "config.model.likelihood"),
    ("vae_mnist", ["--config.model.arch=bogus"], "config.model.arch"),
    ("vae_mnist", ["--config.optim.name=sgd"], "config.optim.name"),
    ("vae_mnist", ["--config.family=bogus"], "config.family"),
    ("vqvae_mnist", ["--config.model.num_codes=0"], "config.model.num_codes"),
    ("vqvae_mnist", ["--config.model.code_dim=0"], "config.model.code_dim"),
    ("vqvae_mnist", ["--config.model.ema_decay=1.5"], "config.model.ema_decay"),
    ("dvae_mnist", ["--config.model.logit_laplace_eps=0.7"],
     "config.model.logit_laplace_eps"),
    ("dvae_mnist", ["--config.model.n_hid=30"], "config.model.n_hid"),
    ("pixelcnn_mnist", ["--config.model.arch=bogus"], "config.model.arch"),
    ("pixelcnn_mnist", ["--config.model.arch=pixelcnnpp"], "config.model.arch"),
    ("pixelcnn_mnist", ["--config.model.likelihood=categorical"],
     "config.model.likelihood"),
    ("pixelcnn_prior_mnist", ["--config.model.likelihood=bernoulli"],
     "config.model.likelihood"),
    ("gan_mnist", ["--config.gan.loss=bogus"], "config.gan.loss"),
    ("gan_mnist", ["--config.gan.d_steps=0"], "config.gan.d_steps"),
    ("gan_mnist", ["--config.model.arch=bogus"], "config.model.arch"),
    ("pix2pix_mnist", ["--config.pix2pix.test_mode=bogus"], "config.pix2pix.test_mode"),
    ("pix2pix_mnist", ["--config.data.name=mnist5k"], "config.data.name"),  # unpaired
    ("cyclegan_mnist", ["--config.cyclegan.pool_size=-1"], "config.cyclegan.pool_size"),
    ("cyclegan_mnist", ["--config.model.norm=batch"], "config.model.norm"),
    ("stylegan2_mnist", ["--config.model.resolution=8"], "config.model.resolution"),
    ("stylegan2_mnist", ["--config.model.resolution=48"], "config.model.resolution"),
    ("stylegan2_mnist", ["--config.stylegan2.augment_p=1.5"], "config.stylegan2.augment_p"),
    ("stylegan2_mnist", ["--config.stylegan2.ada_target=-0.1"],
     "config.stylegan2.ada_target"),
    ("stylegan2_mnist", ["--config.model.truncation_psi=2.0"],
     "config.model.truncation_psi"),
    ("ddpm_mnist", ["--config.diffusion.schedule=bogus"], "config.diffusion.schedule"),
    ("ddpm_mnist", ["--config.diffusion.parameterization=bogus"],
     "config.diffusion.parameterization"),
    ("ddpm_mnist", ["--config.data.scale=unit"], "config.data.scale"),
    ("autoencoder_kl_mnist", ["--config.loss.disc_loss=bogus"], "config.loss.disc_loss"),
    ("autoencoder_kl_mnist", ["--config.model.resolution=16"], "config.model.resolution"),
    ("clip_mnist", ["--config.model.short_caption_rate=2.0"],
     "config.model.short_caption_rate"),
    ("ldm_vae_mnist", ["--config.diffusion.variance=bogus"], "config.diffusion.variance"),
    ("ldm_vae_mnist", ["--config.model.network=unet"], "config.model.network"),
    ("dalle_mnist", ["--config.model.attention=bogus"], "config.model.attention"),
    ("dalle_mnist", ["--config.model.heads=3"], "config.model.heads"),
]


def run_main_in_process(*args):
  """``python -m jaxgen.main ARGS`` in this process: (exit status, stderr)."""
  from absl import flags
  from jaxgen import main
  for name in [n for n in flags.FLAGS if n.startswith("config.")]:
    delattr(flags.FLAGS, name)  # the overrides the previous call registered
  flags.FLAGS.unparse_flags()
  argv, err, code = ["jaxgen.main", *map(str, args)], io.StringIO(), 0
  saved = sys.argv
  sys.argv = argv  # ml_collections reads the overrides from sys.argv
  try:
    with contextlib.redirect_stderr(err):
      main.main(main.parse_flags(argv))
  except SystemExit as e:
    code = e.code
  finally:
    sys.argv = saved
  return code, err.getvalue()


def assert_one_error_line(code, stderr, field):
  lines = [l for l in stderr.splitlines() if l.strip()]
  assert code == 2, stderr
  assert len(lines) == 1 and lines[0].startswith("error: "), stderr
  assert field in lines[0], stderr


@pytest.mark.parametrize("name, overrides, field", CASES,
                         ids=[f"{n}:{o[0].split('.', 1)[1]}" for n, o, _ in CASES])
def test_a_bad_config_value_is_one_error_line_and_leaves_no_workdir(
    tiny_runs, tmp_path, name, overrides, field):
  stage_flags = [f for f in tiny_runs.flags(name)[1:] if f.startswith("--config.stages")]
  workdir = tmp_path / "run"
  code, stderr = run_main_in_process(f"--config=configs/{name}.py:tiny",
                                     f"--workdir={workdir}", *stage_flags, *overrides)
  assert_one_error_line(code, stderr, field)
  assert not workdir.exists(), os.listdir(workdir)


def test_a_refusal_as_a_real_command(tmp_path):
  workdir = tmp_path / "run"
  out = run_main("--config=configs/pixelcnn_mnist.py:tiny", f"--workdir={workdir}",
                 "--config.model.arch=pixelcnnpp", check=False)
  assert_one_error_line(out.returncode, out.stderr, "config.model.arch")
  assert not workdir.exists()


def test_eval_or_sample_without_a_checkpoint_is_one_error_line(tmp_path):
  for mode in ("eval", "sample"):
    code, stderr = run_main_in_process("--config=configs/vae_mnist.py:tiny",
                                       f"--workdir={tmp_path}", f"--mode={mode}")
    assert_one_error_line(code, stderr, "train first")


def test_eval_and_sample_check_their_destination_before_the_work(tiny_runs, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(tiny_runs("vae_mnist"), workdir, ignore=shutil.ignore_patterns(".lock"))
  (workdir / "eval.json").unlink()
  (workdir / "eval.json").mkdir()  # where eval.json goes cannot be written
  code, stderr = run_main_in_process("--config=configs/vae_mnist.py:tiny",
                                     f"--workdir={workdir}", "--mode=eval")
  assert_one_error_line(code, stderr, "eval.json is a folder")
  shutil.rmtree(workdir / "samples")
  (workdir / "samples").write_text("")  # nor the pictures
  code, stderr = run_main_in_process("--config=configs/vae_mnist.py:tiny",
                                     f"--workdir={workdir}", "--mode=sample")
  assert_one_error_line(code, stderr, "samples is a file")


def test_json_results_are_written_through_a_temporary_of_their_own(tmp_path):
  from jaxgen import train
  path = tmp_path / "eval.json"
  (tmp_path / "eval.json.tmp").mkdir()  # another eval's temporary, by the old name
  train.write_json(str(path), {"step": 3})
  assert json.loads(path.read_text()) == {"step": 3}
  assert sorted(os.listdir(tmp_path)) == ["eval.json", "eval.json.tmp"]


def test_a_stage_with_a_truncated_config_is_one_error_line(tiny_runs, tmp_path):
  stage = tmp_path / "stage"
  shutil.copytree(tiny_runs("vae_mnist"), stage, ignore=shutil.ignore_patterns(".lock"))
  text = (stage / "config.json").read_text()
  (stage / "config.json").write_text(text[:len(text) // 2])
  code, stderr = run_main_in_process("--config=configs/ldm_vae_mnist.py:tiny",
                                     f"--workdir={tmp_path / 'run'}",
                                     f"--config.stages.autoencoder={stage}")
  assert_one_error_line(code, stderr, str(stage / "config.json"))
  assert not (tmp_path / "run").exists()


def test_complete_refuses_bad_arguments_before_the_work(tiny_runs, tmp_path):
  from jaxgen.errors import UserError
  from jaxgen.families.pixelcnn.complete import complete_files
  workdir = tiny_runs("pixelcnn_mnist")
  config = load_config("pixelcnn_mnist", "tiny")
  image = tmp_path / "a.png"
  from PIL import Image
  Image.new("L", (28, 28), 200).save(image)
  for kwargs, message in (
      (dict(num_completions=-2), "--num_completions=-2"),
      (dict(labels=["3"]), "this model is unconditional"),
      (dict(out=str(tmp_path)), "is a folder"),
      (dict(out=str(tmp_path / "c.xyz")), "names no image format")):
    with pytest.raises(UserError, match=message):
      complete_files(config, workdir, [str(image)], mask="top_half", **kwargs)
  assert sorted(os.listdir(tmp_path)) == ["a.png"]  # nothing was written
  out = complete_files(config, workdir, [str(image)], mask="top_half", num_completions=1,
                       out=str(tmp_path / "c.jpg"))
  assert Image.open(out).format == "JPEG"  # the format the extension names


def test_completion_labels_are_checked():
  from jaxgen.errors import ConfigError
  from jaxgen.families.pixelcnn.complete import check_labels
  assert check_labels([], 2, 0) is None
  assert check_labels(["1", "9"], 2, 10).tolist() == [1, 9]
  for labels, classes, message in ((["1"], 0, "unconditional"), (["99"], 10, r"\[0, 10\)"),
                                   (["-1"], 10, r"\[0, 10\)"), (["x"], 10, r"\[0, 10\)"),
                                   (["1", "2"], 10, "one label per image")):
    with pytest.raises(ConfigError, match=message):
      check_labels(labels, 1, classes)
