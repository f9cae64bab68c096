"""Other projects' weights: where the files come from (a registry of known files, a
cache, checksums) and the readers that turn a file into a jaxgen stage.

The modules of this package read one project's files each: ``torch_pickle`` (the
restricted PyTorch pickle reader they share), ``stylegan2`` (NVlabs' pickles),
``dvae_openai`` (OpenAI's dVAE), ``junyanz`` (the Pix2Pix/CycleGAN generators),
``clip`` (Hugging Face's CLIP), ``ldm`` (CompVis' latent diffusion) and
``stable_diffusion`` (Stable Diffusion's diffusers folders and CompVis checkpoints). A
reader that can stand in for a stage role registers with ``@register_reader`` in its
own module (``readers_for(role)`` finds it).

``resolve(name)`` returns a local path to a known file: an explicit ``path`` if given,
else the cached copy, else a download into the cache. Every file is checked against its
SHA-256 (the full digest, or the 8-hex prefix that torch.hub puts in file names) before
use; a file with no published checksum is pinned to the digest of its first download
(kept beside it as ``FILE.sha256``), so later corruption is still caught. A missing
file that cannot be downloaded gives an error saying where to put it. The cache is
``$JAXGEN_CACHE`` or ``~/.cache/jaxgen``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import tempfile
import urllib.request
from typing import Callable

from jaxgen import registry
from jaxgen.errors import UserError


@dataclasses.dataclass(frozen=True)
class KnownFile:
  filename: str
  url: str
  sha256: str | None  # the hex digest or a prefix (torch.hub's convention); None: none
  description: str    # is published, so the first download's digest is pinned


KNOWN: dict[str, KnownFile] = {
    "inception": KnownFile(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "6726825d",
        "pytorch-fid's FID Inception-v3 weights (ported from the 2015-12-05 TF graph)"),
    "clip_vit_b32": KnownFile(
        "clip-vit-base-patch32-model.safetensors",
        "https://huggingface.co/openai/clip-vit-base-patch32/resolve/main/"
        "model.safetensors",
        None,  # ~605 MB of float32; no digest published that we could pin
        "OpenAI CLIP ViT-B/32 weights (Hugging Face CLIPModel, safetensors)"),
    "clip_bpe": KnownFile(
        "bpe_simple_vocab_16e6.txt.gz",
        "https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz",
        "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
        "CLIP's byte-level BPE vocabulary (49,408 tokens)"),
    "dalle_encoder": KnownFile(
        "dall_e_encoder.pkl", "https://cdn.openai.com/dall-e/encoder.pkl",
        None,  # OpenAI publishes no digest; the first download's is pinned
        "OpenAI DALL-E dVAE encoder weights (a pickled dall_e.encoder.Encoder)"),
    "dalle_decoder": KnownFile(
        "dall_e_decoder.pkl", "https://cdn.openai.com/dall-e/decoder.pkl",
        None,  # OpenAI publishes no digest; the first download's is pinned
        "OpenAI DALL-E dVAE decoder weights (a pickled dall_e.decoder.Decoder)"),
}


class WeightsError(UserError, RuntimeError):
  """A weights file is missing, cannot be downloaded, or fails its checksum."""


def cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("JAXGEN_CACHE",
                                     pathlib.Path.home() / ".cache" / "jaxgen"))


def sha256(path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def verify(path, expected: str) -> None:
  """Raises WeightsError unless the SHA-256 of ``path`` starts with ``expected``."""
  if len(expected) < 8:
    raise ValueError(f"A checksum prefix needs at least 8 hex digits, got {expected!r}.")
  actual = sha256(path)
  if not actual.startswith(expected.lower()):
    raise WeightsError(
        f"{path} has SHA-256 {actual}, expected {expected}...: the file is corrupt or "
        "truncated (an interrupted download?) or is a different file. Delete it and "
        "download it again.")


def resolve(name: str, path=None, download: bool = True) -> pathlib.Path:
  """A verified local copy of the known file ``name``.

  With ``path``, that file is used as given (any file of the same format: its checksum
  is not compared with the registry's, since it may hold other weights).
  """
  if name not in KNOWN:
    raise KeyError(f"Unknown weights {name!r}; known: {', '.join(sorted(KNOWN))}.")
  known = KNOWN[name]
  if path is not None:
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
      raise WeightsError(f"Weights file {path} does not exist.")
    return path
  target = cache_dir() / known.filename
  if not target.is_file():
    if not download:
      raise WeightsError(_missing_message(known, target, "downloading is disabled"))
    _download(known, target)
  verify(target, _expected_digest(known, target))
  return target


def _expected_digest(known: KnownFile, target: pathlib.Path) -> str:
  if known.sha256:
    return known.sha256
  pin = target.with_name(target.name + ".sha256")
  if not pin.is_file():  # first use: pin the digest of what we have
    pin.write_text(sha256(target) + "\n")
  return pin.read_text().strip()


def _missing_message(known: KnownFile, target, why: str) -> str:
  return (f"The {known.description} are not available ({why}). Download\n  {known.url}\n"
          f"on a machine with internet access and put the file at\n  {target}\n"
          "(the cache directory is $JAXGEN_CACHE, default ~/.cache/jaxgen), or pass its "
          "path with --weights.")


def _download(known: KnownFile, target: pathlib.Path) -> None:
  target.parent.mkdir(parents=True, exist_ok=True)
  # Download next to the target and rename, so an interrupted download leaves no file
  # that a later run would take for the real one.
  fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
  try:
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(known.url, timeout=60) as r:
      shutil.copyfileobj(r, out)
    if known.sha256:
      verify(tmp, known.sha256)
    os.replace(tmp, target)
  except OSError as e:  # URLError and socket timeouts are OSErrors
    raise WeightsError(_missing_message(known, target, f"download failed: {e}")) from e
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


# --- StyleGAN2-ADA official networks (NVlabs), read by jaxgen/weights/stylegan2.py
# without running the source code they carry. NVIDIA publishes no digests: the first
# download's is pinned.
_SG2ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
KNOWN["stylegan2_ada_ffhq"] = KnownFile(
    "stylegan2-ada-ffhq.pkl", _SG2ADA + "ffhq.pkl", None,
    "NVlabs StyleGAN2-ADA FFHQ 1024x1024 (config F networks: G, D, G_ema)")
KNOWN["stylegan2_ada_cifar10"] = KnownFile(
    "stylegan2-ada-cifar10.pkl", _SG2ADA + "cifar10.pkl", None,
    "NVlabs StyleGAN2-ADA conditional CIFAR-10 32x32 (paper FID 2.42)")


# --- junyanz/pytorch-CycleGAN-and-pix2pix released generators (latest_net_G.pth state
# dicts), read by jaxgen/translate.py. No digests are published: the first download's
# is pinned.
_PIX2PIX = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/"
_CYCLEGAN = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/"
for _name, _what in (("facades_label2photo", "facades labels -> photos"),
                     ("edges2shoes", "edges -> shoes"), ("map2sat", "maps -> aerial"),
                     ("sat2map", "aerial -> maps")):
  KNOWN[f"pix2pix_{_name}"] = KnownFile(
      f"pix2pix_{_name}.pth", f"{_PIX2PIX}{_name}.pth", None,
      f"Pix2Pix unet_256 generator weights ({_what})")
for _name, _what in (("horse2zebra", "horse -> zebra"), ("zebra2horse", "zebra -> horse"),
                     ("monet2photo", "Monet -> photo"), ("style_monet", "photo -> Monet"),
                     ("summer2winter_yosemite", "summer -> winter")):
  KNOWN[f"cyclegan_{_name}"] = KnownFile(
      f"cyclegan_{_name}.pth", f"{_CYCLEGAN}{_name}.pth", None,
      f"CycleGAN resnet_9blocks generator weights ({_what})")


# --- Stable Diffusion's released CompVis checkpoints (jaxgen/weights/stable_diffusion.py
# reads them and diffusers folders; its REGISTERED gives each one's architecture). The
# SHA-256 digests are those that several public download scripts and model catalogues
# agree on; v2-1_512-ema-pruned's .safetensors has none we could confirm, so the .ckpt is
# registered. The repositories ask users to accept a licence (and log in) before
# downloading.
_HF = "https://huggingface.co/"
for _name, _repo, _file, _digest, _what in (
    ("sd_v1_4", "CompVis/stable-diffusion-v-1-4-original", "sd-v1-4.ckpt",
     "fe4efff1e174c627256e44ec2991ba279b3816e364b49f9be2abc0b3ff3f8556", "v1.4"),
    ("sd_v1_5", "stable-diffusion-v1-5/stable-diffusion-v1-5",
     "v1-5-pruned-emaonly.safetensors",
     "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa", "v1.5, EMA"),
    ("sd_v1_5_ckpt", "stable-diffusion-v1-5/stable-diffusion-v1-5",
     "v1-5-pruned-emaonly.ckpt",
     "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516", "v1.5, EMA"),
    ("sd_v2_base", "stabilityai/stable-diffusion-2-base", "512-base-ema.ckpt",
     "d635794c1fedfdfa261e065370bea59c651fc9bfa65dc6d67ad29e11869a1824", "v2.0 512"),
    ("sd_v2_768", "stabilityai/stable-diffusion-2", "768-v-ema.ckpt",
     "bfcaf0755797b0c30eb00a3787e8b423eb1f5decd8de76c4d824ac2dd27e139f",
     "v2.0 768, v-prediction"),
    ("sd_v2_1_base", "stabilityai/stable-diffusion-2-1-base", "v2-1_512-ema-pruned.ckpt",
     "88ecb782561455673c4b78d05093494b9c539fc6bfc08f3a9a4a0dd7b0b10f36", "v2.1 512"),
    ("sd_v2_1_768", "stabilityai/stable-diffusion-2-1", "v2-1_768-ema-pruned.safetensors",
     "dcd690123cfc64383981a31d955694f6acf2072a80537fdb612c8e58ec87a8ac",
     "v2.1 768, v-prediction")):
  KNOWN[_name] = KnownFile(_file, f"{_HF}{_repo}/resolve/main/{_file}", _digest,
                           f"Stable Diffusion {_what} weights (CompVis checkpoint, {_repo})")


# --- weights files as stages ---------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Reader:
  """Reads a weights file as a frozen stage: ``load(path, spec) -> (stage object,
  parameters)``, the stage object providing the protocol class ``provides``
  (``families.base.Autoencoder``, ``ConditioningEncoder``); ``accepts(path)`` says
  whether the file is one of its files; ``what`` says which files, for messages."""
  name: str
  provides: type
  accepts: Callable
  load: Callable
  what: str


READERS = registry.Registry("weights-file reader",
                            lambda: registry.package_modules(__name__))


def register_reader(name: str, *, provides: type, accepts: Callable, what: str):
  """Decorator of a ``load(path, spec)`` function: register it as a ``Reader``."""
  def add(load):
    READERS.register(name)(Reader(name, provides, accepts, load, what))
    return load
  return add


def readers_for(role) -> list[Reader]:
  """The readers whose stages provide ``role``."""
  return [r for _, r in READERS.items() if role is None or issubclass(r.provides, role)]
