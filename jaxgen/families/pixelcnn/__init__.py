"""PixelCNN, Gated PixelCNN and PixelCNN++: ``trainer.py`` (the likelihoods, the
sequential sampler, completion), ``networks.py`` (masked convolutions, gated
layers), ``pixelcnnpp.py`` (PixelCNN++'s network), ``fast_sampling.py`` (PixelCNN++'s
cached sampler, the default), ``losses.py`` (the discretised
mixture of logistics), ``complete.py`` (the completion command). Configs:
configs/{pixelcnn,gated_pixelcnn,pixelcnnpp}_*.py. Tests: tests/test_pixelcnn.py,
tests/test_pixelcnn_cached.py."""
