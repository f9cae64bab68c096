r"""How much a StyleGAN2 run's samples vary with z: a mode-collapse probe.

  python experiments/stylegan2_diversity.py --workdir=/tmp/sg_try1 [--step=N]

For each checkpoint of the run (or ``--step``), with one fixed set of 256 z and
constant noise: the per-pixel standard deviation over z of G's and G_ema's images
(mean over pixels, images in [-1, 1] at the model's resolution), the std over z of w
(mean over w's dimensions), and for G_ema the mean pairwise distance of images. A
collapsed generator has an image std near 0 while w still varies.
"""
import json
import os

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import checkpoint, sharding, stages

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "the run's workdir")
flags.DEFINE_integer("step", None, "one checkpoint step (default: all)")
flags.DEFINE_integer("num", 256, "number of z")


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
  return out


def main(_):
  config = stages.run_config(FLAGS.workdir)
  mesh = sharding.make_mesh()
  trainer = stages.make_trainer(config, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(FLAGS.workdir, "checkpoints"),
                                 read_only=True)
  steps = [FLAGS.step] if FLAGS.step is not None else ckpt.all_steps()
  abstract = stages.abstract_state(trainer, config, mesh)
  init = trainer.init_state(stages.run_keys(config)["init"])
  print(json.dumps({"step": 0, **probe(trainer, init, FLAGS.num)}))
  for step in steps:
    state, _ = ckpt.restore(abstract, step)
    print(json.dumps({"step": step, **probe(trainer, state, FLAGS.num)}))
  ckpt.close()


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
