"""The VQ-VAE (van den Oord et al. 2017) in the layout of sonnet's CIFAR-10 example.

``Encoder``: two 4x4 stride-2 convolutions (num_hiddens / 2, num_hiddens), a 3x3
convolution, a residual stack and a 1x1 projection to ``embedding_dim`` (sonnet's
``pre_vq_conv1``). ``Decoder``: a 3x3 convolution, a residual stack and two 4x4 stride-2
transposed convolutions back to the image. With num_hiddens 128, 2 residual layers of
32 hidden channels, K = 512 and D = 64 on 32x32x3 images this is 695,491 parameters.
The codebook and the quantiser are jaxgen/models/quantizer.py.
"""
from __future__ import annotations

import flax.linen as nn


class ResidualStack(nn.Module):
  """Sonnet's residual stack: per layer x += conv1x1(relu(conv3x3(relu(x)))); a final
  ReLU."""
  num_hiddens: int
  num_layers: int
  num_residual_hiddens: int

  @nn.compact
  def __call__(self, x):
    for i in range(self.num_layers):
      h = nn.Conv(self.num_residual_hiddens, (3, 3), padding="SAME",
                  name=f"res3x3_{i}")(nn.relu(x))
      h = nn.Conv(self.num_hiddens, (1, 1), name=f"res1x1_{i}")(nn.relu(h))
      x = x + h
    return nn.relu(x)


class Encoder(nn.Module):
  num_hiddens: int
  num_residual_layers: int
  num_residual_hiddens: int
  embedding_dim: int
  num_downsamples: int = 2

  @nn.compact
  def __call__(self, x):
    h = x
    for i in range(self.num_downsamples):
      width = self.num_hiddens // 2 if i < self.num_downsamples - 1 else self.num_hiddens
      h = nn.relu(nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME",
                          name=f"down_{i}")(h))
    h = nn.Conv(self.num_hiddens, (3, 3), padding="SAME", name="conv")(h)
    h = ResidualStack(self.num_hiddens, self.num_residual_layers,
                      self.num_residual_hiddens, name="residual")(h)
    return nn.Conv(self.embedding_dim, (1, 1), name="pre_vq_conv")(h)


class Decoder(nn.Module):
  num_hiddens: int
  num_residual_layers: int
  num_residual_hiddens: int
  out_channels: int
  num_upsamples: int = 2

  @nn.compact
  def __call__(self, z):
    h = nn.Conv(self.num_hiddens, (3, 3), padding="SAME", name="conv")(z)
    h = ResidualStack(self.num_hiddens, self.num_residual_layers,
                      self.num_residual_hiddens, name="residual")(h)
    for i in range(self.num_upsamples):
      last = i == self.num_upsamples - 1
      width = self.out_channels if last else self.num_hiddens // 2
      h = nn.ConvTranspose(width, (4, 4), strides=(2, 2), padding="SAME",
                           name=f"up_{i}")(h)
      if not last:
        h = nn.relu(h)
    return h
