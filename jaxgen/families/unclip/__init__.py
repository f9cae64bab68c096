"""unCLIP (Ramesh et al. 2022, "DALL-E 2"), after kakaobrain/karlo: ``trainer.py`` (the
three roles, prior, decoder and upsampler, each a run over a frozen CLIP stage; the
text -> prior -> decoder -> upsampler pipeline as a decoder run with prior and
upsampler stages; guidance, candidates, the cosine readout, the pictures),
``networks.py`` (karlo's prior transformer and decoder conditioning over the shared
U-Net of jaxgen/models/ldm_unet.py), ``embeddings.py`` (standardisation, candidate
selection, slerp, text diffs), ``edit.py`` (variations, interpolations and text diffs
of image files: a command line). CLIP is a family of its own. Configs:
configs/unclip_*.py. Tests: tests/test_unclip*.py, tests/test_inversion.py."""
