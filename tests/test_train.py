"""The generic loop: exact resumption, pre-emption, the non-finite guard, bad checkpoints."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, load_config, run_main
from jaxgen import build, errors
from jaxgen import checkpoint, train
from jaxgen.families.vae.trainer import VAETrainer


def _params(state):
  return jax.tree.map(np.asarray, jax.device_get(state.params))


def _assert_bitwise_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(x, y)


def test_resume_restores_the_data_position(tmp_path, tiny_vae):
  """Without the data position, a resumed run would replay the first batches."""
  c = tiny_vae
  c.train.update(num_steps=4, checkpoint_every=2, sample_every=0)
  wd = str(tmp_path / "run")
  train.train(c, wd)
  ckpt = checkpoint.Checkpointer(os.path.join(wd, "checkpoints"))
  trainer = build.make_trainer(c)
  _, meta = ckpt.restore(build.abstract_state(trainer, c, train.sharding.make_mesh()),
                         step=2)
  ckpt.close()
  assert meta == {"step": 2, "data_position": 2, "batch_size": 8, "seed": 0,
                  "stages": {}, "prng_impl": "threefry2x32", "family": {}}


def test_a_finished_run_loads_read_only_as_a_frozen_stage(tmp_path, tiny_vae):
  from jaxgen import stages
  c = tiny_vae
  c.train.update(num_steps=2, sample_every=0)
  wd = str(tmp_path / "run")
  final = train.train(c, wd)
  before = sorted(os.listdir(wd)), os.path.getmtime(os.path.join(wd, "config.json"))
  stage = build.load_stage("autoencoder", wd, train.sharding.make_mesh())
  assert stage.step == 2 and stage.trainer.config.family == "vae"
  _assert_bitwise_equal(_params(final), jax.tree.map(np.asarray, stage.params))
  assert stage.digest == stages.digest(final.ema_params)
  assert (sorted(os.listdir(wd)), os.path.getmtime(os.path.join(wd, "config.json"))
          ) == before  # read only
  with pytest.raises(errors.StageError, match="no such directory"):
    build.load_stage("autoencoder", str(tmp_path / "nothing"), train.sharding.make_mesh())


class _NaNAtStep3(VAETrainer):
  """The VAE whose third batch is poisoned with NaN."""

  def train_step(self, state, batch, rng, frozen=None):
    poison = jnp.where(state.step == 2, jnp.nan, 0.0)
    return super().train_step(state, {**batch, "image": batch["image"] + poison}, rng)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_vae):
  c = tiny_vae
  c.train.update(num_steps=8, checkpoint_every=2, log_every=4, sample_every=0)
  wd = str(tmp_path / "run")
  trainer = _NaNAtStep3(c, train.data.example_spec(c.data))
  with pytest.raises(train.NonFiniteError, match="at step 3") as e:
    train.train(c, wd, trainer=trainer)
  assert "last good checkpoint (step 2)" in str(e.value)
  ckpt = checkpoint.Checkpointer(os.path.join(wd, "checkpoints"))
  assert ckpt.all_steps() == [2]
  state, _ = ckpt.restore(build.abstract_state(trainer, c, train.sharding.make_mesh()))
  ckpt.close()
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))


def _corrupt(step_dir):
  n = 0
  for root, _, files in os.walk(os.path.join(step_dir, "state")):
    for f in files:
      if "manifest" in f or f in ("_METADATA",):
        with open(os.path.join(root, f), "wb") as fh:
          fh.write(b"garbage")
        n += 1
  assert n


def test_corrupt_checkpoint_is_a_clear_error_and_is_not_deleted(tmp_path, tiny_vae):
  c = tiny_vae
  c.train.update(num_steps=4, checkpoint_every=2, sample_every=0)
  wd = str(tmp_path / "run")
  train.train(c, wd)
  _corrupt(os.path.join(wd, "checkpoints", "4"))
  c.train.num_steps = 6
  with pytest.raises(checkpoint.CheckpointError) as e:
    train.train(c, wd)
  msg = str(e.value)
  assert "step 4" in msg and "corrupt" in msg and "resume from step 2" in msg
  assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["2", "4"]


def test_a_full_disk_says_so_and_a_killed_saves_temporaries_are_cleaned(
    tmp_path, tiny_vae, monkeypatch):
  """Issue 15: "No space left on device" was buried under orbax's "Event loop is
  closed", and partial ``N.orbax-checkpoint-tmp-*`` directories stayed behind."""
  import errno
  c = tiny_vae
  c.train.update(num_steps=4, checkpoint_every=2, sample_every=0)
  wd = str(tmp_path / "run")
  ckpts = os.path.join(wd, "checkpoints")
  real_save = checkpoint.ocp.CheckpointManager.save

  def full_disk(manager, step, *args, **kwargs):
    if step != 4:
      return real_save(manager, step, *args, **kwargs)
    os.makedirs(os.path.join(ckpts, "4.orbax-checkpoint-tmp-1764662400000000", "state"))
    try:  # as orbax reports a failed write from its threads
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as e:
      raise RuntimeError("Event loop is closed") from e

  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "save", full_disk)
  with pytest.raises(checkpoint.CheckpointError) as e:
    train.train(c, wd)
  msg = str(e.value)
  assert "No space left on device" in msg and "step 4" in msg, msg
  assert "resume from step 2" in msg, msg
  assert sorted(os.listdir(ckpts)) == ["2"]  # the partial directory went, step 2 stayed
  monkeypatch.undo()

  # A save killed outright leaves its temporary; the next run of the workdir removes
  # it and resumes from the last finished checkpoint.
  stale = os.path.join(ckpts, "4.orbax-checkpoint-tmp-1764662400000001")
  os.makedirs(os.path.join(stale, "state"))
  train.train(c, wd)
  assert sorted(os.listdir(ckpts)) == ["2", "4"]


def test_checkpoint_of_another_config_is_a_clear_error(tmp_path, tiny_vae):
  c = tiny_vae
  c.train.update(num_steps=2, sample_every=0)
  wd = str(tmp_path / "run")
  train.train(c, wd)
  c.model.latent_dim = 7
  c.train.num_steps = 4
  with pytest.raises(checkpoint.CheckpointError, match="different config"):
    train.train(c, wd)


def test_a_workdir_of_another_family_is_named_not_called_corrupt(tmp_path, tiny_vae):
  """Issue 31 §2: a config of another family on a workdir was reported as a corrupt
  checkpoint, with the advice to move it away (hiding a good checkpoint)."""
  c = tiny_vae
  c.train.update(num_steps=2, sample_every=0)
  c.eval.metrics = ()
  wd = str(tmp_path / "run")
  train.train(c, wd)
  other = load_config("vqvae_mnist", "tiny")
  other.train.update(num_steps=4, sample_every=0)
  mesh = train.sharding.make_mesh()
  trainer = build.make_trainer(other, mesh)
  with pytest.raises(errors.ConfigError, match="config.family='vae'") as e:
    train.train(other, wd)
  assert "move" not in str(e.value)
  with pytest.raises(errors.ConfigError, match="config.family='vae'"):
    train.restore_latest(trainer, other, wd, mesh)  # --mode=eval and sample
  os.remove(os.path.join(wd, "config.json"))  # no record: the arrays tell
  with pytest.raises(checkpoint.CheckpointError, match="written for a different "
                                                       "config") as e:
    train.restore_latest(trainer, other, wd, mesh)
  assert "move" not in str(e.value) and "corrupt" not in str(e.value)


def test_an_eval_reads_the_newest_checkpoint_when_rotation_removes_its_pick(
    tmp_path, tiny_vae, monkeypatch):
  """Issue 31 §2: with checkpoint_every=1, 2 of 4 evals beside a training run read a
  step that keep-3 rotation had just deleted, and were told it was corrupt. Now the
  newest checkpoint is read once more; a second removal is named as such."""
  c = tiny_vae
  c.train.update(num_steps=4, checkpoint_every=1, keep_checkpoints=3, sample_every=0)
  c.eval.metrics = ()
  wd = str(tmp_path / "run")
  train.train(c, wd)
  mesh = train.sharding.make_mesh()
  trainer = build.make_trainer(c, mesh)
  real = checkpoint.Checkpointer.restore_meta
  removals = []

  def rotated_out(self, step=None, rounds=1):
    if len(removals) < rounds:  # a training run rotates it out as it is read
      step = self.latest_step() if step is None else step
      removals.append(step)
      import shutil
      shutil.rmtree(self.step_dir(step))
    return real(self, step)

  monkeypatch.setattr(checkpoint.Checkpointer, "restore_meta", rotated_out)
  _, meta = train.restore_latest(trainer, c, wd, mesh)
  assert removals == [4] and meta["step"] == 3
  monkeypatch.setattr(checkpoint.Checkpointer, "restore_meta",
                      lambda self, step=None: rotated_out(self, step, rounds=3))
  with pytest.raises(checkpoint.CheckpointError, match="was deleted while it was "
                                                       "read") as e:
    train.restore_latest(trainer, c, wd, mesh)
  assert removals == [4, 3, 2] and "move" not in str(e.value)


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes(tmp_path):
  wd = str(tmp_path / "run")
  args = [sys.executable, "-m", "jaxgen.main", "--config=configs/vae_mnist.py:tiny",
          f"--workdir={wd}", "--config.train.num_steps=100000",
          "--config.train.log_every=1", "--config.train.checkpoint_every=100000",
          "--config.train.sample_every=0"]
  proc = subprocess.Popen(args, cwd=REPO, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  metrics = os.path.join(wd, "metrics.jsonl")
  deadline = time.time() + 300
  while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
    assert proc.poll() is None and time.time() < deadline, "training did not start"
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  assert "SIGTERM received: saved checkpoint at step" in err
  steps = checkpoint.Checkpointer(os.path.join(wd, "checkpoints")).all_steps()
  assert len(steps) == 1 and 0 < steps[0] < 100000


def test_a_rejected_resume_keeps_config_json_and_a_changed_batch_is_refused(tmp_path,
                                                                           tiny_vae):
  """Issue 15: config.json is written only once the config fits the checkpoints, and a
  resume with another batch size or seed is refused (the data position counts
  batches of the old size)."""
  c = tiny_vae
  c.train.update(num_steps=2, sample_every=0)
  c.eval.metrics = ()
  wd = str(tmp_path / "run")
  train.train(c, wd)
  record = open(os.path.join(wd, "config.json")).read()
  changed = load_config("vae_mnist", "tiny")
  changed.model.hidden = (16, 16)
  changed.train.update(num_steps=4, sample_every=0)
  with pytest.raises(checkpoint.CheckpointError):
    train.train(changed, wd)
  assert open(os.path.join(wd, "config.json")).read() == record
  for field, value in (("batch_size", 16), ("seed", 3)):
    other = load_config("vae_mnist", "tiny")
    other.train.update(num_steps=4, sample_every=0)
    if field == "seed":
      other.seed = value
    else:
      other.train.batch_size = value
    name = "train.batch_size" if field == "batch_size" else "seed"
    with pytest.raises(ValueError, match=rf"trained with {name}=\S+, this config has "
                                         rf"{value}"):
      train.train(other, wd)
    assert open(os.path.join(wd, "config.json")).read() == record


def test_a_second_run_in_a_locked_workdir_is_refused_at_once(tmp_path):
  """Issue 15: while one process trains in a workdir, another is refused with the
  holder's PID, and nothing of the first run is touched."""
  import subprocess
  import sys
  import time
  wd = str(tmp_path / "run")
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from jaxgen.workdir_lock import "
       "WorkdirLock; l = WorkdirLock(sys.argv[1]); l.acquire(); print('held', "
       "flush=True); time.sleep(60)", wd], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    start = time.time()
    proc = run_main("--config=configs/vae_mnist.py:tiny", f"--workdir={wd}",
                    check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"PID {holder.pid}" in proc.stderr.strip().splitlines()[-1]
    assert not os.path.exists(os.path.join(wd, "config.json"))
    assert time.time() - start < 60
  finally:
    holder.kill()
    holder.wait()


def test_a_second_signal_during_a_save_stops_after_the_save_completes(tmp_path,
                                                                    tiny_vae):
  """Issue 15: a second Ctrl-C while a checkpoint is written does not cut the write
  short (orbax's threads would report 'cannot schedule new futures after shutdown'
  and leave a partial directory): the save completes, then the run stops."""
  c = tiny_vae
  c.train.update(num_steps=100, checkpoint_every=3, log_every=1, sample_every=0)
  c.eval.metrics = ()
  wd = str(tmp_path / "run")
  real_save = checkpoint.Checkpointer.save

  def save_interrupted_twice(self, step, state, meta):
    os.kill(os.getpid(), signal.SIGINT)  # the first: stop after this step
    os.kill(os.getpid(), signal.SIGINT)  # the second, during the write
    time.sleep(0.1)  # the handlers have run by now
    real_save(self, step, state, meta)

  checkpoint.Checkpointer.save = save_interrupted_twice
  try:
    with pytest.raises(KeyboardInterrupt):
      train.train(c, wd)
  finally:
    checkpoint.Checkpointer.save = real_save
  ckpt_dir = os.path.join(wd, "checkpoints")
  assert sorted(os.listdir(ckpt_dir)) == ["3"]  # complete, no temporaries
  ckpt = checkpoint.Checkpointer(ckpt_dir, read_only=True)
  try:
    assert ckpt.restore_meta()["data_position"] == 3
  finally:
    ckpt.close()
  c.train.num_steps = 4
  train.train(c, wd)  # and the rerun resumes from it
  last = json.loads(open(os.path.join(wd, "metrics.jsonl")).readlines()[-1])
  assert last["step"] == 4 and 0 <= last["input_wait"] <= 1  # the loop's input wait


def test_a_stop_between_log_steps_logs_the_steps_since_the_last_line(tmp_path, tiny_vae,
                                                                    monkeypatch):
  """Issue 31 §5: a SIGTERM after step 6 of a run that logs every 4 steps writes a
  line at step 6, the mean of steps 5 and 6, as the checkpoint is saved; without it
  those steps were in no line, and the resumed run's line at step 8 averaged 2 steps
  as if they were 4."""
  from jaxgen import prefetch
  c = tiny_vae
  c.train.update(num_steps=100, checkpoint_every=50, log_every=4, sample_every=0)
  c.eval.metrics = ()
  wd = str(tmp_path / "run")
  real_next, calls = prefetch.Prefetcher.__next__, []

  def next_then_stop(self):
    calls.append(1)
    if len(calls) == 6:
      os.kill(os.getpid(), signal.SIGTERM)
    return real_next(self)

  monkeypatch.setattr(prefetch.Prefetcher, "__next__", next_then_stop)
  train.train(c, wd)
  lines = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl"))]
  assert [l["step"] for l in lines] == [4, 6]
  assert checkpoint.Checkpointer(os.path.join(wd, "checkpoints")).all_steps() == [6]


def test_the_prefetcher_keeps_order_raises_where_the_error_is_and_stops():
  from jaxgen import prefetch

  def batches():
    for i in range(5):
      if i == 3:
        raise OSError("bad record 3")
      yield i

  placed = []
  p = prefetch.Prefetcher(batches(), lambda b: placed.append(b) or 10 * b, depth=2)
  assert [next(p), next(p), next(p)] == [0, 10, 20]
  with pytest.raises(OSError, match="bad record 3"):
    next(p)
  assert placed == [0, 1, 2] and p.wait_seconds >= 0

  slow = prefetch.Prefetcher(iter(lambda: time.sleep(0.05) or 1, None), lambda b: b,
                             depth=1)
  for _ in range(4):
    next(slow)
  assert slow.wait_seconds > 0.1  # waited for each slow batch
  slow.close()
  assert not slow._thread.is_alive()
  with pytest.raises(StopIteration):
    next(slow)


def test_the_ema_warmup_is_compvis_litema():
  """LitEma (CompVis ldm/modules/ema.py): decay = min(decay, (1 + n) / (10 + n)) with n
  the number of updates so far; without ema_warmup the decay is constant."""
  import ml_collections
  from jaxgen.families.base import ema_decay_at
  optim = ml_collections.ConfigDict(dict(ema_decay=0.9999, ema_warmup=True))
  for n, want in ((0, 0.1), (90, 0.91), (10**6, 0.9999)):
    assert float(ema_decay_at(optim, n)) == pytest.approx(want, rel=1e-6)
  optim.ema_warmup = False
  assert ema_decay_at(optim, 0) == 0.9999
