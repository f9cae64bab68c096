"""Peak signal-to-noise ratio: 10 log10(max_val^2 / MSE) per image, in dB."""
import jax.numpy as jnp


def psnr(mse, max_val: float = 1.0):
  """PSNR in dB from per-image mean squared errors ``mse`` (any shape) of images whose
  values span ``max_val``; an exact match (MSE 0) reads as 100 dB at max_val 1."""
  return 10.0 * jnp.log10(max_val ** 2 / jnp.maximum(mse, 1e-10))
