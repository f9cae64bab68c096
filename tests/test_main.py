"""The command line end to end: train, eval, sample, summary, and its bad-input errors."""
import json
import os
import shutil

from conftest import load_config, run_main


def test_a_tiny_run_and_its_sample_mode(tiny_runs, tmp_path):
  """The run's files (more in test_conformance.py), the resolved config saved, and
  --mode=sample rewriting the pictures."""
  wd = str(tmp_path / "run")
  shutil.copytree(tiny_runs("vae_mnist"), wd)
  assert os.listdir(os.path.join(wd, "tensorboard"))
  config = json.load(open(os.path.join(wd, "config.json")))
  expected = load_config("vae_mnist", "tiny")
  expected.train.update(checkpoint_every=2, log_every=1)  # tiny_runs' overrides
  assert config == json.loads(expected.to_json_best_effort())
  assert json.load(open(os.path.join(wd, "eval.json")))["nll_iwae_nats"] > 0
  os.remove(os.path.join(wd, "samples", "step_4.png"))
  out = run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={wd}", "--mode=sample")
  assert "wrote pictures for step 4" in out.stdout
  assert os.path.getsize(os.path.join(wd, "samples", "step_4.png")) > 0
  # Orbax's INFO lines (about 30 per restore) only when asked for (issue 31).
  info = lambda err: [l for l in err.splitlines() if l[:1] == "I" and l[1:5].isdigit()]
  assert not info(out.stderr), out.stderr
  asked = run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={wd}",
                   "--mode=sample", "--verbosity=0")
  assert any("checkpoint" in l for l in info(asked.stderr)), asked.stderr
  latent2 = tiny_runs("vae_mnist", "tiny,latent2")
  assert os.path.exists(os.path.join(latent2, "samples", "manifold_step_4.png"))


def test_summary_of_the_paper_vae_counts_815824():
  out = run_main("--config=configs/vae_mnist.py:paper", "--mode=summary")
  counts = json.loads(out.stdout.strip().splitlines()[-1])
  assert counts == {"encoder": 412_540, "decoder": 403_284}
  assert sum(counts.values()) == 815_824  # shared/REFERENCE.md


def test_unknown_override_key_is_an_error_before_any_work(tmp_path):
  wd = tmp_path / "run"
  out = run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={wd}",
                 "--config.train.num_stepz=3", check=False)
  assert out.returncode != 0
  assert "num_stepz" in out.stderr
  assert not wd.exists()


def test_override_of_wrong_type_is_an_error(tmp_path):
  out = run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={tmp_path}/r",
                 "--config.train.num_steps=many", check=False)
  assert out.returncode != 0 and "num_steps" in out.stderr


def test_unknown_dataset_lists_the_available_ones(tmp_path):
  out = run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={tmp_path}/r",
                 "--config.data.name=not_a_dataset", check=False)
  assert out.returncode != 0
  assert "Unknown dataset 'not_a_dataset'" in out.stderr
  assert "mnist5k" in out.stderr and "cifar10" in out.stderr


def test_eval_without_checkpoint_says_train_first(tmp_path):
  out = run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={tmp_path}/r",
                 "--mode=eval", check=False)
  assert out.returncode != 0 and "train first" in out.stderr


def test_a_missing_config_file_or_variant_is_one_error_line(tmp_path):
  for config, message in (
      ("configs/nope.py", "error: --config=configs/nope.py: the config file cannot be "
                          "read ([Errno 2] No such file or directory"),
      ("configs/vae_mnist.py:nope", "error: configs/vae_mnist.py: ValueError: Unknown "
                                    "variant(s) ['nope'] of vae_mnist; use latent2")):
    out = run_main(f"--config={config}", f"--workdir={tmp_path}/r", check=False)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), out.stderr
    assert not (tmp_path / "r").exists()
