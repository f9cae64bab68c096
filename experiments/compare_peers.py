r"""Speed of jaxgen against PyTorch peers: same CPU, same architecture, same batch.

  python experiments/compare_peers.py                       # every row, 5 rounds
  python experiments/compare_peers.py --rows=dcgan_train --rounds=9 --iters=3
  python experiments/compare_peers.py --peer_python=/path/to/venv/bin/python

Rows (images per iteration in brackets):
  ddpm_unet_train     configs/ddpm_cifar10.py:paper's U-Net (35.7M parameters), one
                      train step at batch 8, 32x32x3 [8]. Peer: diffusers
                      UNet2DModel of the same shape, Adam, MSE on the noise. Both
                      steps do the work of jaxgen's config: noising, loss, backward,
                      global-norm clip at 1, Adam, EMA 0.9999 of the parameters.
  ddpm_unet_forward   the same two networks, forward only (inference mode), batch 8 [8].
  dcgan_train         configs/dcgan_celeba.py:paper at batch 64 (64x64): one D and one G
                      update. Peer: pytorch/examples dcgan's Generator/Discriminator
                      (nz 100, ngf = ndf = 64, BCE, Adam 2e-4, betas (0.5, 0.999)),
                      written out below [64].
  inception_features  the FID Inception on 64 images of 64x64 resized to 299, in
                      batches of 16 [64]. jaxgen: features.get("inception", mode=
                      "pytorch-fid"); peer: pytorch-fid's InceptionV3([3]). Both hold
                      the same random weights (tests/fixtures/inception_random_weights.py,
                      written as a .pth without torch), so nothing is downloaded.
  clip_image_tower    CLIP ViT-B/32's image tower with its projection, random weights,
                      on 16 normalised 224x224 images [16]. Peer: transformers
                      CLIPVisionModelWithProjection with ViT-B/32's sizes.
  sd_unet_step        one Stable Diffusion 1.x denoising step: the U-Net
                      (ldm_unet.SD_V1, 859.5M parameters, random weights) on a
                      guidance batch of 2 (cond + uncond) 64x64x4 latents with 77x768
                      text states, as one step of a 512x512 image [1]. Peer: diffusers
                      UNet2DConditionModel in SD 1.x's configuration, inference mode
                      (its default attention, scaled_dot_product_attention).

The jaxgen side runs in this process; the PyTorch side in a child process of
--peer_python (default: this python), so that torch may live in another venv; the
child needs only torch and the peer packages (``pip install -e '.[peers]'``), not
jaxgen. Per row, both sides build their model and warm up (XLA compilation, first
iterations; timed, reported apart), then the two alternate rounds over a pipe, who
goes first flipping each round: a side times --iters iterations while the other
waits on the pipe. Reported: the median over rounds of images/s per side, and
jaxgen/peer (> 1: jaxgen is faster), as a table and then one JSON line.

--threads sets torch's intra-op threads (default: all cores); XLA's CPU backend uses
all cores whatever it says. The load averages at start and end say how quiet the
machine was.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ("ddpm_unet_train", "ddpm_unet_forward", "dcgan_train", "inception_features",
        "clip_image_tower", "sd_unet_step")
IMAGES_PER_ITER = {"ddpm_unet_train": 8, "ddpm_unet_forward": 8, "dcgan_train": 64,
                   "inception_features": 64, "clip_image_tower": 16, "sd_unet_step": 1}
DEFAULT_ITERS = {"ddpm_unet_train": 5, "ddpm_unet_forward": 10, "dcgan_train": 5,
                 "inception_features": 1, "clip_image_tower": 3, "sd_unet_step": 1}
# What the peer process imports for each row.
PEER_MODULES = {"ddpm_unet_train": ("torch", "diffusers"),
                "ddpm_unet_forward": ("torch", "diffusers"),
                "dcgan_train": ("torch",),
                "inception_features": ("torch", "torchvision", "pytorch_fid"),
                "clip_image_tower": ("torch", "transformers"),
                "sd_unet_step": ("torch", "diffusers")}
INSTALL_HINT = ("install them with pip install -e '.[peers]' (from the repository root, "
                "into that python's environment) or point --peer_python at a venv that "
                "has them")
DDPM_BATCH, DCGAN_BATCH, FEATURE_BATCH = 8, 64, 16
SD_BATCH, SD_LATENT, SD_CONTEXT = 2, 64, (77, 768)  # one guided step of a 512x512 image
NUM_INCEPTION_IMAGES, INCEPTION_IMAGE_SIZE = 64, 64
PARAMS_TOLERANCE = 0.03  # parameter counts that differ by more are flagged


# ---------------------------------------------------------------------------------------
# Pure helpers: medians, ratios, the table.

def summarize(jaxgen_seconds, peer_seconds, images_per_round: int) -> dict:
  """Images/s per round of each side, their medians and jaxgen/peer.

  ``ratio`` is the ratio of the medians; ``paired_ratio`` the median of the per-round
  ratios (round i of one side against round i of the other, which ran next to it).
  """
  if not jaxgen_seconds or len(jaxgen_seconds) != len(peer_seconds):
    raise ValueError(f"need as many jaxgen rounds as peer rounds, at least one; got "
                     f"{len(jaxgen_seconds)} and {len(peer_seconds)}")
  jax_ips = [images_per_round / s for s in jaxgen_seconds]
  peer_ips = [images_per_round / s for s in peer_seconds]
  jax_median, peer_median = statistics.median(jax_ips), statistics.median(peer_ips)
  return {"jaxgen_images_per_sec": jax_median, "peer_images_per_sec": peer_median,
          "ratio": jax_median / peer_median,
          "paired_ratio": statistics.median(j / p for j, p in zip(jax_ips, peer_ips)),
          "jaxgen_rounds_images_per_sec": jax_ips, "peer_rounds_images_per_sec": peer_ips}


def params_note(jaxgen_params: int, peer_params: int) -> str:
  """'' when the counts agree within PARAMS_TOLERANCE, else what differs."""
  diff = abs(jaxgen_params - peer_params) / max(jaxgen_params, peer_params, 1)
  if diff <= PARAMS_TOLERANCE:
    return ""
  return f"parameter counts differ by {100 * diff:.1f}%"


TABLE_COLUMNS = (("row", "row"), ("batch", "batch"), ("jaxgen_params", "jaxgen params"),
                 ("peer_params", "peer params"), ("jaxgen_warmup_s", "jaxgen warmup s"),
                 ("peer_warmup_s", "peer warmup s"),
                 ("jaxgen_images_per_sec", "jaxgen img/s"),
                 ("peer_images_per_sec", "peer img/s"), ("ratio", "jaxgen/peer"),
                 ("note", "note"))


def _cell(key: str, value) -> str:
  if value is None:
    return "-"
  if key.endswith("_params"):
    return f"{value:,}"
  if key == "ratio":
    return f"{value:.2f}"
  if isinstance(value, float):
    return f"{value:.2f}" if value < 100 else f"{value:.1f}"
  return str(value)


def format_table(rows) -> str:
  """The rows (dicts with TABLE_COLUMNS' keys; missing ones show '-') as text."""
  header = [title for _, title in TABLE_COLUMNS]
  body = [[_cell(key, row.get(key)) for key, _ in TABLE_COLUMNS] for row in rows]
  widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
  lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip()
           for line in [header] + body]
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The peer check: can --peer_python import what the rows need?

_CHECK = r"""
import importlib, json, sys
missing, versions = [], {}
for name in sys.argv[1:]:
  try:
    versions[name] = getattr(importlib.import_module(name), "__version__", "?")
  except Exception as e:
    missing.append(f"{name} ({type(e).__name__}: {e})")
print(json.dumps({"missing": missing, "versions": versions}))
"""


def check_peer(peer_python: str, rows) -> dict:
  """The peer packages' versions; exits with status 2 and one line when the peer
  python cannot run or lacks one of them."""
  needed = sorted({m for row in rows for m in PEER_MODULES[row]},
                  key=lambda m: (m != "torch", m))
  try:
    out = subprocess.run([peer_python, "-c", _CHECK, *needed], capture_output=True,
                         text=True, timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
  except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
    print(f"error: the peer python {peer_python} does not run ({type(e).__name__}); it "
          f"needs {', '.join(needed)}: {INSTALL_HINT}.", file=sys.stderr)
    sys.exit(2)
  if result["missing"]:
    names = ", ".join(m.split(" ")[0] for m in result["missing"])
    print(f"error: the peer python {peer_python} cannot import {names} (needed by "
          f"--rows={','.join(rows)}): {INSTALL_HINT}.", file=sys.stderr)
    sys.exit(2)
  return result["versions"]


# ---------------------------------------------------------------------------------------
# The jaxgen side (this process). Each builder returns (step, info): step(iters) runs
# that many iterations and returns when their results are computed. JAX and jaxgen are
# imported inside the functions of this side: this file also runs as the peer child
# (``--child``), in a python that has torch and the peers but need not have either.

def _benchmarking():
  """jaxgen.benchmarking (imported here: see above)."""
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  from jaxgen import benchmarking
  return benchmarking


def jaxgen_ddpm_unet_train(ctx):
  bm = _benchmarking()
  run, info = bm.train_step("configs/ddpm_cifar10.py:paper", DDPM_BATCH, root=REPO)
  return run, {"params": bm.count_params(info["params"]), "compile_s": info["compile_s"]}


def jaxgen_ddpm_unet_forward(ctx):
  bm = _benchmarking()
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jaxgen import build, config_file
  config = config_file.load("configs/ddpm_cifar10.py:paper", root=REPO)
  trainer = build.make_trainer(config)
  params = jax.jit(trainer.init_state)(jax.random.key(0)).params
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(-1, 1, (DDPM_BATCH, 32, 32, 3)).astype(np.float32))
  t = jnp.asarray(rng.integers(0, 1000, DDPM_BATCH).astype(np.int32))
  fwd = jax.jit(lambda p, x, t: trainer.apply(p, x, t, train=False))
  start = time.perf_counter()
  compiled = fwd.lower(params, x, t).compile()
  compile_s = time.perf_counter() - start

  def run(iters):
    out = None
    for _ in range(iters):
      out = compiled(params, x, t)
    jax.block_until_ready(out)

  return run, {"params": bm.count_params(params), "compile_s": compile_s}


def jaxgen_dcgan_train(ctx):
  bm = _benchmarking()
  run, info = bm.train_step("configs/dcgan_celeba.py:paper", DCGAN_BATCH, root=REPO)
  p, count = info["params"], bm.count_params
  return run, {"params": count(p), "compile_s": info["compile_s"],
               "detail": f"G {count(p['generator']):,} + D {count(p['discriminator']):,}"}


def _inception_images():
  import numpy as np
  s = INCEPTION_IMAGE_SIZE
  return np.random.default_rng(0).uniform(0, 1, (NUM_INCEPTION_IMAGES, s, s, 3)
                                          ).astype(np.float32)


def jaxgen_inception_features(ctx):
  bm = _benchmarking()
  from jaxgen.metrics import features
  net = features.get("inception", weights=ctx["inception_weights"], mode="pytorch-fid",
                     batch_size=FEATURE_BATCH)
  net.progress = False
  images = _inception_images()

  def run(iters):
    for _ in range(iters):
      net(images)  # returns host arrays: the work is done

  params = {k: v for k, v in net.variables["params"].items() if k != "fc"}
  return run, {"params": bm.count_params(params),
               "detail": "jaxgen counts without fc (2048x1008), which its IS logits use"}


def jaxgen_clip_image_tower(ctx):
  bm = _benchmarking()
  import functools
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jaxgen.metrics import clip_score
  from jaxgen.models import clip
  config = clip.VIT_B_32
  s = config.image_size
  init = functools.partial(clip.CLIP(config).init, method=clip.CLIP.encode_image)
  variables = jax.jit(init)(jax.random.key(0), jnp.zeros((1, s, s, 3)))
  pixels = jnp.asarray(np.random.default_rng(0).normal(
      size=(FEATURE_BATCH, s, s, 3)).astype(np.float32))
  fwd = jax.jit(functools.partial(clip_score.image_features, config=config))
  start = time.perf_counter()
  compiled = fwd.lower(variables, pixels).compile()
  compile_s = time.perf_counter() - start

  def run(iters):
    out = None
    for _ in range(iters):
      out = compiled(variables, pixels)
    jax.block_until_ready(out)

  p = variables["params"]
  tower = {k: v for k, v in p.items() if k in ("vision_model", "visual_projection")}
  return run, {"params": bm.count_params(tower), "compile_s": compile_s}


def _sd_inputs():
  import numpy as np
  rng = np.random.default_rng(0)
  return (rng.normal(size=(SD_BATCH, SD_LATENT, SD_LATENT, 4)).astype(np.float32),
          np.full((SD_BATCH,), 500, np.int32),
          rng.normal(size=(SD_BATCH, *SD_CONTEXT)).astype(np.float32))


def jaxgen_sd_unet_step(ctx):
  bm = _benchmarking()
  import dataclasses
  import jax
  import numpy as np
  from jaxgen.models import ldm_unet
  config = dataclasses.replace(ldm_unet.SD_V1, use_checkpoint=False)  # inference
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(0, 0.02, s.shape).astype(np.float32),
                        ldm_unet.param_shapes(config))
  params = jax.device_put(params)
  x, t, context = (jax.device_put(a) for a in _sd_inputs())
  model = ldm_unet.UNetModel(config)
  fwd = jax.jit(lambda p, x, t, c: model.apply({"params": p}, x, t, c))
  start = time.perf_counter()
  compiled = fwd.lower(params, x, t, context).compile()
  compile_s = time.perf_counter() - start

  def run(iters):
    out = None
    for _ in range(iters):
      out = compiled(params, x, t, context)
    jax.block_until_ready(out)

  return run, {"params": bm.count_params(params), "compile_s": compile_s}


JAXGEN = {"ddpm_unet_train": jaxgen_ddpm_unet_train,
          "ddpm_unet_forward": jaxgen_ddpm_unet_forward,
          "dcgan_train": jaxgen_dcgan_train,
          "inception_features": jaxgen_inception_features,
          "clip_image_tower": jaxgen_clip_image_tower,
          "sd_unet_step": jaxgen_sd_unet_step}


def write_inception_weights(directory: str) -> str:
  """The fixture's random FID Inception weights as a .pth, written without torch."""
  import importlib.util
  from jaxgen.weights import torch_pickle
  path = os.path.join(REPO, "tests", "fixtures", "inception_random_weights.py")
  spec = importlib.util.spec_from_file_location("inception_random_weights", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  out = os.path.join(directory, "inception_random.pth")
  torch_pickle.save_state_dict(out, module.random_state_dict())
  return out


# ---------------------------------------------------------------------------------------
# The PyTorch side (the child process; imports torch and the peers, never jaxgen).

def _torch_count(*modules) -> int:
  return sum(p.numel() for m in modules for p in m.parameters())


def _diffusers():
  """diffusers, imported where torchvision is installed but does not load with this
  torch (diffusers imports transformers, which imports torchvision when it is there;
  these rows need neither)."""
  import importlib
  try:
    importlib.import_module("torchvision")
  except Exception:  # an operator registration error, not an ImportError
    sys.modules["torchvision"] = None
  import diffusers
  return diffusers


def _diffusers_unet():
  UNet2DModel = _diffusers().UNet2DModel
  return UNet2DModel(
      sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
      layers_per_block=2,
      down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
      up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
      dropout=0.1, attention_head_dim=None, norm_eps=1e-6, downsample_padding=0,
      flip_sin_to_cos=False, freq_shift=1)


def peer_ddpm_unet_train(ctx):
  import torch
  import torch.nn.functional as F
  model = _diffusers_unet().train()
  ema = [p.detach().clone() for p in model.parameters()]
  opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999), eps=1e-8)
  alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
  x0 = torch.rand(DDPM_BATCH, 3, 32, 32) * 2 - 1

  def step():
    t = torch.randint(0, 1000, (DDPM_BATCH,))
    noise = torch.randn_like(x0)
    a = alpha_bar[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    loss = F.mse_loss(model(xt, t).sample, noise)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
      for e, p in zip(ema, model.parameters()):
        e.lerp_(p, 1 - 0.9999)

  def run(iters):
    for _ in range(iters):
      step()

  return run, {"params": _torch_count(model)}


def peer_ddpm_unet_forward(ctx):
  import torch
  model = _diffusers_unet().eval()
  x = torch.rand(DDPM_BATCH, 3, 32, 32) * 2 - 1
  t = torch.randint(0, 1000, (DDPM_BATCH,))

  def run(iters):
    with torch.inference_mode():
      for _ in range(iters):
        model(x, t)

  return run, {"params": _torch_count(model)}


def _dcgan_modules(nz=100, ngf=64, ndf=64, nc=3):
  """pytorch/examples dcgan's two networks for 64x64 images, with its weights_init."""
  from torch import nn

  def up(cin, cout, stride, pad):
    return [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(True)]

  def down(cin, cout, norm=True):
    return ([nn.Conv2d(cin, cout, 4, 2, 1, bias=False)] + ([nn.BatchNorm2d(cout)] if norm
                                                            else [])
            + [nn.LeakyReLU(0.2, inplace=True)])

  generator = nn.Sequential(*up(nz, ngf * 8, 1, 0), *up(ngf * 8, ngf * 4, 2, 1),
                            *up(ngf * 4, ngf * 2, 2, 1), *up(ngf * 2, ngf, 2, 1),
                            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
  discriminator = nn.Sequential(*down(nc, ndf, norm=False), *down(ndf, ndf * 2),
                                *down(ndf * 2, ndf * 4), *down(ndf * 4, ndf * 8),
                                nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

  def init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
      nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
      nn.init.normal_(m.weight, 1.0, 0.02)
      nn.init.zeros_(m.bias)

  generator.apply(init)
  discriminator.apply(init)
  return generator, discriminator


def peer_dcgan_train(ctx):
  import torch
  nz = 100
  net_g, net_d = _dcgan_modules(nz=nz)
  bce = torch.nn.BCELoss()
  opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  real = torch.rand(DCGAN_BATCH, 3, 64, 64) * 2 - 1
  ones, zeros = torch.ones(DCGAN_BATCH), torch.zeros(DCGAN_BATCH)

  def step():
    # D: real then fake (detached), one Adam step; G: through D on the same fakes.
    net_d.zero_grad()
    bce(net_d(real).view(-1), ones).backward()
    fake = net_g(torch.randn(DCGAN_BATCH, nz, 1, 1))
    bce(net_d(fake.detach()).view(-1), zeros).backward()
    opt_d.step()
    net_g.zero_grad()
    bce(net_d(fake).view(-1), ones).backward()
    opt_g.step()

  def run(iters):
    for _ in range(iters):
      step()

  return run, {"params": _torch_count(net_g, net_d),
               "detail": f"G {_torch_count(net_g):,} + D {_torch_count(net_d):,}"}


def peer_inception_features(ctx):
  import torch
  from pytorch_fid import inception as fid_inception
  state = torch.load(ctx["inception_weights"], map_location="cpu")
  # pytorch-fid builds its FID Inception and then loads the released weights from a
  # URL; here it gets the same random state dict as the jaxgen side instead.
  fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state
  model = fid_inception.InceptionV3([3]).eval()
  images = torch.from_numpy(_inception_images().transpose(0, 3, 1, 2).copy())

  def run(iters):
    with torch.inference_mode():
      for _ in range(iters):
        for i in range(0, len(images), FEATURE_BATCH):
          model(images[i:i + FEATURE_BATCH])[0].squeeze(-1).squeeze(-1).numpy()

  return run, {"params": _torch_count(model)}


def peer_clip_image_tower(ctx):
  import torch
  from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
  config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, projection_dim=512,
                            num_hidden_layers=12, num_attention_heads=12, num_channels=3,
                            image_size=224, patch_size=32, hidden_act="quick_gelu",
                            layer_norm_eps=1e-5)
  model = CLIPVisionModelWithProjection(config).eval()
  pixels = torch.randn(FEATURE_BATCH, 3, 224, 224)

  def run(iters):
    with torch.inference_mode():
      for _ in range(iters):
        model(pixel_values=pixels).image_embeds

  return run, {"params": _torch_count(model)}


def peer_sd_unet_step(ctx):
  import torch
  model = _diffusers().UNet2DConditionModel(
      sample_size=SD_LATENT, cross_attention_dim=SD_CONTEXT[1], attention_head_dim=8).eval()
  x, t, context = _sd_inputs()
  x, t, context = (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(),
                   torch.from_numpy(t).long(), torch.from_numpy(context))

  def run(iters):
    with torch.inference_mode():
      for _ in range(iters):
        model(x, t, encoder_hidden_states=context).sample

  return run, {"params": _torch_count(model)}


PEER = {"ddpm_unet_train": peer_ddpm_unet_train,
        "ddpm_unet_forward": peer_ddpm_unet_forward,
        "dcgan_train": peer_dcgan_train,
        "inception_features": peer_inception_features,
        "clip_image_tower": peer_clip_image_tower,
        "sd_unet_step": peer_sd_unet_step}


# ---------------------------------------------------------------------------------------
# Both sides answer the same requests: setup (build and warm up), round, free.

class Side:
  """A row's model on one side, built by ``builders[row](ctx)``."""

  def __init__(self, builders, before_first=None):
    self.builders, self.before_first = builders, before_first
    self.run = None

  def handle(self, request: dict) -> dict:
    op = request["op"]
    if op == "setup":
      if self.before_first:
        self.before_first()
        self.before_first = None
      t = time.perf_counter()
      self.run, info = self.builders[request["row"]](request.get("ctx", {}))
      compile_s = info.pop("compile_s", 0.0)  # timed by the builder, counted as warm-up
      build_s = time.perf_counter() - t - compile_s
      t = time.perf_counter()
      self.run(request["warmup"])
      warmup_s = time.perf_counter() - t + compile_s
      return {"ok": True, "build_s": build_s, "warmup_s": warmup_s, **info}
    if op == "round":
      t = time.perf_counter()
      self.run(request["iters"])
      return {"ok": True, "seconds": time.perf_counter() - t}
    if op == "free":
      self.run = None
      import gc
      gc.collect()
      return {"ok": True}
    raise ValueError(f"unknown request {op!r}")

  def request(self, request: dict) -> dict:
    try:
      return self.handle(request)
    except Exception as e:  # reported to the parent, which goes on with other rows
      traceback.print_exc()
      return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def child_main(threads: int):
  """The peer process: JSON requests on stdin, one JSON reply per line on the
  original stdout (anything else printed goes to stderr)."""
  channel = os.fdopen(os.dup(1), "w", buffering=1)
  os.dup2(2, 1)
  sys.stdout = sys.stderr

  def set_threads():
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)

  side = Side(PEER, before_first=set_threads)
  for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "quit":
      break
    channel.write(json.dumps(side.request(request)) + "\n")


class Peer:
  """The child process, one request at a time."""

  def __init__(self, python: str, threads: int):
    self.proc = subprocess.Popen([python, os.path.abspath(__file__), "--child",
                                  f"--threads={threads}"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, bufsize=1)

  def request(self, request: dict) -> dict:
    self.proc.stdin.write(json.dumps(request) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f"the peer process ended (status {self.proc.wait()}); its "
                         f"error is above")
    return json.loads(line)

  def close(self):
    try:
      self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
      self.proc.stdin.close()
    except OSError:
      pass
    self.proc.wait(timeout=60)


class RoundFailed(Exception):
  """A side's error in a round of ``bench_row``."""


def bench_row(row: str, jaxgen: Side, peer: Peer, ctx: dict, rounds: int, iters: int,
              warmup: int) -> dict:
  result = {"row": row, "batch": {"inception_features": FEATURE_BATCH,
                                  "clip_image_tower": FEATURE_BATCH,
                                  "dcgan_train": DCGAN_BATCH,
                                  "sd_unet_step": SD_BATCH}.get(row, DDPM_BATCH),
            "images_per_iter": IMAGES_PER_ITER[row], "iters": iters, "rounds": rounds,
            "warmup_iters": warmup}
  setup = {"op": "setup", "row": row, "warmup": warmup, "ctx": ctx}
  mine = jaxgen.request(setup)
  if not mine["ok"]:
    return {**result, "note": f"jaxgen failed: {mine['error']}"}
  theirs = peer.request(setup)
  if not theirs["ok"]:
    jaxgen.request({"op": "free"})
    return {**result, "note": f"peer failed: {theirs['error']}"}
  for key in ("params", "build_s", "warmup_s", "detail"):
    result[f"jaxgen_{key}"], result[f"peer_{key}"] = mine.get(key), theirs.get(key)
  detail = lambda r: f" ({r['detail']})" if r.get("detail") else ""
  print(f"{row}: built; parameters jaxgen {mine['params']:,}{detail(mine)}, peer "
        f"{theirs['params']:,}{detail(theirs)}; warm-up jaxgen {mine['warmup_s']:.1f} s, "
        f"peer {theirs['warmup_s']:.1f} s", file=sys.stderr, flush=True)
  request = {"op": "round", "row": row, "iters": iters}

  def one_round(name, side):
    done = []

    def measure():
      reply = side.request(request)
      if not reply["ok"]:
        raise RoundFailed(f"{name} failed in round {len(done)}: {reply['error']}")
      done.append(reply["seconds"])
      return reply["seconds"]
    return measure

  def report(r, times):
    print(f"{row}: round {r + 1}/{rounds}: jaxgen {times['jaxgen'][-1]:.3f} s, peer "
          f"{times['peer'][-1]:.3f} s for {iters} iteration(s)", file=sys.stderr,
          flush=True)

  try:
    times = _benchmarking().alternating_rounds(
        {"jaxgen": one_round("jaxgen", jaxgen), "peer": one_round("peer", peer)}, rounds,
        after_round=report)
  except RoundFailed as e:
    return {**result, "note": str(e)}
  finally:
    jaxgen.request({"op": "free"})
    peer.request({"op": "free"})
  jax_s, peer_s = times["jaxgen"], times["peer"]
  result.update(summarize(jax_s, peer_s, iters * IMAGES_PER_ITER[row]))
  result["jaxgen_rounds_s"], result["peer_rounds_s"] = jax_s, peer_s
  notes = [params_note(mine["params"], theirs["params"])]
  result["note"] = "; ".join(filter(None, notes))
  return result


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--rows", default=",".join(ROWS),
                 help=f"comma-separated, of: {', '.join(ROWS)}")
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--iters", default="",
                 help="iterations per round, for every row (default per row: " +
                      ", ".join(f"{k} {v}" for k, v in DEFAULT_ITERS.items()) + ")")
  p.add_argument("--warmup", type=int, default=2,
                 help="warm-up iterations per side and row, after compiling (untimed "
                      "in the rounds, reported apart)")
  p.add_argument("--threads", type=int, default=os.cpu_count(),
                 help="torch.set_num_threads in the peer (default: all cores)")
  p.add_argument("--peer_python", default=sys.executable,
                 help="the python that runs the PyTorch side (needs torch and the "
                      "peers: pip install -e '.[peers]')")
  p.add_argument("--json_out", default="", help="also write the JSON result here")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  a.rows = [r for r in a.rows.split(",") if r]
  unknown = [r for r in a.rows if r not in ROWS]
  if unknown or not a.rows:
    p.error(f"--rows: unknown {', '.join(unknown) or '(none given)'}; use of "
            f"{', '.join(ROWS)}")
  if a.rounds < 1 or a.warmup < 0 or a.threads < 1:
    p.error("--rounds and --threads must be >= 1, --warmup >= 0")
  try:
    a.iters = int(a.iters) if a.iters else 0
  except ValueError:
    p.error(f"--iters={a.iters!r} is not an integer")
  if a.iters < 0:
    p.error("--iters must be >= 1 (or empty for the per-row defaults)")
  return a


def main(argv=None):
  a = parse_args(argv)
  if a.child:
    child_main(a.threads)
    return
  versions = check_peer(a.peer_python, a.rows)
  bm = _benchmarking()  # jaxgen and JAX in this process only, not in the peer child
  from jaxgen import xla_options
  xla_options.configure_cpu()  # before JAX creates its CPU client
  import jax
  load_start = bm.load_averages()
  print(f"load averages (1, 5, 15 min) at start: {load_start}", flush=True)
  jaxgen = Side(JAXGEN)
  peer = Peer(a.peer_python, a.threads)
  rows = []
  with tempfile.TemporaryDirectory(prefix="compare_peers_") as tmp:
    ctx = {}
    if "inception_features" in a.rows:
      ctx["inception_weights"] = write_inception_weights(tmp)
    try:
      for row in a.rows:
        rows.append(bench_row(row, jaxgen, peer, ctx, a.rounds,
                              a.iters or DEFAULT_ITERS[row], a.warmup))
    finally:
      peer.close()
  load_end = bm.load_averages()
  print(format_table(rows))
  print(f"load averages (1, 5, 15 min) at end: {load_end}")
  out = {"rows": rows, "load_averages_start": load_start, "load_averages_end": load_end,
         "cpu_count": os.cpu_count(), "torch_threads": a.threads,
         "jax": jax.__version__, "jax_device": str(jax.devices()[0]),
         "peer_python": a.peer_python, "peer_versions": versions,
         "rounds": a.rounds, "warmup_iters": a.warmup}
  line = json.dumps(out)
  print(line)
  if a.json_out:
    with open(a.json_out, "w") as f:
      f.write(line + "\n")
  if any("failed" in r.get("note", "") for r in rows):
    sys.exit(1)


if __name__ == "__main__":
  main()
