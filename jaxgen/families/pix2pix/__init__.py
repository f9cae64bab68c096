"""Pix2Pix (Isola et al. 2017): ``trainer.py``. The U-Net generator and PatchGAN are
shared with CycleGAN (jaxgen/models/image_to_image.py, jaxgen/families/
image_to_image.py). Configs: configs/pix2pix_*.py. Tests: tests/test_pix2pix.py."""
