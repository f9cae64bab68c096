"""The loop's config fields are checked before any work: one clear line per bad field,
nothing written; 0 for an "every" field means only at the end."""
import json
import os

import pytest

from conftest import fake_devices, load_config, run_main
from jaxgen import build, errors, loop_config

FIELDS = ([("train", n, c) for n, (c, _) in loop_config.TRAIN.items()] +
          [("eval", n, c) for n, (c, _) in loop_config.EVAL.items()] +
          [("eval", n, c) for n, (c, _) in loop_config.SAMPLE_METRICS.items()])


def _bad_values(checker):
  minimum = 1 if checker is loop_config.POSITIVE else 0
  return [minimum - 1, -5, 2.5, "8", True, None]


@pytest.mark.parametrize("section,name,checker", FIELDS)
def test_every_loop_field_with_a_bad_value_is_one_clear_line(section, name, checker):
  assert loop_config.check(load_config("vae_mnist", "tiny")) is None
  for value in _bad_values(checker):
    c = load_config("vae_mnist", "tiny")
    with c[section].ignore_type():
      c[section][name] = value
    with pytest.raises(errors.ConfigError) as e:
      loop_config.check(c)
    message = str(e.value)
    assert f"config.{section}.{name}" in message and "\n" not in message, message
  c = load_config("vae_mnist", "tiny")
  del c[section][name]
  with pytest.raises(errors.ConfigError, match=rf"config.{section}.{name} is "
                                                    rf"missing .*set it in the config"):
    loop_config.check(c)


def test_the_other_loop_fields_are_checked_too():
  c = load_config("vae_mnist", "tiny")
  c.eval.metrics = ("fid", "precision")
  with pytest.raises(errors.ConfigError, match=r"unknown \['precision'\]"):
    loop_config.check(c)
  c = load_config("vae_mnist", "tiny")
  c.eval.split = ""
  with pytest.raises(errors.ConfigError, match="config.eval.split must name"):
    loop_config.check(c)
  c = load_config("gan_toy2d", "tiny")  # no sample metrics: their fields are not needed
  assert "num_samples" not in c.eval and loop_config.check(c) is None
  c.train.batch_size, c.train.num_steps = 0, -1
  with pytest.raises(errors.ConfigError, match=r"^2 bad config fields: "
                                                    r"config.train.batch_size must be "
                                                    r"at least 1, got 0"):
    loop_config.check(c)


@pytest.mark.parametrize("flags,devices,match", [
    (["--config.train.batch_size=0"], 1, "config.train.batch_size must be at least 1"),
    (["--config.train.num_steps=0"], 1, "config.train.num_steps must be at least 1"),
    (["--config.train.checkpoint_every=-1"], 1, "config.train.checkpoint_every must be "
                                                "at least 0"),
    (["--config.eval.batch_size=6"], 4, r"config.eval.batch_size=6 is not divisible by "
                                        r"the number of devices \(4\)"),
])
def test_a_bad_field_stops_main_before_any_work(tmp_path, flags, devices, match):
  import re
  wd = tmp_path / "run"
  env = fake_devices(devices)
  out = run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={wd}", *flags,
                 env=env, check=False, timeout=120)
  assert out.returncode == 2, out.stderr[-2000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and re.search(match, last), last
  assert not wd.exists()  # nothing read, compiled or written


def test_every_zero_means_only_at_the_end(tmp_path):
  wd = tmp_path / "run"
  run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={wd}",
           "--config.train.log_every=0", "--config.train.checkpoint_every=0",
           "--config.train.sample_every=0", "--config.eval.metrics=()")
  assert sorted(os.listdir(wd / "checkpoints")) == ["4"]
  steps = [json.loads(line)["step"] for line in open(wd / "metrics.jsonl")]
  assert steps == [4]
  pictures = os.listdir(wd / "samples")
  assert "step_4.png" in pictures and all(p.endswith("step_4.png") for p in pictures)


def test_a_field_a_family_reads_but_the_config_lacks_is_a_clear_error():
  """Trainers supply no defaults of their own: a missing field is named."""
  c = load_config("vae_mnist", "tiny")
  del c.model["kl_warmup_steps"]
  with pytest.raises(errors.ConfigError, match=r"config.family='vae' reads the "
                                                    r"field .*kl_warmup_steps.*add it "
                                                    r"to the config file"):
    build.make_trainer(c)
