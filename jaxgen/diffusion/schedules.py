"""Noise schedules: beta_t for t = 1..T, as float64 numpy arrays."""
from __future__ import annotations

import math

import numpy as np


def linear(num_steps: int, start: float = 1e-4, end: float = 0.02) -> np.ndarray:
  """Ho et al. 2020: betas linear from 1e-4 to 0.02 (for T = 1000; scaled for other
  T so that the process ends equally noisy, as Nichol & Dhariwal do)."""
  scale = 1000 / num_steps
  if scale * end >= 1:
    raise ValueError(f"The linear schedule scaled to T={num_steps} has betas >= 1; use "
                     f"T >= {int(1000 * end) + 1} or the cosine schedule.")
  return np.linspace(scale * start, scale * end, num_steps, dtype=np.float64)


def cosine(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
  """Nichol & Dhariwal 2021: alpha-bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2)."""
  f = lambda t: math.cos((t / num_steps + s) / (1 + s) * math.pi / 2) ** 2
  return np.array([min(1 - f(i + 1) / f(i), max_beta) for i in range(num_steps)],
                  np.float64)


def scaled_linear(num_steps: int, start: float = 0.00085, end: float = 0.012
                  ) -> np.ndarray:
  """Latent diffusion's schedule (CompVis ``make_beta_schedule("linear")`` with
  ``linear_start=0.00085``, ``linear_end=0.012``; diffusers' "scaled_linear"): betas
  whose square roots are linear from sqrt(start) to sqrt(end)."""
  return np.linspace(start ** 0.5, end ** 0.5, num_steps, dtype=np.float64) ** 2


SCHEDULES = {"linear": linear, "cosine": cosine, "scaled_linear": scaled_linear}


def get(name: str, num_steps: int) -> np.ndarray:
  if name not in SCHEDULES:
    raise ValueError(f"Unknown noise schedule {name!r}; use one of "
                     f"{', '.join(SCHEDULES)}.")
  return SCHEDULES[name](num_steps)
