r"""Text to image (and image to image) with Stable Diffusion's released weights.

  python -m jaxgen.txt2img --weights=DIR --prompt="a photograph of an astronaut riding a horse" \
      --negative_prompt="" --steps=50 --guidance=7.5 --seed=0 --num_images=4 \
      --height=512 --width=512 --out=DIR
  python -m jaxgen.txt2img --weights=sd_v1_5 --prompt=... --scheduler=dpmpp_2m --steps=20 --out=DIR
  python -m jaxgen.txt2img --weights=v2-1_768-ema-pruned.safetensors --model=sd2_v ...
  python -m jaxgen.txt2img --weights=DIR --prompt=... --init_image=photo.png --strength=0.75 --out=DIR

``--weights`` is a diffusers folder, a CompVis checkpoint (``--model`` names its
architecture: ``sd1``, ``sd2``, ``sd2_v``; an SD 1.x file needs none) or a registered
name (``sd_v1_4``, ``sd_v1_5``, ``sd_v2_base``, ``sd_v2_768``, ``sd_v2_1_base``,
``sd_v2_1_768``: a file in the weights cache, ``$JAXGEN_CACHE``). jaxgen/weights/
stable_diffusion.py reads them.

The whole generation is one compiled function: both prompts' text states (one batch),
the denoising loop (``lax.scan``; classifier-free guidance evaluates the U-Net once on
the conditional and unconditional halves of a doubled batch, as diffusers'
StableDiffusionPipeline: uncond + guidance (cond - uncond)), and the autoencoder's
decoding at 1 / scaling_factor, the images' batch sharded over the devices.
``--guidance=1`` is the conditional prediction alone (one U-Net call a step); any other
value, below 1 too, applies the formula (CompVis' convention; diffusers skips guidance
at or below 1). The initial latents of image i are N(0, I) from ``fold_in(key(seed),
i)``, so an image depends neither on how many are made nor on the batch or the devices.
``--scheduler``: ``ddim`` (eta 0) or ``dpmpp_2m`` (DPM-Solver++(2M)), each with the
timesteps that diffusers' scheduler of that name chooses from the weights'
scheduler_config.json. With ``--init_image`` the image is encoded (a posterior sample),
noised to the ``strength``-th part of the schedule and denoised through the rest, as
diffusers' StableDiffusionImg2ImgPipeline.

A prompt longer than the text encoder's 77 tokens (with its start and end tokens) is
truncated with a warning, as diffusers does (CompVis' FrozenCLIPEmbedder truncates
silently, in training too, so the released models never saw more); the JSON record
lists it. Image sides must be multiples of 8 (the autoencoder's factor) and, for the
U-Net's three downsamplings, of 64. Writes ``image_NNN.png`` and ``txt2img.json`` (the
settings, the weights' files and SHA-256, the timesteps, the timings) into ``--out``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import sharding, viz, xla_options
from jaxgen import weights as weights_lib
from jaxgen.diffusion import samplers
from jaxgen.errors import ConfigError, StageError
from jaxgen.models import autoencoder_kl as aekl
from jaxgen.weights import stable_diffusion as sdw

LATENT_FACTOR = 8  # every released autoencoder's


@dataclasses.dataclass(frozen=True)
class Settings:
  """What one compiled generation does: ``steps`` of ``scheduler`` at ``guidance``, on
  ``height`` x ``width`` images; with ``strength`` (img2img) only the last
  int(steps x strength) steps, from a noised image."""
  steps: int = 50
  guidance: float = 7.5
  scheduler: str = "ddim"
  height: int = 512
  width: int = 512
  strength: float | None = None

  def check(self, factor: int = LATENT_FACTOR):
    """Refuse what cannot run, each with one line; ``factor``: what the sides must be
    multiples of (8 before the weights are read; the architecture's after)."""
    if self.scheduler not in sdw.SAMPLERS:
      raise ConfigError(f"--scheduler={self.scheduler!r}; use one of "
                        f"{', '.join(sdw.SAMPLERS)}.")
    if self.steps < 1:
      raise ConfigError(f"--steps={self.steps}: at least 1.")
    if not math.isfinite(self.guidance):
      raise ConfigError(f"--guidance={self.guidance} is not a number.")
    for name in ("height", "width"):
      side = getattr(self, name)
      if side < 1 or side % LATENT_FACTOR:
        raise ConfigError(f"--{name}={side} is not a positive multiple of {LATENT_FACTOR} "
                          "(the autoencoder's downsampling factor).")
      if side % factor:
        raise ConfigError(f"--{name}={side} is not a multiple of {factor}: the latents "
                          f"({side // LATENT_FACTOR}) must halve "
                          f"{int(math.log2(factor // LATENT_FACTOR))} times in the U-Net; "
                          f"use {max(factor, side // factor * factor)} or "
                          f"{(side // factor + 1) * factor}.")
    if self.strength is not None:
      if not 0 < self.strength <= 1:
        raise ConfigError(f"--strength={self.strength} must be in (0, 1].")
      if self.first_step == self.steps:
        raise ConfigError(f"--strength={self.strength} of --steps={self.steps} leaves no "
                          "step to run (int(steps x strength) = 0); raise either.")

  @property
  def first_step(self) -> int:
    """The first step of the schedule that runs (0 without img2img), as diffusers'
    img2img: steps - min(int(steps x strength), steps)."""
    if self.strength is None:
      return 0
    return self.steps - min(int(self.steps * self.strength), self.steps)


def denoise(sd: sdw.StableDiffusion, settings: Settings, params, cond_ids, uncond_ids,
            noise, images=None, posterior_noise=None, progress: bool = False):
  """Images in [0, 1] (N, H, W, 3) for token ids (N, L), as one traceable function.
  ``noise`` (N, h, w, C) is x_T (txt2img) or the noise added to the encoded
  ``images`` (img2img; ``posterior_noise`` draws their latents from the posterior)."""
  arch, scheduler = sd.arch, sd.arch.scheduler
  process = scheduler.process()
  n = cond_ids.shape[0]
  states = sd.text_states(params["text"], jnp.concatenate([cond_ids, uncond_ids]))
  cond, uncond = states[:n], states[n:]
  unet = sd.unet
  model_fn = lambda x, t, context: unet.apply(params["unet"], x, t, context)
  guided = samplers.guided(model_fn, cond, uncond, settings.guidance)
  start = settings.first_step
  if images is None:
    x_init = noise
  else:
    moments = sd.vae.apply(params["vae"], images * 2 - 1, method="encode")
    mean, logvar = aekl.posterior(moments)
    latents = (mean + jnp.exp(0.5 * logvar) * posterior_noise) * arch.scaling_factor
    t = scheduler.timesteps(settings.scheduler, settings.steps)[start]
    x_init = process.q_sample(latents, jnp.full((n,), t, jnp.int32), noise)
  x0 = scheduler.run(settings.scheduler, guided, x_init, settings.steps, process=process,
                     start=start, progress=progress)
  decoded = sd.vae.apply(params["vae"], x0 / arch.scaling_factor, method="decode")
  return jnp.clip((decoded + 1) / 2, 0.0, 1.0)


def initial_noise(seed: int, count: int, shape):
  """(x_T or img2img's noise, the posterior's noise) of images 0 .. count - 1, each
  N(0, I) of ``shape`` from the two halves of split(fold_in(key(seed), i))."""
  keys = [jax.random.split(jax.random.fold_in(jax.random.key(seed), i))
          for i in range(count)]
  draw = lambda j: np.stack([np.asarray(jax.random.normal(k[j], shape)) for k in keys])
  return draw(0), draw(1)


class Generator:
  """``generate`` compiled once for a batch size, sharded over the largest number of
  devices that divides it; ``compile_s`` is what compiling took."""

  def __init__(self, sd: sdw.StableDiffusion, settings: Settings, batch: int,
               img2img: bool = False, progress: bool = False, devices=None):
    self.sd, self.settings, self.batch = sd, settings, batch
    devices = list(jax.devices() if devices is None else devices)
    self.mesh = sharding.make_mesh(devices[:math.gcd(batch, len(devices))])
    self.params = sharding.replicate(sd.params, self.mesh)
    self.rows = sharding.batch_sharding(self.mesh)
    fn = lambda params, cond, uncond, noise, images, posterior: denoise(
        sd, settings, params, cond, uncond, noise, images, posterior, progress)
    f = sd.arch.vae.factor
    latent = (batch, settings.height // f, settings.width // f, sd.arch.vae.embed_dim)
    length = sd.arch.text.context_length
    spec = lambda shape, dtype=jnp.float32: jax.ShapeDtypeStruct(shape, dtype,
                                                                 sharding=self.rows)
    ids = spec((batch, length), jnp.int32)
    images = spec((batch, settings.height, settings.width, 3)) if img2img else None
    posterior = spec(latent) if img2img else None
    start = time.perf_counter()
    self.compiled = jax.jit(fn).lower(self.params, ids, ids, spec(latent), images,
                                      posterior).compile()
    self.compile_s = time.perf_counter() - start
    self.latent_shape = latent[1:]

  def __call__(self, cond_ids, uncond_ids, noise, images=None, posterior_noise=None):
    put = lambda x: None if x is None else sharding.put_global(np.asarray(x), self.rows)
    out = self.compiled(self.params, put(cond_ids), put(uncond_ids), put(noise), put(images),
                        put(posterior_noise))
    return np.asarray(out)


def generate(sd: sdw.StableDiffusion, prompts, negative_prompts, settings: Settings, *,
             seed: int = 0, noise=None, images=None, posterior_noise=None,
             batch_size: int | None = None, progress: bool = False, devices=None,
             timings: dict | None = None) -> np.ndarray:
  """Images in [0, 1] (N, H, W, 3) for N prompts and negative prompts. ``noise`` and
  ``posterior_noise`` (N, h, w, C), if given, replace the seeded draws
  (``initial_noise``); ``images`` (N, H, W, 3) in [0, 1] make it img2img. Generates
  ``batch_size`` images at a time (default: all); ``timings`` receives compile_s and
  generate_s."""
  settings.check(sd.arch.image_factor)
  prompts, negative_prompts = list(prompts), list(negative_prompts)
  n = len(prompts)
  if len(negative_prompts) != n:
    raise ConfigError(f"{n} prompts but {len(negative_prompts)} negative prompts.")
  if (images is None) != (settings.strength is None):
    raise ConfigError("img2img needs both the images and a strength.")
  batch = min(batch_size or n, n)
  generator = Generator(sd, settings, batch, images is not None, progress, devices)
  cond, _ = sd.tokenize(prompts)
  uncond, _ = sd.tokenize(negative_prompts)
  if noise is None:
    noise, drawn_posterior = initial_noise(seed, n, generator.latent_shape)
    if images is not None and posterior_noise is None:
      posterior_noise = drawn_posterior
  out, start = [], time.perf_counter()
  for i in range(0, n, batch):
    rows = np.arange(i, i + batch) % n  # the last batch repeats rows, dropped below
    take = lambda x: None if x is None else np.asarray(x)[rows]
    out.append(generator(cond[rows], uncond[rows], take(noise), take(images),
                         take(posterior_noise))[:min(batch, n - i)])
  if timings is not None:
    timings.update(compile_s=generator.compile_s, generate_s=time.perf_counter() - start)
  return np.concatenate(out)


# ---------------------------------------------------------------------------------------
# The command line.

def load_image(path: str, height: int | None, width: int | None, factor: int):
  """An RGB image in [0, 1] (H, W, 3), resized (Lanczos, as diffusers' image
  processor) to height x width; without them, to its size rounded down to ``factor``."""
  from PIL import Image
  if not os.path.isfile(path):
    raise ConfigError(f"--init_image={path!r} does not exist.")
  try:
    image = Image.open(path).convert("RGB")
  except OSError as e:
    raise ConfigError(f"--init_image={path!r} is not an image ({e}).") from None
  w, h = image.size
  size = (width or max(factor, w // factor * factor), height or max(factor, h // factor * factor))
  if size != image.size:
    image = image.resize(size, Image.LANCZOS)
  return np.asarray(image, np.float32) / 255


def run(args) -> dict:
  """The command: checks, loading, generation, files; returns the JSON record."""
  given = lambda side: 512 if side is None else side  # checked again with the model's
  settings = Settings(args.steps, args.guidance, args.scheduler, given(args.height),
                      given(args.width), args.strength if args.init_image else None)
  settings.check()
  if args.num_images < 1 or (args.batch_size is not None and args.batch_size < 1):
    raise ConfigError("--num_images and --batch_size must be at least 1.")
  if args.init_image and not os.path.isfile(args.init_image):
    raise ConfigError(f"--init_image={args.init_image!r} does not exist.")
  start = time.perf_counter()
  sd = sdw.load(args.weights, args.model, args.tokenizer)
  load_s = time.perf_counter() - start
  size = sd.arch.default_size or 512
  images = None
  if args.init_image:
    image = load_image(args.init_image, args.height, args.width, sd.arch.image_factor)
    images = np.repeat(image[None], args.num_images, axis=0)
    height, width = image.shape[:2]
  else:
    height, width = args.height or size, args.width or size
  settings = dataclasses.replace(settings, height=height, width=width)
  prompts = [args.prompt] * args.num_images
  negatives = [args.negative_prompt] * args.num_images
  _, truncated = sd.tokenize([args.prompt, args.negative_prompt])
  for text in truncated:
    print(f"warning: the prompt {text[:60]!r}... has more than "
          f"{sd.arch.text.context_length} tokens; truncated, as diffusers and CompVis do.",
          file=sys.stderr)
  timings = {}
  out = generate(sd, prompts, negatives, settings, seed=args.seed, images=images,
                 batch_size=args.batch_size, progress=not args.no_progress,
                 timings=timings)
  os.makedirs(args.out, exist_ok=True)
  files = []
  for i, image in enumerate(out):
    files.append(f"image_{i:03d}.png")
    viz.save_png(viz.to_uint8(image), os.path.join(args.out, files[-1]), min_size=1)
  steps_run = settings.steps - settings.first_step
  batches = -(-args.num_images // (args.batch_size or args.num_images))
  record = {
      "prompt": args.prompt, "negative_prompt": args.negative_prompt,
      "truncated": truncated, "steps": settings.steps, "steps_run": steps_run,
      "guidance": settings.guidance, "scheduler": settings.scheduler, "seed": args.seed,
      "num_images": args.num_images, "batch_size": args.batch_size or args.num_images,
      "height": height, "width": width, "init_image": args.init_image,
      "strength": settings.strength,
      "timesteps": sd.arch.scheduler.timesteps(settings.scheduler, settings.steps)[
          settings.first_step:].tolist(),
      "weights": {"source": sd.source, "model": sd.name, "sha256": sd.digests()},
      "prediction_type": sd.arch.scheduler.prediction_type,
      "scaling_factor": sd.arch.scaling_factor,
      "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
      "timing": {"load_s": load_s, **timings,
                 "s_per_step": timings["generate_s"] / (batches * steps_run),
                 "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20},
      "images": files}
  with open(os.path.join(args.out, "txt2img.json"), "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
  return record


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--weights", required=True,
                 help="a diffusers folder, a CompVis .ckpt/.safetensors, or a registered "
                      f"name ({', '.join(sdw.REGISTERED)})")
  p.add_argument("--model", default=None, choices=sorted(sdw.PRESETS),
                 help="the architecture of a single file (an SD 1.x file needs none)")
  p.add_argument("--tokenizer", default=None,
                 help="a tokenizer folder for a single file (default: OpenAI's BPE, "
                      "the registry's clip_bpe)")
  p.add_argument("--prompt", required=True)
  p.add_argument("--negative_prompt", default="")
  p.add_argument("--steps", type=int, default=50)
  p.add_argument("--guidance", type=float, default=7.5)
  p.add_argument("--scheduler", default="ddim", help=" or ".join(sdw.SAMPLERS))
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--num_images", type=int, default=1)
  p.add_argument("--batch_size", type=int, default=None,
                 help="images per compiled call (default: all)")
  p.add_argument("--height", type=int, default=None, help="default: the model's size")
  p.add_argument("--width", type=int, default=None, help="default: the model's size")
  p.add_argument("--init_image", default=None, help="img2img: the image to start from")
  p.add_argument("--strength", type=float, default=0.8,
                 help="img2img: the part of the schedule run from the noised image")
  p.add_argument("--out", required=True, help="folder for the PNGs and txt2img.json")
  p.add_argument("--no_progress", action="store_true", help="no progress bar")
  return p.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", FutureWarning)
      record = run(args)
  except (ConfigError, StageError, weights_lib.WeightsError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"wrote {len(record['images'])} images and txt2img.json to {args.out}")
  print(json.dumps({"timing": record["timing"], "images": record["images"]}))


if __name__ == "__main__":
  xla_options.configure_cpu()  # before JAX creates its CPU client
  main()
