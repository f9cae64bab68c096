r"""How much a StyleGAN2 run's samples vary with z, checkpoint by checkpoint: a
mode-collapse probe of the generator's inside.

  python experiments/stylegan2_diversity.py --workdir=/tmp/sg_try1 [--step=N]
  python experiments/stylegan2_diversity.py --images='/tmp/sg_ref/probe_*.npy'

For each checkpoint of the run (or ``--step``), with one fixed set of 256 z and
constant noise: the per-pixel standard deviation over z of G's and G_ema's images
(mean over pixels, images in [-1, 1] at the model's resolution), the std over z of w
(mean over w's dimensions), and for G_ema the mean pairwise distance of images. A
collapsed generator has an image std near 0 while w still varies. On MNIST, also the
G_ema images' digit classes (the centre 28x28) as the ``digit_classes`` evaluator
(jaxgen/evaluators/digit_classes.py) counts them. ``--images``: the same class count
for uint8 images [N, H, W] saved by another implementation
(experiments/stylegan2_nvlabs_loop.py), one line per file.

For a run's samples as ``--mode=eval`` draws them, put ``digit_classes`` in
``config.eval.metrics`` instead: it works for every family with 28x28x1 samples.
"""
import glob
import json
import os

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import build, checkpoint, sharding, stages, xla_options
from jaxgen.evaluators import digit_classes
from jaxgen.metrics import features

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags (defined only when run as one, so that importing this file
  next to jaxgen.main, as the tests do, defines none)."""
  flags.DEFINE_string("workdir", None, "the run's workdir")
  flags.DEFINE_string("images", None, "glob of .npy uint8 images [N, H, W] instead")
  flags.DEFINE_integer("step", None, "one checkpoint step (default: all)")
  flags.DEFINE_integer("num", 256, "number of z")


def class_coverage(images01) -> dict:
  """The digit classes of images in [0, 1] [N, H, W, 1] (their centre 28x28), as the
  ``digit_classes`` evaluator counts them (at its default threshold), with the
  histogram as ``classes`` and the effective number of classes as
  ``effective_classes``."""
  h, w = images01.shape[1:3]
  t, l = (h - 28) // 2, (w - 28) // 2
  logits = _classifier()(np.asarray(images01[:, t:t + 28, l:l + 28]),
                         progress=False)["logits"]
  out = digit_classes.summary(
      digit_classes.class_counts(logits),
      digit_classes.DigitClasses.options["digit_classes_min_share"])
  return {"classes": out["digit_classes_counts"],
          "effective_classes": out["digit_classes_effective"],
          "covered_classes": out["digit_classes"],
          "max_class_share": out["digit_classes_max_share"]}


_NET = []


def _classifier():
  if not _NET:
    _NET.append(features.get("mnist_classifier"))
  return _NET[0]


def probe(trainer, state, num):
  z = jax.random.normal(jax.random.key(123), (num, trainer.z_dim))
  c = None
  out = {}
  for name, g in (("G", state.params["generator"]), ("G_ema", state.ema_params)):
    b = state.extra["buffers"]
    w = trainer.map(g, b, z, c)
    img = trainer.synthesize(g, b, trainer.broadcast(g, b, w), noise_mode="const")
    out[f"{name}_img_std"] = float(jnp.mean(jnp.std(img, axis=0)))
    out[f"{name}_w_std"] = float(jnp.mean(jnp.std(w, axis=0)))
    flat = img.reshape(num, -1)[:64]
    d = jnp.sqrt(jnp.sum(jnp.square(flat[:, None] - flat[None]), -1) / flat.shape[1])
    out[f"{name}_pair_rms"] = float(jnp.sum(d) / (64 * 63))
  if trainer.channels == 1:
    out.update(class_coverage(jnp.clip((img + 1) / 2, 0.0, 1.0)))
  return out


def main(_):
  xla_options.configure_cpu()  # before JAX creates its CPU client
  if FLAGS.images:
    for path in sorted(glob.glob(FLAGS.images)):
      x = np.load(path).astype(np.float32)[..., None] / 255.0
      print(json.dumps({"file": path, **class_coverage(x)}))
    return
  if not FLAGS.workdir:
    raise app.UsageError("Give --workdir=<a stylegan2 run> or --images=<glob of .npy>.")
  config = stages.run_config(FLAGS.workdir)
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(config, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(FLAGS.workdir, "checkpoints"),
                                 read_only=True)
  steps = [FLAGS.step] if FLAGS.step is not None else ckpt.all_steps()
  abstract = build.abstract_state(trainer, config, mesh)
  init = trainer.init_state(build.run_keys(config)["init"])
  print(json.dumps({"step": 0, **probe(trainer, init, FLAGS.num)}))
  for step in steps:
    state, _ = ckpt.restore(abstract, step)
    print(json.dumps({"step": step, **probe(trainer, state, FLAGS.num)}))
  ckpt.close()


if __name__ == "__main__":
  define_flags()
  app.run(main)
