"""StyleGAN2 with ADA (Karras et al. 2020): ``trainer.py`` (the four loss phases,
lazy regularisation, ADA, G_ema), ``networks.py`` (mapping, synthesis,
discriminator), ``ops.py`` (upfirdn2d, modulated convolutions), ``augment.py`` (the
ADA pipeline). NVlabs' pickles: jaxgen/weights/stylegan2.py. Configs:
configs/stylegan2_*.py. Tests: tests/test_stylegan2*.py."""
