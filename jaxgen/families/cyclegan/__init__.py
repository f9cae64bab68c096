"""CycleGAN (Zhu et al. 2017): ``trainer.py`` (the four players, the image pools),
``evaluators.py`` (``styles``: the un-styled digit class on mnist5k_styles). Shared
networks: jaxgen/models/image_to_image.py. Configs: configs/cyclegan_*.py. Tests:
tests/test_cyclegan.py."""
