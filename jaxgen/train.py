"""The one training loop: data -> jit-compiled step -> metrics, samples, checkpoints.

It knows no model family. A family's ``Trainer`` (jaxgen/families/<name>/trainer.py) supplies the
initial state, the train and eval steps and the pictures; this module compiles the
steps once over the device mesh (batch sharded, state replicated and donated, the
frozen stages' parameters replicated as their own argument), derives per-step
randomness with ``fold_in(key, step)``, and handles the workdir lock, logging,
checkpointing, automatic resumption, pre-emption (SIGTERM/SIGINT) and the non-finite
guard.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxgen import (build, checkpoint, data, errors, evaluators, loop_config, precision,
                    prefetch, sharding, stages, viz)
from jaxgen.workdir_lock import WorkdirLock

DISPATCH_AHEAD = 2  # train steps the host may dispatch beyond the last finished one
PREFETCH = 2  # batches loaded and placed on the devices ahead of the step

log = logging.getLogger("jaxgen")


class NonFiniteError(FloatingPointError):
  """The loss or a gradient became NaN or infinite."""


def frozen(trainer) -> dict:
  """The frozen stages' parameters: the ``frozen`` argument of the compiled steps."""
  return stages.frozen_params(trainer.stages)


def _is_writer():
  return jax.process_index() == 0


def write_json(path, obj):
  """Write JSON atomically (a crash never leaves a half-written file)."""
  if not _is_writer():
    return
  # A name of its own: two evals of one workdir each write their own temporary.
  fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".",
                             suffix=".tmp", dir=os.path.dirname(path) or ".")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(obj, f, indent=2, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


class MetricWriter:
  """Appends to ``metrics.jsonl`` and writes TensorBoard events under ``tensorboard/``."""

  def __init__(self, workdir, resume_step: int):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = _is_writer()
    if not self.enabled:
      return
    if os.path.exists(self.path):  # forget lines from after the restored checkpoint
      with open(self.path) as f:
        keep = [l for l in f if _json_line_step(l) <= resume_step]
      with open(self.path, "w") as f:
        f.writelines(keep)
    from tensorboardX import SummaryWriter
    self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, metrics: dict):
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": step, **metrics}) + "\n")
    for k, v in metrics.items():
      self.tb.add_scalar(k, v, step)
    self.tb.flush()

  def close(self):
    if self.enabled:
      self.tb.close()


class _StopRequest:
  """Turns SIGTERM/SIGINT into a flag the loop checks after each step. A second
  signal stops at once (KeyboardInterrupt), except while a checkpoint is being
  written: then the stop comes right after the write, so no save is left half done."""

  def __init__(self):
    self.signal = None
    self._old = {}
    self._saving = self._stop_after_save = False

  def __enter__(self):
    import threading
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    if self.signal is None:
      self.signal = signal.Signals(signum).name
      return
    if not self._saving:  # a second signal: stop now
      raise KeyboardInterrupt
    if not self._stop_after_save:  # os.write: no locks taken inside a handler
      os.write(2, b"Stopping as soon as the checkpoint being written is complete.\n")
    self._stop_after_save = True

  @contextlib.contextmanager
  def saving(self):
    """A checkpoint write, which a second signal does not cut short."""
    self._saving = True
    try:
      yield
    finally:
      self._saving = False
    if self._stop_after_save:
      raise KeyboardInterrupt

  def __exit__(self, *exc):
    for sig, handler in self._old.items():
      signal.signal(sig, handler)


def restore_latest(trainer, config, workdir, mesh):
  """(state, meta) from the newest checkpoint in ``workdir`` when it is read; an
  error if none. A training run in the same workdir may rotate that checkpoint out
  while it is read (``checkpoint.CheckpointRemoved``): the newest one is then read,
  once more."""
  directory = os.path.join(workdir, "checkpoints")
  missing = checkpoint.CheckpointError(
      f"No checkpoint in {directory}: train first with python -m jaxgen.main "
      f"--config=... --workdir={workdir}")
  if not os.path.isdir(directory):
    raise missing
  check_same_family(config, workdir)
  abstract = None
  ckpt = checkpoint.Checkpointer(directory, read_only=True)
  try:
    for retry in (False, True):
      ckpt.reload()
      step = ckpt.latest_step()
      if step is None:
        raise missing
      try:
        # The stages first: a changed stage is named as such, not as a shape mismatch.
        meta = ckpt.restore_meta(step)
        stages.check_record(trainer.stages, meta.get("stages"), workdir,
                            trainer.sampling_stages)
        _check_family_record(meta, trainer, workdir)
        abstract = abstract or build.abstract_state(trainer, config, mesh)
        return ckpt.restore(abstract, step)
      except checkpoint.CheckpointRemoved:
        if retry:
          raise
        log.info("Checkpoint %d in %s was rotated out while read; reading the newest.",
                 step, directory)
  finally:
    ckpt.close()


def check_same_family(config, workdir):
  """Refuse a config of another family than the run in ``workdir`` (its
  ``config.json``): its checkpoints are good, for that family, and must not be taken
  for corrupt ones."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      family = json.load(f).get("family")
  except (OSError, ValueError, AttributeError):  # no record: the checkpoint's checks
    return
  if family and family != config.family:
    raise errors.ConfigError(
        f"{workdir} holds a run of config.family={family!r} (its config.json), and "
        f"this config is of family {config.family!r}: its checkpoints are good, for "
        f"that family. Use the config it was trained with, or another --workdir.")


def evaluate(trainer, state, config, mesh) -> dict:
  """The family's eval step over the eval split, finalised, and the sample metrics
  that ``config.eval.metrics`` lists; ``split`` names the split."""
  split, bs = config.eval.split, config.eval.batch_size
  sharding.check_batch_size(bs, mesh, "eval.batch_size")
  source = data.get_source(config.data, split)
  repl, batch_sh = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  step = jax.jit(trainer.eval_step, in_shardings=(repl, batch_sh, repl, repl),
                 out_shardings=repl)
  params = frozen(trainer)
  key, totals = build.run_keys(config)["eval"], None
  batches = data.eval_batches(source, config.data, bs, config.seed,
                              config.eval.num_examples or None)
  n = min(len(source), config.eval.num_examples or len(source))
  for i, batch in enumerate(tqdm(batches, desc=f"eval ({split})",
                                 total=math.ceil(n / bs), leave=False)):
    sums = step(state, sharding.put_batch(batch, mesh), jax.random.fold_in(key, i),
                params)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    jax.block_until_ready(totals)  # an honest progress bar; bounded host memory
  result = trainer.finalize_eval(jax.device_get(totals))
  # Sample-based metrics (FID, IS, class accuracy, ...) that config.eval.metrics lists.
  samples_key = jax.random.split(key)[1]  # apart from the per-batch fold_in(key, i)
  return {"split": split, **result,
          **evaluators.compute(trainer, state, config, mesh, samples_key),
          **trainer.family_metrics(state, mesh, samples_key)}


def save_pictures(trainer, state, config, workdir, step: int):
  """The family's pictures for ``step``: samples/step_N.png and samples/NAME_step_N.png.
  Every process computes them (the compiled programs span all devices); process 0
  writes them."""
  source = data.get_source(config.data, config.eval.split)
  batch = data.spread_batch(source, config.data, 16, config.seed)
  rng = jax.random.fold_in(build.run_keys(config)["sample"], step)
  pictures = trainer.visualize(state, rng, batch, frozen(trainer))
  if not _is_writer():
    return
  for name, image in pictures.items():
    fname = f"step_{step}.png" if name == "samples" else f"{name}_step_{step}.png"
    viz.save_png(image, os.path.join(workdir, "samples", fname))


def train(config, workdir: str, trainer=None, mesh=None):
  """Train ``config`` in ``workdir``, resuming from its latest checkpoint if any.

  Returns the final state. Raises NonFiniteError if the loss or a gradient stops
  being finite; checkpoints written before that step are left untouched. The
  workdir is locked for the run: a second run in it is refused at once. The loop's
  config fields, the family's (its trainer is built) and the stages are checked before
  anything is written; a run refused later (``errors.UserError``) before its first
  checkpoint removes the workdir if it created it.
  """
  mesh = mesh or sharding.make_mesh()
  loop_config.check(config, mesh)
  created = not os.path.exists(workdir)
  try:
    with precision.matmul_context(precision.resolve(config)):  # every program traced
      trainer = trainer or build.make_trainer(config, mesh)
      sharding.check_batch_size(config.train.batch_size, mesh)
      with WorkdirLock(workdir, enabled=_is_writer()):
        return _train(config, workdir, trainer, mesh)
  except errors.UserError:
    if created and _is_writer():
      _remove_unstarted(workdir)
    raise


def _remove_unstarted(workdir):
  """Remove the workdir of a refused run that saved no checkpoint (what it holds is
  the lock file, and at most the run's config and empty logs)."""
  directory = os.path.join(workdir, "checkpoints")
  if os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory)):
    return
  shutil.rmtree(workdir, ignore_errors=True)


def _train(config, workdir, trainer, mesh):
  os.makedirs(workdir, exist_ok=True)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                 keep=config.train.keep_checkpoints)
  try:
    state, step, stopped = _loop(config, workdir, trainer, mesh, ckpt)
  finally:
    ckpt.close()
  eval_path = os.path.join(workdir, "eval.json")
  if not stopped and _json_step(eval_path) != step:  # evaluate each finished run once
    write_json(eval_path, {"step": step, **evaluate(trainer, state, config, mesh)})
  return state


def _loop(config, workdir, trainer, mesh, ckpt):
  """Steps from the latest checkpoint (or the start) to ``train.num_steps``:
  (state, last step, whether a signal stopped it)."""
  tc = config.train
  keys = build.run_keys(config)
  repl, batch_sh = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  run = {"batch_size": tc.batch_size, "seed": config.seed,
         "prng_impl": trainer.policy.prng_impl,
         "stages": stages.record(trainer.stages, trainer.sampling_stages),
         "family": trainer.record()}
  if ckpt.latest_step() is not None:
    # The record first: another family, a changed batch size, seed or stage is named
    # as such, and nothing is restored (or compiled) for a resume that is refused.
    check_same_family(config, workdir)
    _check_resume(ckpt.restore_meta(), run, trainer, workdir)
    state, meta = ckpt.restore(build.abstract_state(trainer, config, mesh))
    log.info("Resumed from step %d in %s", meta["step"], workdir)
  else:
    state = jax.jit(trainer.init_state, out_shardings=repl)(keys["init"])
    meta = {"step": 0, "data_position": 0}
  # Only now is the config known to fit the workdir's checkpoints.
  write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
  if _is_writer():
    data.save_tokenizer(config.data, workdir)
  start = int(meta["step"])
  loader = data.Loader(data.get_source(config.data, "train"), config.data,
                       tc.batch_size, config.seed, position=meta["data_position"],
                       workers=config.data.get("workers", 0))
  params = frozen(trainer)

  def step_fn(state, batch, params):
    return trainer.train_step(state, batch, jax.random.fold_in(keys["step"], state.step),
                              params)

  # A low-precision policy's sums accumulate in float32; float32 compiles step_fn.
  train_step = jax.jit(trainer.policy.accumulate(step_fn),
                       in_shardings=(repl, batch_sh, repl),
                       out_shardings=(repl, repl), donate_argnums=0)
  writer = MetricWriter(workdir, start)
  pending: list[tuple[int, dict]] = []  # device metrics not yet fetched

  def check():
    """Fetch the pending metrics and stop if any is not finite."""
    fetched = jax.device_get([m for _, m in pending])
    for (s, _), m in zip(pending, fetched):
      bad = [k for k, v in m.items() if not np.all(np.isfinite(v))]
      if bad:
        last = ckpt.latest_step()
        raise NonFiniteError(
            f"Non-finite {', '.join(bad)} at step {s} (loss={m.get('loss')}). "
            f"Training stopped; the last good checkpoint (step "
            f"{last if last is not None else 'none'}) is intact. Lower the learning "
            f"rate(s) in config.optim, enable gradient clipping (grad_clip_norm), or "
            f"check the data.")
    return fetched

  def flush() -> dict:
    """Check the pending metrics and return their means, emptying the buffer."""
    fetched = check()
    pending.clear()
    return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}

  def save(step):
    check()  # never checkpoint a state that went non-finite
    # Batch i is a function of (seed, i): the position is that of the steps taken,
    # however far the prefetcher has read ahead.
    with stop.saving():
      ckpt.save(step, state, {"step": step, "data_position": start_position + step
                              - start, **run})

  start_position = loader.position
  batches = prefetch.Prefetcher(loader, lambda b: sharding.put_batch(b, mesh),
                                depth=PREFETCH)
  bar = tqdm(total=tc.num_steps, initial=start, desc="train", dynamic_ncols=True,
             disable=not _is_writer())
  timer = {"t": time.perf_counter(), "step": start, "wait": 0.0}

  def log_line(step):
    """One metrics line: the means of the steps since the last line."""
    means = flush()
    bar.update(step - bar.n)
    now = time.perf_counter()
    seconds = max(now - timer["t"], 1e-9)
    means["steps_per_sec"] = (step - timer["step"]) / seconds
    # The share of the interval's wall time the loop waited for its input.
    means["input_wait"] = (batches.wait_seconds - timer["wait"]) / seconds
    timer.update(t=now, step=step, wait=batches.wait_seconds)
    writer.write(step, means)
    bar.set_postfix(loss=f"{means['loss']:.4g}", steps_s=f"{means['steps_per_sec']:.3g}")

  step = start
  try:
    with _StopRequest() as stop:
      while step < tc.num_steps:
        state, metrics = train_step(state, next(batches), params)
        step += 1
        pending.append((step, metrics))
        # The bar and steps/s count finished steps: the host runs at most
        # DISPATCH_AHEAD steps ahead of the device (asynchronous dispatch would
        # otherwise race ahead and stall at every log step), without a sync per step.
        if len(pending) > DISPATCH_AHEAD:
          jax.block_until_ready(pending[-DISPATCH_AHEAD - 1][1])
          bar.update(pending[-DISPATCH_AHEAD - 1][0] - bar.n)
        last = step == tc.num_steps
        if (tc.log_every and step % tc.log_every == 0) or last:
          log_line(step)
        if stop.signal:
          if pending and tc.log_every:  # stopped between log steps: log the steps
            log_line(step)              # since the last line, or they are lost
          save(step)
          log.warning("%s received: saved checkpoint at step %d in %s; rerun the "
                      "same command to resume.", stop.signal, step, workdir)
          return state, step, True
        if (tc.checkpoint_every and step % tc.checkpoint_every == 0) or last:
          save(step)
        if (tc.sample_every and step % tc.sample_every == 0) or last:
          check()
          save_pictures(trainer, state, config, workdir, step)
  finally:
    batches.close()
    loader.close()  # stops the data-loader worker processes
    bar.close()
    writer.close()
  return state, step, False


def _check_resume(meta, run, trainer, workdir):
  """Refuse a resume whose batch size, seed, random-number implementation or stages
  differ from the checkpoint's: the stored data position counts batches of the old
  size, the random streams come from the old seed and implementation, and the model
  was trained on the old stages."""
  meta = {"prng_impl": "threefry2x32", **meta}  # checkpoints from before the field
  for key in ("batch_size", "seed", "prng_impl"):
    if key in meta and meta[key] != run[key]:
      field = {"batch_size": "train.batch_size", "seed": "seed",
               "prng_impl": "compute.prng_impl"}[key]
      raise errors.ConfigError(
          f"The checkpoints in {workdir} were trained with {field}={meta[key]}, this "
          f"config has {run[key]}: resuming would reread the data and the random "
          f"streams differently. Use --config.{field}={meta[key]}, or another --workdir.")
  stages.check_record(trainer.stages, meta.get("stages"), workdir,
                      trainer.sampling_stages)
  _check_family_record(meta, trainer, workdir)


def _check_family_record(meta, trainer, workdir):
  """Refuse checkpoints whose family record (``Trainer.record``: values fixed when the
  run started, such as a latent scale factor) differs from this run's."""
  recorded, now = meta.get("family") or {}, trainer.record()
  for key in sorted(recorded.keys() & now.keys()):
    if recorded[key] != now[key]:
      raise errors.ConfigError(
          f"The checkpoints in {workdir} were trained with {key}={recorded[key]!r}, "
          f"this run has {now[key]!r}: the model would see its inputs scaled "
          f"otherwise. Use --config.{key}={recorded[key]!r} (or the data and stages "
          f"the run was trained on), or another --workdir.")


def _json_line_step(line) -> float:
  try:
    return json.loads(line)["step"]
  except (ValueError, KeyError, TypeError):  # a line cut short by a crash
    return math.inf


def _json_step(path):
  try:
    with open(path) as f:
      return json.load(f).get("step")
  except (OSError, ValueError):
    return None
