r"""Where a latent diffusion run falls short: its stage's decoder, or its denoiser.

  python experiments/ldm_diagnostics.py --run=W2 [--out=DIR]

W2 is a finished ``ldm`` run (its autoencoder and CLIP stages are read from its
config). Prints three measurements on test canvases:
  1. the decoder's robustness: the MSE of decoding the real latents with i.i.d.
     Gaussian noise of 0 .. 0.4 times their std added (a picture in ``--out``);
  2. the sampled latents (DDIM, guidance 1 and 4) against the real ones: mean, std and
     the largest magnitude, per channel (a denoiser that leaves noise gives a larger
     std, a background with blobs);
  3. the eps-MSE at fixed timesteps, with the caption and with the null caption (how
     much the conditioning tells the denoiser at each noise level).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxgen import build, data, sharding, viz

flags.DEFINE_string("run", None, "A finished ldm run's workdir.")
flags.DEFINE_string("out", "", "Where to write decoder_noise.png (none if empty).")
flags.DEFINE_integer("num", 64, "Test canvases to use.")
FLAGS = flags.FLAGS


def main(_):
  mesh = sharding.make_mesh()
  stage = build.load_stage("ldm", FLAGS.run, mesh)
  trainer, params = stage.trainer, stage.params
  frozen = {k: s.params for k, s in trainer.stages.items()}
  source = data.get_source(trainer.config.data, "test")
  idx = np.linspace(0, len(source) - 1, FLAGS.num).astype(np.int64)
  batch = data.preprocess.process(source[idx], trainer.config.data,
                                  np.random.default_rng(0), train=False, indices=idx)
  images = jnp.asarray(batch["image"])
  z0 = trainer.encode(frozen, images)

  print("1. decoding the real latents plus noise of sigma x their std")
  rows, rng = [np.asarray(trainer.to_unit(images))], np.random.default_rng(0)
  std = float(jnp.std(z0))
  for sigma in (0.0, 0.05, 0.1, 0.2, 0.4):
    noisy = z0 + sigma * std * rng.standard_normal(z0.shape).astype(np.float32)
    x = np.clip(np.asarray(trainer.decode(frozen, noisy)), 0, 1)
    print(f"   sigma {sigma:4.2f}: MSE against the canvas {np.mean((x - rows[0]) ** 2):.5f}")
    rows.append(x)
  if FLAGS.out:
    os.makedirs(FLAGS.out, exist_ok=True)
    grid = viz.grid(viz.to_uint8(np.concatenate([r[:10] for r in rows])), rows=len(rows))
    viz.save_png(grid, os.path.join(FLAGS.out, "decoder_noise.png"))

  print("2. sampled latents against the real ones (scaled)")
  cond = {k: jnp.asarray(batch[k]) for k in trainer.conditioning_keys}
  real = np.asarray(z0)
  axes = tuple(range(real.ndim - 1))
  print(f"   real      mean {real.mean():+.3f} std {real.std():.3f} "
        f"|max| {np.abs(real).max():.2f}; per channel std {real.std(axes).round(3)}")
  for scale in (1.0, 4.0) if cond else (None,):
    z, _ = jax.jit(lambda p, r, c, s=scale: trainer.run_sampler(
        p, r, len(idx), c, s, frozen))(params, jax.random.key(0), cond or None)
    z = np.asarray(z)
    print(f"   guidance {scale}: mean {z.mean():+.3f} std {z.std():.3f} "
          f"|max| {np.abs(z).max():.2f}; per channel std {z.std(axes).round(3)}")

  print("3. eps-MSE at fixed t, with the conditioning / the null conditioning")

  @jax.jit
  def mse_at(t_s, key):
    t = jnp.full((z0.shape[0],), t_s, jnp.int32)
    noise = jax.random.normal(key, z0.shape)
    zt = trainer.process.q_sample(z0, t, noise)
    with_c = trainer.apply(params, zt, t, cond, frozen)
    without = trainer.apply(params, zt, t, trainer.null_conditioning(cond), frozen)
    return jnp.mean((with_c - noise) ** 2), jnp.mean((without - noise) ** 2)

  for t in (0, 10, 50, 100, 200, 400, 600, 800, trainer.process.num_steps - 1):
    c, u = mse_at(t, jax.random.key(t))
    print(f"   t = {t:4d}: {float(c):.4f} / {float(u):.4f}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["run"])
  app.run(main)
