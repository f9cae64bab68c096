r"""DALL-E's two speed questions (issue 25), measured on a finished dalle run.

  python experiments/dalle_speed.py --workdir=/tmp/dalle_mnist [--rounds=3]

1. **Where to encode the image tokens.** jaxgen encodes each batch's images with the
   frozen stage inside the compiled train step; dalle-mini encodes the training set
   once ahead of training and trains on the stored codes. The script times, in
   alternating rounds on the same batch, the loss gradient with the encoder inside
   (``inside``) and the same gradient given the codes (``ahead``), and the one-off
   cost of encoding the run's whole training split ahead (``data.layouts`` canvases
   per digit: every layout's codes must be stored).
2. **The key-value cache.** Sampling time per image (one batch of ``--batch``
   captions, top-k 256, temperature 1) through the cache against the whole sequence
   at every step, also in alternating rounds; both draw the same tokens (checked
   here, and in tests/test_dalle.py).

Prints one JSON line with the seconds, their ratios and the load averages. Numbers on
a shared CPU depend on its load: compare only the ratios of one run.
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import benchmarking, build, data, sharding, stages, train, xla_options


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="a finished dalle run")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10, help="gradients per round")
  parser.add_argument("--batch", type=int, default=64, help="captions sampled at once")
  args = parser.parse_args()
  xla_options.configure_cpu()

  config = stages.run_config(args.workdir)
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(config, mesh)
  state, _ = train.restore_latest(trainer, config, args.workdir, mesh)
  frozen = train.frozen(trainer)
  source = data.get_source(config.data, "train")
  n = int(config.train.batch_size)
  batch = data.preprocess.process(source[np.arange(n)], config.data,
                                  np.random.default_rng(0), train=False,
                                  indices=np.arange(n))
  images, text = jnp.asarray(batch["image"]), jnp.asarray(batch["text"])

  def loss_of_codes(params, codes, text):
    text_ce, weights, image_ce = trainer.token_losses(params, text, codes, train=True,
                                                      rng=jax.random.key(0))
    return (trainer.text_weight * (text_ce * weights).sum() / weights.sum()
            + trainer.image_weight * image_ce.mean())

  grad_ahead = jax.jit(jax.grad(loss_of_codes))
  grad_inside = jax.jit(jax.grad(
      lambda p, images, text: loss_of_codes(p, trainer.codes(frozen, images), text)))
  encode = jax.jit(lambda images: trainer.codes(frozen, images))
  codes = encode(images)
  params = state.params
  jax.block_until_ready((grad_ahead(params, codes, text),
                         grad_inside(params, images, text)))  # compile both

  def rounds_of(fn, *operands):
    def one():
      return benchmarking.timed(lambda k: [jax.block_until_ready(fn(*operands))
                                           for _ in range(k)], args.steps) / args.steps
    return one

  load_before = benchmarking.load_averages()
  step_times = benchmarking.alternating_rounds(
      {"inside": rounds_of(grad_inside, params, images, text),
       "ahead": rounds_of(grad_ahead, params, codes, text)}, args.rounds)
  # The one-off pass of encoding ahead: every training canvas once (the split holds
  # each of ``data.layouts`` layouts of every digit).
  examples = len(source)
  encode_s = benchmarking.timed(
      lambda k: [jax.block_until_ready(encode(images)) for _ in range(k)], 5) / 5
  encode_all_s = encode_s * examples / n

  # Sampling: cached against uncached, the same keys.
  rows = np.arange(args.batch) % len(source)
  captions = jnp.asarray(data.preprocess.process(
      source[rows], config.data, np.random.default_rng(0), train=False,
      indices=rows)["text"])
  keys = jax.random.split(jax.random.key(3), args.batch)
  draw = {c: jax.jit(lambda p, t, k, c=c: trainer.draw_tokens(p, t, k, cached=c))
          for c in (True, False)}
  tokens = {c: np.asarray(draw[c](state.ema_params, captions, keys)) for c in draw}
  same = bool((tokens[True] == tokens[False]).all())
  sample_times = benchmarking.alternating_rounds(
      {name: (lambda c=c: benchmarking.timed(lambda k: jax.block_until_ready(
          draw[c](state.ema_params, captions, keys)), 1))
       for name, c in (("cached", True), ("uncached", False))}, args.rounds)

  med = {k: float(np.median(v)) for k, v in {**step_times, **sample_times}.items()}
  print(json.dumps({
      "workdir": args.workdir, "batch_size": n, "steps_per_round": args.steps,
      "rounds": args.rounds,
      "grad_s_inside": med["inside"], "grad_s_ahead": med["ahead"],
      "inside_over_ahead": med["inside"] / med["ahead"],
      "encode_s_per_batch": encode_s, "training_canvases": examples,
      "encode_ahead_once_s": encode_all_s,
      "steps_to_repay_ahead": encode_all_s / max(med["inside"] - med["ahead"], 1e-9),
      "sample_batch": args.batch,
      "sample_s_per_image_cached": med["cached"] / args.batch,
      "sample_s_per_image_uncached": med["uncached"] / args.batch,
      "uncached_over_cached": med["uncached"] / med["cached"],
      "cached_equals_uncached": same,
      "rounds_s": {k: [round(x, 4) for x in v]
                   for k, v in {**step_times, **sample_times}.items()},
      "load_before": load_before, "load_after": benchmarking.load_averages(),
      "when": time.strftime("%Y-%m-%d %H:%M:%S")}))


if __name__ == "__main__":
  main()
