"""What the discrete autoencoder families (VQ-VAE, the DALL-E dVAE) share: samples
decoded from the uniform prior over their codes, and the pictures of their codes.

A family mixes ``DiscreteAutoencoderPictures`` in beside ``OneOptimizerTrainer`` and
``stages.Autoencoder``; it provides ``grid`` (the (h, w) code grid), ``num_codes``,
``encode`` and ``decode``.
"""
from __future__ import annotations

import jax
import numpy as np

from jaxgen import viz


class DiscreteAutoencoderPictures:
  """``sample`` and ``visualize`` of a discrete autoencoder."""

  def sample(self, params, rng, num: int, inputs=None, frozen=None):
    """Decoded codes drawn from the uniform prior this stage is trained under (a
    learned prior over the codes is a later family's job: pixelcnn_prior, DALL-E)."""
    codes = jax.random.randint(rng, (num, *self.grid), 0, self.num_codes)
    return self.decode(params, codes)

  def visualize(self, state, rng, batch, frozen=None):
    """Samples, test images beside their reconstructions, the code grid as grey
    levels and the histogram of code use."""
    encode, decode = self.compiled(self.encode), self.compiled(self.decode)
    generate = self.compiled(self.generate, static_argnums=2)
    params, n = self.stage_params(state), self.config.train.num_samples
    x = batch["image"][:16]
    codes = encode(params, x)
    recon = np.asarray(decode(params, codes))
    pairs = np.stack([np.asarray(x), recon], 1).reshape(-1, *x.shape[1:])
    return {"samples": viz.grid(viz.to_uint8(generate(state, rng, n))),
            "reconstructions": viz.grid(viz.to_uint8(pairs), rows=4),
            "code_map": viz.code_map(np.asarray(codes), self.num_codes),
            "code_histogram": viz.usage_histogram(np.asarray(codes), self.num_codes)}
