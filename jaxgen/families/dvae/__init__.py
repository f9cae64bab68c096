"""The DALL-E discrete VAE (Ramesh et al. 2021): ``trainer.py`` (the Gumbel-softmax
relaxation, its schedules, the Autoencoder stage), ``networks.py`` (OpenAI's encoder
and decoder blocks), ``losses.py`` (the logit-Laplace likelihood). OpenAI's weights:
jaxgen/weights/dvae_openai.py. Configs: configs/dvae_*.py. Tests: tests/test_dvae*.py."""
