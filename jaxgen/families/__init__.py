"""Model families, one package each: ``jaxgen/families/<name>/`` holds the family's
``trainer.py`` (its ``Trainer``), its own networks, losses and evaluators; the configs
are ``configs/<name>_<dataset>.py`` and the tests ``tests/test_<name>*.py``.

The modules directly in this folder are shared by several families: ``base`` (the
contract with the loop and the one-optimiser path, ``OneOptimizerTrainer``),
``adversarial`` (several players in one state), ``image_to_image`` (Pix2Pix and
CycleGAN) and ``discrete_autoencoder`` (VQ-VAE and the dVAE). The stage protocols are in ``jaxgen/stages.py``. ``config.family`` names a
package here (``jaxgen.registry``).
"""
