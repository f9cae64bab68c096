"""jaxgen: deep generative models for images in JAX/Flax.

Entry point: ``python -m jaxgen.main --config=configs/<family>_<data>.py --workdir=DIR``.
"""
import os as _os

__version__ = "0.1.0"

# XLA's CPU backend can run dots, elementwise ops and reductions as YNNPACK fusions.
# Measured here (experiments/xla_cpu_flags.py, alternating rounds): the DDPM CIFAR-10
# U-Net train step 1.38x and the DCGAN step 1.19x faster, every parity test passing.
# Opt in with JAXGEN_YNN_FUSION=1 (off by default: the CycleGAN conformance run fails with it);
# XLA_FLAGS that set the option win. Before: jaxgen asked unless
# XLA reads the flags when JAX creates its CPU client, so this
# must come before the first computation; the option exists from jaxlib 0.10.
_YNN = "--xla_cpu_experimental_ynn_fusion_type"


def _ask_for_ynn_fusion():
  flags = _os.environ.get("XLA_FLAGS", "")
  if _YNN in flags or _os.environ.get("JAXGEN_YNN_FUSION", "0") != "1":
    return
  try:
    from jaxlib import version
    if tuple(int(p) for p in version.__version__.split(".")[:2]) < (0, 10):
      return
  except (ImportError, ValueError):
    return
  _os.environ["XLA_FLAGS"] = f"{flags} {_YNN}=dot,eltwise,reduce".strip()


_ask_for_ynn_fusion()
