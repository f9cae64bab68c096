"""The command line end to end: train, eval, sample, summary, and its bad-input errors."""
import json
import os

from conftest import run_main


def test_one_step_tiny_training_leaves_checkpoint_metrics_and_samples(tmp_path):
  wd = str(tmp_path / "run")
  run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={wd}",
           "--config.train.num_steps=1")
  assert os.path.isdir(os.path.join(wd, "checkpoints", "1"))
  lines = open(os.path.join(wd, "metrics.jsonl")).read().splitlines()
  assert [json.loads(l)["step"] for l in lines] == [1]
  assert os.path.getsize(os.path.join(wd, "samples", "step_1.png")) > 0
  assert os.listdir(os.path.join(wd, "tensorboard"))
  config = json.load(open(os.path.join(wd, "config.json")))
  assert config["train"]["num_steps"] == 1  # the override is what was saved
  result = json.load(open(os.path.join(wd, "eval.json")))
  assert result["step"] == 1 and result["nll_iwae_nats"] > 0

  # Eval and sample modes read the latest checkpoint.
  os.remove(os.path.join(wd, "eval.json"))
  out = run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={wd}",
                 "--config.train.num_steps=1", "--mode=eval")
  assert json.loads(out.stdout.strip().splitlines()[-1])["step"] == 1
  assert os.path.exists(os.path.join(wd, "eval.json"))
  os.remove(os.path.join(wd, "samples", "step_1.png"))
  run_main("--config=configs/vae_mnist.py:tiny,latent2", f"--workdir={wd}x",
           "--config.train.num_steps=1")
  assert os.path.exists(os.path.join(wd + "x", "samples", "manifold_step_1.png"))


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
