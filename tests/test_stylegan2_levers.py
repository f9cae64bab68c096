"""The levers of the StyleGAN2 ablation (issue 29): R2 against closed forms on a
hand-made discriminator and in the compiled step, the digit-safe augmentation read by
the MNIST classifier and checked for mirrors and turns, a fixed p, the channel plan
of a wider network, ``:auto`` against the reference's train.py, the refusals, and
experiments/stylegan2_ablation.py's bookkeeping."""
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, load_module
from jaxgen import build, data
from jaxgen.errors import ConfigError
from jaxgen.families.stylegan2 import augment as aug


class QuadraticD(nn.Module):
  """D(x) = <a, x> + k |x|^2 / 2 per image, so grad_x D(x) = a + k x."""

  @nn.compact
  def __call__(self, x, c=None):
    a = self.param("a", nn.initializers.normal(1.0), x.shape[1:])
    k = self.param("k", nn.initializers.constant(0.7), ())
    return (jnp.sum(a * x, axis=(1, 2, 3)) + 0.5 * k * jnp.sum(x * x, axis=(1, 2, 3)))


def test_gradient_penalties_against_closed_forms():
  """R2 = (r2_gamma / 2) mean_n |a + k x_n|^2 on the images given, and its gradient
  in D's parameters (a double backward pass) against d/da = r2_gamma mean (a + k x),
  d/dk = r2_gamma mean <a + k x, x>; R1 the same with r1_gamma."""
  c = load_config("stylegan2_mnist", "tiny")
  c.stylegan2.update(augment="", r1_gamma=0.3, r2_gamma=3.0)
  tr = build.make_trainer(c)
  tr.discriminator = QuadraticD()
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
  dp = tr.discriminator.init(jax.random.key(1), x)["params"]
  a, k = np.asarray(dp["a"], np.float64), float(dp["k"])
  xs = np.asarray(x, np.float64)
  g = a + k * xs  # grad_x D per image
  want = np.mean(np.sum(g ** 2, axis=(1, 2, 3)))
  key = jax.random.key(2)
  (loss, penalty), grads = jax.value_and_grad(tr.d_r2_loss, has_aux=True)(
      dp, x, None, 0.0, key)
  np.testing.assert_allclose(float(penalty), want, rtol=1e-5)
  np.testing.assert_allclose(float(loss), 1.5 * want, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grads["a"]), 3.0 * g.mean(0), rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(float(grads["k"]),
                             3.0 * np.mean(np.sum(g * xs, axis=(1, 2, 3))), rtol=1e-5)
  (loss, (penalty, logits)), grads = jax.value_and_grad(tr.d_r1_loss, has_aux=True)(
      dp, x, None, 0.0, key)
  np.testing.assert_allclose(float(loss), 0.15 * want, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(logits), np.sum(a * xs, axis=(1, 2, 3)) +
                             0.5 * k * np.sum(xs ** 2, axis=(1, 2, 3)), rtol=1e-5)
  np.testing.assert_allclose(float(grads["k"]),
                             0.3 * np.mean(np.sum(g * xs, axis=(1, 2, 3))), rtol=1e-5)


def _tiny_8x8(**stylegan2):
  """The tiny config at 8x8 with ADA's cheapest pipeline (compile time)."""
  c = load_config("stylegan2_mnist", "tiny")
  c.data.resize = (8, 8)
  c.model.resolution = 8
  c.stylegan2.update(augment="color", **stylegan2)
  return c


def test_r2_runs_on_dmain_fakes_with_r1_in_one_lazy_step_at_a_fixed_p():
  """Four compiled steps with R1 and R2 every 2 steps and p fixed at 0.25: both
  penalties on steps 0 and 2 only, one Adam step of D for both (4 + 2), R2 on exactly
  the fakes Dmain saw that step (not the reals), p never moves."""
  c = _tiny_8x8(r2_gamma=1.0, augment_p=0.25, ada_target=0.0)
  tr = build.make_trainer(c)
  seen = {"dmain": [], "r2": []}
  d_main, d_r2 = tr.d_main_loss, tr.d_r2_loss

  def record(name, *arrays):
    jax.debug.callback(lambda *v: seen[name].append([np.asarray(a) for a in v]),
                       *arrays)

  def spy_main(dp, fake, c, real, c_real, p, key):
    record("dmain", fake, real)
    return d_main(dp, fake, c, real, c_real, p, key)

  def spy_r2(dp, fake, c, p, key):
    record("r2", fake)
    return d_r2(dp, fake, c, p, key)

  tr.d_main_loss, tr.d_r2_loss = spy_main, spy_r2
  state = jax.jit(tr.init_state)(jax.random.key(0))
  loader = data.Loader(data.get_source(c.data, "train"), c.data, 8, 0)
  step = jax.jit(tr.train_step)
  metrics = []
  for i in range(4):
    state, m = step(state, next(loader), jax.random.key(i))
    metrics.append(jax.device_get(m))
  jax.effects_barrier()
  for name in ("r1_penalty", "r2_penalty"):
    assert [bool(m[name] > 0) for m in metrics] == [True, False, True, False], name
  counts = [int(jax.tree.leaves(state.opt_state[p])[0]) for p in
            ("generator", "discriminator")]
  assert counts == [6, 6]
  assert [float(m["ada_p"]) for m in metrics] == [0.25] * 4
  assert len(seen["dmain"]) == 4 and len(seen["r2"]) == 2
  for (r2_fake,), (fake, real) in zip(seen["r2"], [seen["dmain"][0], seen["dmain"][2]]):
    np.testing.assert_array_equal(r2_fake, fake)
    assert np.abs(r2_fake - real).max() > 0.1


@pytest.mark.parametrize("r1_gamma,r2_gamma,traced", [
    (0.0, 1.0, {"r2"}), (0.0, 0.0, set())])
def test_the_regularisation_phase_follows_the_gammas(r1_gamma, r2_gamma, traced):
  """Traced, not compiled: R2 alone still runs the regularisation phase (and no R1);
  both off, none."""
  c = _tiny_8x8(r1_gamma=r1_gamma, r2_gamma=r2_gamma)
  tr = build.make_trainer(c)
  calls = set()
  d_r1, d_r2 = tr.d_r1_loss, tr.d_r2_loss
  tr.d_r1_loss = lambda *a: calls.add("r1") or d_r1(*a)
  tr.d_r2_loss = lambda *a: calls.add("r2") or d_r2(*a)
  state = jax.eval_shape(tr.init_state, jax.random.key(0))
  batch = next(data.Loader(data.get_source(c.data, "train"), c.data, 8, 0))
  _, metrics = jax.eval_shape(tr.train_step, state, batch, jax.random.key(1))
  assert calls == traced
  assert {"r1_penalty", "r2_penalty"} <= set(metrics)


# --- the digit-safe augmentation ---------------------------------------------------
@pytest.fixture(scope="module")
def test_digits():
  """300 MNIST-5k test digits as the model sees them (32x32 in [-1, 1], black
  padding), and their labels."""
  cfg = load_config("stylegan2_mnist", "tiny").data
  split = data.get_source(cfg, "test")[np.arange(300)]
  x = split["image"].astype(np.float32) / 127.5 - 1
  return np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1), split["label"]


def test_digits_preset_keeps_digits_readable_where_bgc_does_not(test_digits):
  """At p = 1 (every transformation on every image), the shipped MNIST classifier
  reads the ``digits`` preset's images as their digit within 3 points of the
  un-augmented ones (measured: 0.957 against 0.967); ``bgc``'s flips, quarter turns
  and luma flips leave it near chance (measured: 0.137)."""
  from jaxgen.metrics import features
  images, labels = test_digits
  net = features.get("mnist_classifier")
  accuracy = lambda x: float(np.mean(
      net(np.clip((x + 1) / 2, 0, 1), progress=False)["logits"].argmax(-1) == labels))
  clean = accuracy(images)
  got = {name: accuracy(np.asarray(jax.jit(aug.pipeline(name))(
      jnp.asarray(images), 1.0, jax.random.key(1)))) for name in ("digits", "bgc")}
  assert clean > 0.95, clean
  assert got["digits"] >= clean - 0.03, (clean, got)
  assert got["bgc"] < 0.5, (clean, got)


def _dihedral(img):
  """The 8 images of the square's symmetries of ``img``; the first is ``img``."""
  out = []
  for k in range(4):
    r = np.rot90(img, k)
    out += [r, r[:, ::-1]]
  return out


def _aligned_correlation(images, target, shift=5):
  """For each of ``images`` [N, H, W], the largest correlation with ``target`` moved
  by up to ``shift`` pixels (cyclically) in each direction."""
  span = range(-shift, shift + 1)
  moved = np.stack([np.roll(target, (dy, dx), (0, 1)).ravel()
                    for dy in span for dx in span])
  norm = lambda a: (a - a.mean(-1, keepdims=True)) / a.std(-1, keepdims=True)
  flat = images.reshape(len(images), -1)
  return (norm(flat) @ norm(moved).T / flat.shape[1]).max(axis=1)


def test_digits_preset_never_mirrors_or_turns():
  """An image without symmetry (an F and a dot), augmented 64 times at p = 1: each
  result correlates better with the original (aligned up to 5 px) than with any of
  its mirrors and turns, and positively (no luma flip). The ``blit`` preset (x-flips,
  quarter turns) fails this: the check can see a flip."""
  from scipy.ndimage import gaussian_filter
  img = np.zeros((32, 32), np.float32)
  img[8:24, 9:13] = img[8:12, 9:23] = img[14:17, 9:19] = img[20:24, 18:22] = 1
  img = gaussian_filter(img, 1.0) * 2 - 1
  x = jnp.asarray(np.repeat(img[None, :, :, None], 64, 0))

  def correlations(name):
    out = np.asarray(jax.jit(aug.pipeline(name))(x, 1.0, jax.random.key(3)))[..., 0]
    return np.stack([_aligned_correlation(out, t) for t in _dihedral(img)], axis=1)

  corr = correlations("digits")
  assert corr[:, 0].min() > 0.7, corr[:, 0].min()
  assert np.all(corr[:, 0] > corr[:, 1:].max(axis=1))
  blit = correlations("blit")
  assert np.mean(blit[:, 0] > blit[:, 1:].max(axis=1)) < 0.5


# --- configs ------------------------------------------------------------------------
def _channel_plan(c):
  """{res: channels} of G's synthesis blocks and D's blocks, from the initialised
  parameters' shapes (not from the formula)."""
  tr = build.make_trainer(c)
  params = jax.eval_shape(tr.init_state, jax.random.key(0)).params
  g, d = params["generator"]["synthesis"], params["discriminator"]
  g_plan = {r: g[f"b{r}"]["conv1"]["weight"].shape[0] for r in (4, 8, 16, 32)}
  d_plan = {r: d[f"b{r}"]["conv0"]["weight"].shape[0] for r in (8, 16, 32)}
  d_plan[4] = d["b4"]["conv"]["weight"].shape[0]
  return g_plan, d_plan


def test_channel_max_128_gives_128_128_64_32():
  c = load_config("stylegan2_mnist")
  assert _channel_plan(c) == ({4: 32, 8: 32, 16: 32, 32: 32},) * 2
  c.model.channel_max = 128
  want = {4: 128, 8: 128, 16: 64, 32: 32}
  assert _channel_plan(c) == (want, want)


def test_auto_is_the_reference_auto_at_32px_on_one_gpu():
  """NVlabs' train.py, cfg_specs['auto'] at res 32, 1 GPU: mb = max(min(1 * min(128,
  32), 64), 1) = 32, mbstd = min(32, 4) = 4, fmaps 0.5 (channel_base 16384,
  channel_max 512), lrate 0.0025, gamma = 0.0002 * 1024 / 32, ema = 32 * 10 / 32,
  ramp 0.05, map 2, z = w = 512; StyleGAN2Loss's defaults (pl_weight 2, style mixing
  0.9), the resnet D, ADA (target 0.6, ada_kimg 500), R1 every 16, path length
  every 4."""
  c = load_config("stylegan2_mnist", "auto")
  m, s = c.model, c.stylegan2
  assert c.train.batch_size == 32 and m.mbstd_group_size == 4
  assert (m.channel_base, m.channel_max, m.z_dim, m.w_dim) == (16384, 512, 512, 512)
  assert (m.mapping_layers, m.d_architecture, m.g_architecture) == (2, "resnet", "skip")
  lrs = c.optim.generator.learning_rate, c.optim.discriminator.learning_rate
  assert lrs == (0.0025, 0.0025)
  assert s.r1_gamma == pytest.approx(0.0064) and s.ema_kimg == pytest.approx(10.0)
  assert (s.ema_rampup, s.pl_weight, s.style_mixing_prob) == (0.05, 2.0, 0.9)
  assert (s.augment, s.ada_target, s.ada_kimg) == ("bgc", 0.6, 500.0)
  assert (s.r1_interval, s.pl_interval, s.r2_gamma) == (16, 4, 0.0)
  g_plan, d_plan = _channel_plan(c)
  assert set(g_plan.values()) == set(d_plan.values()) == {512}


@pytest.mark.parametrize("changes,field", [
    (dict(r2_gamma=-1.0), "config.stylegan2.r2_gamma"),
    (dict(r1_gamma=-0.1), "config.stylegan2.r1_gamma"),
    (dict(augment="digits", augment_p=0.0, ada_target=0.0), "config.stylegan2.augment"),
    (dict(augment="", augment_p=0.3), "config.stylegan2.augment_p"),
    (dict(ada_kimg=0.0), "config.stylegan2.ada_kimg"),
    (dict(augment="flip"), "config.stylegan2.augment")])
def test_nonsense_lever_values_are_refused(changes, field):
  c = load_config("stylegan2_mnist", "tiny")
  c.stylegan2.update(**changes)
  with pytest.raises(ConfigError, match=field.replace(".", "\\.")):
    build.make_trainer(c)


def test_a_fixed_p_of_the_digits_preset_is_accepted():
  c = load_config("stylegan2_mnist")
  c.stylegan2.update(augment="digits", augment_p=0.25, ada_target=0.0)
  assert build.make_trainer(c).augment_fn is not None


# --- experiments/stylegan2_ablation.py ----------------------------------------------
@pytest.fixture(scope="module")
def ablation():
  return load_module("experiments/stylegan2_ablation.py")


def test_ablation_penalties_are_means_over_the_steps_they_ran(ablation):
  """Log lines every 5 steps of R1 run every 4 steps (0-based steps 0, 4, 8, 12, 16)
  at 8, 4, 8, 4, 8, and of a path length of 1 every 2 steps, each logged as the mean
  over the line's steps (0 where it did not run): the summary gives back the means
  where they ran."""
  intervals = {"r1_interval": 4, "pl_interval": 2}
  r1 = (12 / 5, 8 / 5, 4 / 5, 8 / 5)  # steps 0 and 4; 8; 12; 16
  pl = (3 / 5, 2 / 5, 3 / 5, 2 / 5)  # 1 on the even steps: 0, 2, 4; 6, 8; ...
  lines = [{"step": end, "steps_per_sec": 2.0, "real_sign": end / 100,
            "r1_penalty": r1[i], "r2_penalty": 0.0, "pl_penalty": pl[i]}
           for i, end in enumerate((5, 10, 15, 20))]
  got = ablation.segment_summary(lines, 0, 20, intervals)
  assert got["r1_penalty"] == pytest.approx(32 / 5)
  assert got["pl_penalty"] == pytest.approx(1.0) and got["r2_penalty"] == 0.0
  assert got["train_s"] == pytest.approx(10.0) and got["real_sign"] == 0.2
  later = ablation.segment_summary(lines, 10, 20, intervals)
  assert later["r1_penalty"] == pytest.approx(6.0)  # steps 12 and 16
  assert later["train_s"] == pytest.approx(5.0)
  assert [ablation.firing_steps(a, b, 4) for a, b in ((0, 5), (5, 10), (10, 20))] == [
      2, 1, 2]
  assert ablation.segment_ends(0, 600, 250) == [250, 500, 600]
  assert ablation.segment_ends(250, 500, 250) == [500]
  assert ablation.segment_ends(510, 600, 250) == [600]


def test_ablation_dry_run_prints_each_arm_and_refuses_unknown_ones(ablation, capsys,
                                                                  tmp_path):
  ablation.main([f"--out={tmp_path}", "--arms=baseline,r1r2_g1,aug_digits_p0.25",
                 "--seeds=0,1", "--dry_run", "--num_steps=500",
                 "--arm=wide=--config.model.channel_max=128"])
  out = capsys.readouterr().out
  assert out.count("--config.train.num_steps=250") == 8  # 4 arms x 2 seeds
  assert "--config.stylegan2.r2_gamma=1.0" in out and "channel_max=128" in out
  assert "--config.stylegan2.ada_target=0.0" in out and "--config.seed=1" in out
  assert not os.listdir(tmp_path)
  with pytest.raises(SystemExit, match="unknown"):
    ablation.main([f"--out={tmp_path}", "--arms=nope", "--dry_run"])


def test_ablation_table_rows_and_arm_means(ablation):
  def record(seed, eff, wall):
    return {"arm": "a", "seed": seed, "segments": [
        {"step": 250, "wall_s": wall, "train_s": wall - 1, "load": 2.0,
         "effective_classes": eff, "smallest_share": 0.01, "recall": 0.2,
         "precision": 0.5, "fid": 100.0}]}
  rows = [ablation.row(record(0, 3.0, 10.0)), ablation.row(record(1, 5.0, 20.0))]
  assert rows[0]["steps"] == 250 and rows[1]["train_s"] == 19.0
  rows.append(ablation.row(record(2, 4.0, 30.0)))
  rows[-1]["steps"] = 251
  (agg,) = ablation.arm_rows(rows)
  assert agg["effective_classes"] == 4.0
  assert agg["effective_classes_std"] == pytest.approx(np.std([3.0, 5.0, 4.0]))
  table = ablation.format_table(rows)
  assert len(table.splitlines()) == 4 and "3.00" in table
  arms = ablation.format_table([agg], ablation.ARM_COLUMNS)  # mean steps 250.33
  assert "  250 " in arms and "0.82" in arms
  json.dumps(agg)


def test_ablation_run_trains_in_segments_within_its_budget(ablation, tmp_path,
                                                           monkeypatch):
  """A stand-in for ``jaxgen.main`` (10 steps a second, a log line every 50 steps,
  eval.json of the split asked for): a 60 s budget stops the run at step 600 (250,
  500, then the 100 steps the rate leaves), each segment's test and training-digit
  evaluations are kept, and the workdir's eval.json is the test split's again."""
  calls = []

  def fake_run(cmd, log_path, deadline, env):
    calls.append(cmd)
    workdir = next(a.split("=", 1)[1] for a in cmd if a.startswith("--workdir="))
    metrics = os.path.join(workdir, "metrics.jsonl")
    lines = ablation.read_jsonl(metrics)
    step = lines[-1]["step"] if lines else 0
    if "--mode=eval" not in cmd:
      end = int(next(a.split("=")[1] for a in cmd if "train.num_steps=" in a))
      with open(metrics, "a") as f:
        for s in range(step + 50, end + 50, 50):
          f.write(json.dumps({"step": min(s, end), "steps_per_sec": 10.0,
                              "r1_penalty": 0.0, "real_sign": 0.5}) + "\n")
      step = end
      with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({"stylegan2": {"r1_interval": 16, "pl_interval": 4}}, f)
    split = "train" if "--config.eval.split=train" in cmd else "test"
    with open(os.path.join(workdir, "eval.json"), "w") as f:
      json.dump({"step": step, "split": split, "d_real_sign": 0.9 if split == "train"
                 else 0.4, "class_coverage_effective": step / 100, "recall": 0.1}, f)
    return 0, False

  monkeypatch.setattr(ablation, "run_command", fake_run)
  args = ablation.parse_args([f"--out={tmp_path}", "--arms=r1r2_g1", "--seeds=3",
                              "--budget_s=60", "--num_steps=3000"])
  args.num_steps = 3000
  record = ablation.train_run(args, "r1r2_g1", ablation.ARMS["r1r2_g1"], 3, {})
  assert [s["step"] for s in record["segments"]] == [250, 500, 600]
  assert [s["train_s"] for s in record["segments"]] == pytest.approx([25, 25, 10])
  last = record["segments"][-1]
  assert last["effective_classes"] == 6.0 and last["d_real_sign"] == 0.4
  assert last["d_real_sign_train"] == 0.9
  workdir = tmp_path / "r1r2_g1" / "seed3"
  assert json.loads((workdir / "eval.json").read_text())["split"] == "test"
  assert sorted(os.listdir(workdir / "evals")) == sorted(
      f"step_{s}{t}.json" for s in (250, 500, 600) for t in ("", "_train"))
  assert all("--config.seed=3" in c and "--config.stylegan2.r2_gamma=1.0" in c
             for c in calls)
  assert ablation.row(record)["steps"] == 600
