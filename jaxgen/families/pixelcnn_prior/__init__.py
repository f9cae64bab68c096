"""The VQ-VAE paper's PixelCNN prior over a frozen VQ-VAE's codes: ``trainer.py``
(the pixelcnn family's networks over codes). Configs: configs/pixelcnn_prior_mnist.py.
Tests: tests/test_pixelcnn_prior.py."""
