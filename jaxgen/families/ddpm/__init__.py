"""DDPM (Ho et al. 2020): ``trainer.py`` (the epsilon loss, the samplers, the bound).
The U-Net is shared (jaxgen/models/unet.py), the process and samplers too
(jaxgen/diffusion/). Configs: configs/ddpm_*.py. Tests: tests/test_ddpm.py."""
