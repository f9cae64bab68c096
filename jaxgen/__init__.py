"""jaxgen: deep generative models for images in JAX/Flax.

Entry point: ``python -m jaxgen.main --config=configs/<family>_<data>.py --workdir=DIR``.
"""
import os as _os

__version__ = "0.1.0"

# XLA's CPU backend can run dots as YNNPACK fusions. Measured here
# (experiments/xla_cpu_flags.py, alternating rounds, quiet machine): the DCGAN paper
# step x1.27 and the DDPM CIFAR-10 U-Net train step x1.05 faster. JAXGEN_YNN_FUSION
# picks the fusion types: "dot" (the default), "all" (dot,eltwise,reduce: x1.31 and
# x1.21, but XLA 0.10.2 rejects an elementwise fusion over a column-major operand,
# as eigh's output, with "unsupported layout in YNN fusion"), or "0" for XLA's own
# defaults. XLA_FLAGS that set the option win. XLA reads its flags when JAX creates
# its CPU client, so this runs on import; the option exists from jaxlib 0.10.
_YNN = "--xla_cpu_experimental_ynn_fusion_type"
_YNN_TYPES = {"dot": "dot", "all": "dot,eltwise,reduce", "0": None}


def _ask_for_ynn_fusion():
  flags = _os.environ.get("XLA_FLAGS", "")
  choice = _os.environ.get("JAXGEN_YNN_FUSION", "dot")
  if choice not in _YNN_TYPES:
    raise ValueError(f"JAXGEN_YNN_FUSION={choice!r}: use one of {', '.join(_YNN_TYPES)}.")
  if _YNN in flags or _YNN_TYPES[choice] is None:
    return
  try:
    from jaxlib import version
    if tuple(int(p) for p in version.__version__.split(".")[:2]) < (0, 10):
      return
  except (ImportError, ValueError):
    return
  _os.environ["XLA_FLAGS"] = f"{flags} {_YNN}={_YNN_TYPES[choice]}".strip()


_ask_for_ynn_fusion()
