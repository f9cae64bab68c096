"""The conformance checks every family passes, as functions of a finished tiny run:
tests/test_conformance.py runs them for each family of jaxgen/families/, and
tests/test_throwaway_family.py for a family that lives outside jaxgen."""
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, check_resume, fake_devices, metric_lines, run_main


def finite_numbers(result: dict, where: str):
  numbers = {k: v for k, v in result.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
  assert numbers, f"{where} has no numbers: {result}"
  bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
  assert not bad, f"{where} has non-finite {bad}"
  return numbers


def check_run(workdir: str, config, family: str):
  """Training through ``python -m jaxgen.main`` left a run: the last checkpoint,
  finite metric lines with a loss, a sample PNG, config.json and eval.json."""
  num_steps = int(config.train.num_steps)
  assert num_steps >= 2, "a tiny config must train at least 2 steps (to resume)"
  assert os.path.isdir(os.path.join(workdir, "checkpoints", str(num_steps)))
  lines = metric_lines(workdir)
  assert lines and lines[-1]["step"] == num_steps
  for line in lines:
    finite_numbers(line, f"metrics.jsonl step {line['step']}")
    assert "loss" in line
  pictures = os.listdir(os.path.join(workdir, "samples"))
  assert f"step_{num_steps}.png" in pictures, pictures
  saved = json.load(open(os.path.join(workdir, "config.json")))
  assert saved["family"] == family and saved["train"]["num_steps"] == num_steps
  result = json.load(open(os.path.join(workdir, "eval.json")))
  assert result["step"] == num_steps
  finite_numbers(result, "eval.json")


def check_resume_from_the_middle(straight: str, flags: list, config, workdir: str,
                                 env=None):
  check_resume(straight, flags, int(config.train.num_steps), workdir, env=env)


def check_eval_mode(straight: str, flags: list, workdir: str, env=None):
  """``--mode=eval`` on a copy of the run writes finite numbers, the same as the
  training run's final evaluation, and prints them."""
  shutil.copytree(straight, workdir, ignore=shutil.ignore_patterns(".lock"))
  from_training = json.load(open(os.path.join(workdir, "eval.json")))
  os.remove(os.path.join(workdir, "eval.json"))
  out = run_main(flags[0], f"--workdir={workdir}", *flags[1:], "--mode=eval", env=env)
  result = json.load(open(os.path.join(workdir, "eval.json")))
  assert json.loads(out.stdout.strip().splitlines()[-1]) == result
  numbers = finite_numbers(result, "eval.json of --mode=eval")
  expected = finite_numbers(from_training, "eval.json of training")
  assert numbers.keys() == expected.keys()
  for key, value in numbers.items():
    assert value == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key


def check_summary(config, capsys):
  """What --mode=summary prints (jaxgen.main.summary, in this process) ends with the
  parameter counts as JSON, after their total."""
  from jaxgen import main as cli
  counts = cli.summary(config)
  out = capsys.readouterr().out.strip().splitlines()
  assert json.loads(out[-1]) == counts
  assert counts and all(isinstance(n, int) and n > 0 for n in counts.values()), counts
  assert out[-2].split()[0] == "total"
  assert int(out[-2].split()[1].replace(",", "")) == sum(counts.values())


DEVICES = textwrap.dedent("""
    import json, os, sys
    import jax, numpy as np
    assert jax.device_count() == 4, jax.devices()
    from jaxgen import build, checkpoint, data, evaluators, sharding, stages
    workdir, half = sys.argv[1], int(sys.argv[2])
    c = stages.run_config(workdir)  # the tiny run's config, with its stages
    bs = c.train.batch_size
    assert bs % 4 == 0, f"tiny train.batch_size={bs} must divide over 4 devices"
    loader = data.Loader(data.get_source(c.data, "train"), c.data, bs, c.seed)
    keys = build.run_keys(c)
    mesh = sharding.make_mesh()
    trainer = build.make_trainer(c, mesh)
    repl, bsh = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    frozen = stages.frozen_params(trainer.stages)
    state = jax.jit(trainer.init_state, out_shardings=repl)(keys["init"])
    step = jax.jit(lambda s, b, f: trainer.train_step(
                       s, b, jax.random.fold_in(keys["step"], s.step), f),
                   in_shardings=(repl, bsh, repl), out_shardings=(repl, repl),
                   donate_argnums=0)
    init = jax.device_get(state.params)
    steps = []
    for _ in range(half):
      put = sharding.put_batch(next(loader), mesh)
      assert all(len(v.sharding.device_set) == 4 for v in put.values())
      state, metrics = step(state, put, frozen)
      steps.append(jax.device_get(metrics))
    # The run trained the same steps on 1 device (tiny_runs logs every step); its
    # metrics and its checkpoint at ``half``:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      logged = {json.loads(l)["step"]: json.loads(l) for l in f}
    for i, m in enumerate(steps, 1):
      for key, value in m.items():
        np.testing.assert_allclose(float(value), logged[i][key], rtol=2e-4, atol=1e-6,
                                   err_msg=f"{key} at step {i}")
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
    one, _ = ckpt.restore(build.abstract_state(trainer, c, mesh), step=half)
    ckpt.close()
    one, four = jax.device_get((one, state))
    # Non-gradient state (BatchNorm statistics, codebooks, image pools, ...) agrees.
    for a, b in zip(jax.tree.leaves(one.extra), jax.tree.leaves(four.extra)):
      np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(a, np.float64),
                                 rtol=1e-3, atol=1e-5)
    # The parameter updates point the same way. Not equal within a tolerance: a
    # parameter whose gradient is zero in exact arithmetic (a bias before a
    # normalisation, as CycleGAN's and the MLP GAN's) moves by rounding noise that
    # Adam scales up to the learning rate, and Adam's update ignores the gradient's
    # scale anyway; the step metrics above (losses, gradient norms) catch scale errors.
    flat = lambda t: np.concatenate([np.ravel(np.asarray(x, np.float64))
                                     for x in jax.tree.leaves(t)] or [np.zeros(1)])
    d1 = flat(one.params) - flat(init)
    d4 = flat(four.params) - flat(init)
    cosine = float(d1 @ d4 / max(np.linalg.norm(d1) * np.linalg.norm(d4), 1e-30))
    print("cosine of the 1- and 4-device parameter updates:", cosine)
    assert cosine > 0.99, cosine
    try:
      sharding.check_batch_size(bs + 2, mesh)
      raise SystemExit(f"no error for a batch of {bs + 2} on 4 devices")
    except ValueError as e:
      assert "not divisible by the number of devices (4)" in str(e), e

    if not getattr(trainer, "generates", True):
      # A family that generates nothing (CLIP: generates = False) is checked for its
      # stage embeddings instead: 4 eval examples sharded over the mesh embed as on
      # one device, finite and of unit norm.
      ex = data.spread_batch(data.get_source(c.data, c.eval.split), c.data, 4, c.seed)
      put = sharding.put_batch({k: ex[k] for k in ("image", "text")}, mesh)
      one = jax.devices()[0]
      single = jax.device_put(jax.device_get(state.params), one)
      for fn, key in ((trainer.embed_image, "image"), (trainer.embed_text, "text")):
        e4 = np.asarray(jax.jit(fn)(state.params, put[key]))
        e1 = np.asarray(jax.jit(fn)(single, jax.device_put(ex[key], one)))
        assert e4.shape[0] == 4 and np.all(np.isfinite(e4)), e4.shape
        np.testing.assert_allclose(np.linalg.norm(e4, axis=-1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(e4, e1, rtol=1e-4, atol=1e-5)
      print("OK embeddings", e4.shape)
      sys.exit(0)

    # generate: images in [0, 1] of the data's shape, for the conditioning it takes.
    spec = data.example_spec(c.data)
    images = {k: tuple(v.shape) for k, v in spec.items() if len(v.shape) == 3}
    num = 4
    inputs = None
    if trainer.conditioning_keys:
      examples = evaluators.conditioning(trainer, c, num, ())(0, num)
      inputs = {k: sharding.put_batch({k: examples[k]}, mesh)[k]
                for k in trainer.conditioning_keys}
    x = jax.jit(trainer.generate, static_argnums=2)(state, jax.random.key(3), num,
                                                    inputs, frozen)
    x = np.asarray(x)
    assert np.all(np.isfinite(x))
    if images:
      assert x.shape[0] == num and x.shape[1:] in images.values(), (x.shape, images)
      assert 0.0 <= x.min() <= x.max() <= 1.0, (x.min(), x.max())
    else:  # points (toy 2-D data)
      assert x.shape == (num, *spec["x"].shape), x.shape
    print("OK", trainer.conditioning_keys, x.shape)
""")


def check_four_devices(workdir: str, config, env=None):
  """The first half of the finished run ``workdir`` (1 device), trained again on 4
  fake CPU devices from the same data and random streams, reaches the same state; a
  batch that does not divide over the devices is refused; ``generate`` returns
  images in [0, 1] of the data's shape."""
  half = max(1, int(config.train.num_steps) // 2)
  env = {**os.environ, **(env or {}), **fake_devices(4)}
  out = subprocess.run([sys.executable, "-c", DEVICES, workdir, str(half)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-4000:]
  assert out.stdout.strip().splitlines()[-1].startswith("OK"), out.stdout
