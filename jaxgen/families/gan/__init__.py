"""The GAN, DCGAN, conditional GAN and AC-GAN: ``trainer.py`` (the players' steps),
``networks.py`` (MLP and DCGAN players). Shared: jaxgen/families/adversarial.py,
the GAN losses of jaxgen/losses.py. Configs: configs/{gan,dcgan,cgan,acgan}_*.py.
Tests: tests/test_gan*.py."""
