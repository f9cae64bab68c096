"""Denoising diffusion as a process, kept apart from the networks.

``process.GaussianDiffusion`` holds a noise schedule and everything derived from it
(the forward kernel, the tractable posterior, the variational bound); ``samplers``
runs a trained denoiser backwards.
"""
