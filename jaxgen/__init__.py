"""jaxgen: deep generative models for images in JAX/Flax.

Entry point: ``python -m jaxgen.main --config=configs/<family>_<data>.py --workdir=DIR``.
"""
__version__ = "0.1.0"
