"""CycleGAN (Zhu et al. 2017): ``trainer.py`` (the four players, the image pools),
``evaluators.py`` (``styles``: G(a)'s digit read by the domain-B reader, and its
content and style against the true pair, on mnist5k_styles). Shared
networks: jaxgen/models/image_to_image.py. Configs: configs/cyclegan_*.py. Tests:
tests/test_cyclegan.py."""
