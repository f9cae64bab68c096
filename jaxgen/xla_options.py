"""XLA's CPU options for jaxgen's entry points (``jaxgen.main``, the other command
lines, the experiment scripts), set before JAX creates its CPU client; importing
jaxgen itself changes nothing.

XLA's CPU backend can run dots as YNNPACK fusions (docs/results.md, "XLA CPU
options"). ``JAXGEN_YNN_FUSION`` picks the fusion types: ``dot`` (the default),
``all`` (dot, eltwise and reduce: XLA 0.10.2 rejects an elementwise fusion over a
column-major operand, as eigh's output, with "unsupported layout in YNN fusion"), or
``0`` for XLA's own defaults. An option already in ``XLA_FLAGS`` wins. The option
exists from jaxlib 0.10; older versions are left alone.
"""
import os

YNN = "--xla_cpu_experimental_ynn_fusion_type"
YNN_TYPES = {"dot": "dot", "all": "dot,eltwise,reduce", "0": None}


def configure_cpu() -> None:
  """Add the YNN fusion option to ``XLA_FLAGS`` (once; before JAX's first use)."""
  flags = os.environ.get("XLA_FLAGS", "")
  choice = os.environ.get("JAXGEN_YNN_FUSION", "dot")
  if choice not in YNN_TYPES:
    raise ValueError(f"JAXGEN_YNN_FUSION={choice!r}: use one of {', '.join(YNN_TYPES)}.")
  if YNN in flags or YNN_TYPES[choice] is None:
    return
  try:
    from jaxlib import version  # jaxlib, not jax: no backend is created here
    if tuple(int(p) for p in version.__version__.split(".")[:2]) < (0, 10):
      return
  except (ImportError, ValueError):
    return
  os.environ["XLA_FLAGS"] = f"{flags} {YNN}={YNN_TYPES[choice]}".strip()
