r"""The optimal discriminator and the value of the GAN game, measured on toy densities.

  python experiments/gan_optimum.py --outdir=/tmp/gan_optimum
  python experiments/gan_optimum.py --quick --outdir=/tmp/gan_optimum_quick   # seconds

For a fixed generator density p_g, the discriminator that maximises
V(G, D) = E_data[log D(x)] + E_g[log(1 - D(x))] is D*(x) = p_data(x) / (p_data(x) + p_g(x)),
and V(G, D*) = -log 4 + 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Prop. 1, Thm. 1).
On a 1-D pair (a two-mode Gaussian mixture against a wider, shifted Gaussian) and a 2-D
pair (a jaxgen.data.toy2d distribution against a Gaussian), all with exact densities:

1. an MLP discriminator trained on samples of the fixed pair is compared with D*, by the
   error E_m|D - D*| under m = (p_data + p_g) / 2, computed by quadrature;
2. V(G, D*) is computed by quadrature (Gauss-Legendre in 1-D, a fine grid in 2-D) and the
   JSD independently (adaptive quadrature of its definition in 1-D, Monte-Carlo in 2-D);
   V of the trained discriminator, by the same quadrature, rises to V(G, D*) from below;
3. against a poor generator, a trained discriminator rejects its samples (D(G(z)) -> 0):
   the gradient that the saturating loss log(1 - D(G(z))) passes to the generator
   vanishes, the non-saturating -log D(G(z)) does not; both are measured;
4. short 1-D GANs (an affine Gaussian generator, so JSD(p_data || p_g) is exact at every
   step) trained with each generator loss show what that does to training.

Writes PNG plots into --outdir and prints the measured numbers.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image, ImageDraw, ImageFont
from scipy import integrate, special

from jaxgen import losses, viz, xla_options
from jaxgen.data import toy2d

LOG4 = math.log(4.0)


# ----------------------------------------------------------------------------------
# Densities and the exact quantities.

@dataclasses.dataclass(frozen=True)
class GaussianMixture:
  """A mixture of isotropic Gaussians in d dimensions, with exact log density."""
  means: np.ndarray  # (K, d)
  stds: np.ndarray  # (K,)
  weights: np.ndarray  # (K,), summing to 1

  @classmethod
  def make(cls, means, stds, weights=None) -> GaussianMixture:
    means = np.asarray(means, np.float64).reshape(len(stds), -1)
    weights = np.full(len(stds), 1 / len(stds)) if weights is None else weights
    return cls(means, np.asarray(stds, np.float64), np.asarray(weights, np.float64))

  def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
    k = rng.choice(len(self.weights), size=n, p=self.weights)
    noise = rng.standard_normal((n, self.means.shape[1]))
    return (self.means[k] + self.stds[k, None] * noise).astype(np.float32)

  def log_density(self, x: np.ndarray) -> np.ndarray:
    """log p(x) in float64 for x of shape (..., d)."""
    x = np.asarray(x, np.float64)
    d = self.means.shape[1]
    d2 = ((x[..., None, :] - self.means) ** 2).sum(-1)  # (..., K)
    log_comp = (np.log(self.weights) - d2 / (2 * self.stds ** 2)
                - d * np.log(self.stds) - 0.5 * d * math.log(2 * math.pi))
    return special.logsumexp(log_comp, axis=-1)


def pair_1d():
  """p_data: two modes at -2 and 2 (std 0.5); p_g: one wider Gaussian N(0.5, 1.5^2)."""
  return (GaussianMixture.make([-2.0, 2.0], [0.5, 0.5]),
          GaussianMixture.make([0.5], [1.5]))


def pair_2d(name: str = "eight_gaussians"):
  """p_data: a toy2d distribution; p_g: the Gaussian N((0.5, 0), I)."""
  return toy2d.get(name), GaussianMixture.make([[0.5, 0.0]], [1.0])


def quadrature_1d(lo=-12.0, hi=12.0, n=1000):
  """Gauss-Legendre nodes (n, 1) and weights (n,) on [lo, hi]."""
  t, w = special.roots_legendre(n)
  return ((hi - lo) / 2 * t + (hi + lo) / 2)[:, None], (hi - lo) / 2 * w


def quadrature_2d(lo=-7.0, hi=7.0, h=0.05):
  """Midpoint-rule grid points (n*n, 2) and weights (n*n,) on [lo, hi]^2: for smooth,
  decaying integrands the error falls like exp(-2 pi^2 s^2 / h^2) at feature scale s."""
  c = np.arange(lo + h / 2, hi, h)
  xx, yy = np.meshgrid(c, c, indexing="xy")
  return np.stack([xx.ravel(), yy.ravel()], -1), np.full(xx.size, h * h)


def optimal_logit(log_pd, log_pg):
  """logit D*(x) = log p_data(x) - log p_g(x)."""
  return np.asarray(log_pd, np.float64) - np.asarray(log_pg, np.float64)


def _sigmoid(l):
  return np.exp(-np.logaddexp(0.0, -l))


def value_by_quadrature(logits, log_pd, log_pg, weights) -> float:
  """V(G, D) = int p_data log D + p_g log(1 - D), D = sigmoid(logits), on the nodes."""
  logits = np.asarray(logits, np.float64)
  log_d, log_1md = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
  return float(np.sum(weights * (np.exp(log_pd) * log_d + np.exp(log_pg) * log_1md)))


def discriminator_error(logits, log_pd, log_pg, weights) -> float:
  """E_m |D - D*| with m = (p_data + p_g) / 2, on the quadrature nodes."""
  d_star = _sigmoid(optimal_logit(log_pd, log_pg))
  m = 0.5 * (np.exp(log_pd) + np.exp(log_pg))
  return float(np.sum(weights * m * np.abs(_sigmoid(np.asarray(logits, np.float64))
                                           - d_star)))


def jsd_1d(p_data, p_g, lo=-12.0, hi=12.0) -> float:
  """JSD(p_data || p_g) = 1/2 KL(p_data || m) + 1/2 KL(p_g || m) by adaptive quadrature."""
  def integrand(x):
    lp, lq = p_data.log_density([x])[()], p_g.log_density([x])[()]
    lm = np.logaddexp(lp, lq) - math.log(2)
    return 0.5 * (np.exp(lp) * (lp - lm) + np.exp(lq) * (lq - lm))
  breaks = np.concatenate([p_data.means[:, 0], p_g.means[:, 0]])
  val, _ = integrate.quad(integrand, lo, hi, points=sorted(breaks), limit=500,
                          epsabs=1e-12, epsrel=1e-12)
  return val


def jsd_monte_carlo(p_data, p_g, n: int, rng: np.random.Generator):
  """JSD(p_data || p_g) and its standard error from n samples of each density."""
  terms = []
  for p, q in ((p_data, p_g), (p_g, p_data)):
    x = p.sample(n, rng)
    lp, lq = p.log_density(x), q.log_density(x)
    terms.append(0.5 * (lp - (np.logaddexp(lp, lq) - math.log(2))))
  jsd = sum(t.mean() for t in terms)
  return float(jsd), float(math.sqrt(sum(t.var(ddof=1) / n for t in terms)))


# ----------------------------------------------------------------------------------
# The discriminator, trained on samples of a fixed pair.

class MLP(nn.Module):
  """x (batch, d) -> logits (batch,)."""
  hidden: tuple[int, ...] = (64, 64)

  @nn.compact
  def __call__(self, x):
    for width in self.hidden:
      x = nn.silu(nn.Dense(width)(x))
    return nn.Dense(1)(x)[..., 0]


def fit_discriminator(real, fake, steps: int, *, batch_size=256, lr=3e-3, seed=0,
                      eval_fn=None, eval_every=None):
  """Trains D by minimising the binary cross-entropy -V on minibatches drawn from two
  sample pools, with Adam and a cosine-decayed learning rate.

  Returns (logit_fn, params, trace): ``logit_fn(params, x)`` maps a numpy batch to
  float64 logits; ``trace`` lists (step, eval_fn(logits_of_params)) every ``eval_every``
  steps when ``eval_fn`` is given (it receives a function x -> logits).
  """
  model = MLP()
  real, fake = jnp.asarray(real), jnp.asarray(fake)
  init_key, key = jax.random.split(jax.random.key(seed))
  params = jax.jit(model.init)(init_key, real[:1])
  tx = optax.adam(optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.01))
  opt_state = jax.jit(tx.init)(params)

  def loss_fn(p, xr, xf):
    return losses.discriminator_loss(model.apply(p, xr), model.apply(p, xf))

  def step(carry, i):
    p, o = carry
    kr, kf = jax.random.split(jax.random.fold_in(key, i))
    xr = real[jax.random.randint(kr, (batch_size,), 0, len(real))]
    xf = fake[jax.random.randint(kf, (batch_size,), 0, len(fake))]
    loss, g = jax.value_and_grad(loss_fn)(p, xr, xf)
    updates, o = tx.update(g, o, p)
    return (optax.apply_updates(p, updates), o), loss

  @jax.jit(static_argnums=3)
  def run(p, o, start, n):
    return jax.lax.scan(step, (p, o), start + jnp.arange(n))[0]

  apply = jax.jit(model.apply)

  def logit_fn(p, x):
    return np.asarray(apply(p, jnp.asarray(x, jnp.float32)), np.float64)

  every = eval_every or steps
  trace = [(0, eval_fn(lambda x: logit_fn(params, x)))] if eval_fn else []
  done = 0
  while done < steps:
    n = min(every, steps - done)
    params, opt_state = run(params, opt_state, done, n)
    done += n
    if eval_fn:
      trace.append((done, eval_fn(lambda x: logit_fn(params, x))))
  return logit_fn, params, trace


def optimum_study(p_data, p_g, nodes, weights, *, steps, eval_every, n_pool=100_000,
                  seed=0):
  """Trains D on the pair and measures it against D* on the quadrature nodes.

  Returns a dict of numbers and arrays (the trace holds (step, V(G, D), error)).
  """
  rng = np.random.default_rng(seed)
  real, fake = p_data.sample(n_pool, rng), p_g.sample(n_pool, rng)
  log_pd, log_pg = p_data.log_density(nodes), p_g.log_density(nodes)

  def evaluate(logits_of):
    l = logits_of(nodes)
    return (value_by_quadrature(l, log_pd, log_pg, weights),
            discriminator_error(l, log_pd, log_pg, weights))

  logit_fn, params, trace = fit_discriminator(real, fake, steps, seed=seed,
                                              eval_fn=evaluate, eval_every=eval_every)
  v_star = value_by_quadrature(optimal_logit(log_pd, log_pg), log_pd, log_pg, weights)
  return {"v_star": v_star, "trace": [(s, v, e) for s, (v, e) in trace],
          "logits": logit_fn(params, nodes), "log_pd": log_pd, "log_pg": log_pg}


# ----------------------------------------------------------------------------------
# Saturating against non-saturating generator losses.

def affine_generator(gen_params, z):
  """G(z) = mu + exp(log_sigma) z: p_g = N(mu, sigma^2) exactly."""
  return gen_params["mu"] + jnp.exp(gen_params["log_sigma"]) * z


def generator_gradients(logit_fn, gen_params, z):
  """Gradients the generator receives from each loss, through a fixed discriminator.

  ``logit_fn`` is a jax function of x (batch, 1). Returns, per loss kind
  ("minimax", "nonsaturating"): the mean |dL_i/dx_i| over samples (the gradient at the
  generator's output, per sample, L_i its own loss term), and the norm of the
  gradient of the batch loss w.r.t. the generator parameters, and the per-sample
  |dL_i/dx_i|; under "d_fake", D(G(z)) per sample.
  """
  @jax.jit
  def measure(gen_params, z):
    out = {}
    x = affine_generator(gen_params, z)
    for kind in ("minimax", "nonsaturating"):
      per_x = jax.grad(lambda v: len(z) * losses.generator_loss(logit_fn(v), kind))(x)
      per_p = jax.grad(lambda g: losses.generator_loss(
          logit_fn(affine_generator(g, z)), kind))(gen_params)
      out[kind] = {"grad_x": jnp.mean(jnp.abs(per_x)),
                   "grad_params": optax.tree.norm(per_p),
                   "per_sample": jnp.abs(per_x[:, 0])}
    out["d_fake"] = jax.nn.sigmoid(logit_fn(x))
    return out

  out = jax.tree.map(np.asarray, measure(gen_params, z))
  for kind in ("minimax", "nonsaturating"):
    out[kind]["grad_x"] = float(out[kind]["grad_x"])
    out[kind]["grad_params"] = float(out[kind]["grad_params"])
  return out


def gradient_study(p_data, *, poor_mu=6.0, poor_sigma=0.5, steps=1000, seed=0):
  """Trains D against the poor generator N(poor_mu, poor_sigma^2) and measures the
  generator gradients under both losses."""
  rng = np.random.default_rng(seed)
  gen = {"mu": jnp.float32(poor_mu), "log_sigma": jnp.float32(math.log(poor_sigma))}
  poor = GaussianMixture.make([poor_mu], [poor_sigma])
  _, params, _ = fit_discriminator(p_data.sample(50_000, rng), poor.sample(50_000, rng),
                                   steps, seed=seed)
  z = jnp.asarray(rng.standard_normal((4096, 1)), jnp.float32)
  return generator_gradients(lambda x: MLP().apply(params, x), gen, z)


def train_gan_1d(p_data, kind: str, *, steps=1500, d_pretrain=300, batch_size=256,
                 init_mu=6.0, init_sigma=0.5, g_lr=0.05, d_lr=1e-3, eval_every=25,
                 seed=0):
  """A 1-D GAN: an affine generator trained by plain SGD (so its step is proportional
  to the gradient its loss provides) against an MLP discriminator trained by Adam,
  alternating one D and one G step after ``d_pretrain`` D-only steps; generator loss
  ``kind``. ``steps`` and ``d_pretrain`` are multiples of ``eval_every``. Returns a list
  of (step, mu, sigma, exact JSD(p_data || p_g)) every ``eval_every`` steps."""
  model = MLP()
  init_key, key = jax.random.split(jax.random.key(seed))
  gen = {"mu": jnp.float32(init_mu), "log_sigma": jnp.float32(math.log(init_sigma))}
  d_params = jax.jit(model.init)(init_key, jnp.zeros((1, 1)))
  d_tx, g_tx = optax.adam(d_lr), optax.sgd(g_lr)
  state = (d_params, jax.jit(d_tx.init)(d_params), gen, g_tx.init(gen))
  real = jnp.asarray(p_data.sample(100_000, np.random.default_rng(seed)))

  def step(state, i, train_g):
    d_params, d_opt, gen, g_opt = state
    kr, kz, kz2 = jax.random.split(jax.random.fold_in(key, i), 3)
    xr = real[jax.random.randint(kr, (batch_size,), 0, len(real))]
    xf = affine_generator(gen, jax.random.normal(kz, (batch_size, 1)))
    d_grads = jax.grad(lambda p: losses.discriminator_loss(
        model.apply(p, xr), model.apply(p, xf)))(d_params)
    upd, d_opt = d_tx.update(d_grads, d_opt, d_params)
    d_params = optax.apply_updates(d_params, upd)
    z = jax.random.normal(kz2, (batch_size, 1))
    g_grads = jax.grad(lambda g: losses.generator_loss(
        model.apply(d_params, affine_generator(g, z)), kind))(gen)
    upd, g_opt_new = g_tx.update(g_grads, g_opt, gen)
    gen_new = optax.apply_updates(gen, upd)
    gen, g_opt = jax.tree.map(lambda a, b: jnp.where(train_g, a, b),
                              (gen_new, g_opt_new), (gen, g_opt))
    return (d_params, d_opt, gen, g_opt), None

  @jax.jit
  def run(state, start, train_g):
    return jax.lax.scan(lambda s, i: step(s, i, train_g), state,
                        start + jnp.arange(eval_every))[0]

  for s in range(0, d_pretrain, eval_every):  # step indices past the G phase's
    state = run(state, steps + eval_every + s, False)
  lo, hi = float(np.min(p_data.means)) - 10, float(np.max(p_data.means)) + 10
  trace = []
  for s in range(0, steps + 1, eval_every):
    if s:
      state = run(state, s, True)
    mu, sigma = float(state[2]["mu"]), float(jnp.exp(state[2]["log_sigma"]))
    p_g = GaussianMixture.make([mu], [sigma])
    trace.append((s, mu, sigma, jsd_1d(p_data, p_g, min(lo, mu - 12 * sigma),
                                       max(hi, mu + 12 * sigma))))
  return trace


# ----------------------------------------------------------------------------------
# Plots drawn with PIL (matplotlib is not a dependency of jaxgen).

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189),
           (255, 127, 14), (23, 190, 207)]


def _ticks(lo, hi, log):
  """Tick positions (in plotted units) and labels: decades on log axes, else steps of
  1, 2 or 5 times a power of ten."""
  if log and hi - lo >= 1:
    every = max(1, math.ceil((math.floor(hi) - math.ceil(lo) + 1) / 6))
    ks = range(math.ceil(lo), math.floor(hi) + 1, every)
    return [(k, f"1e{k}") for k in ks]
  step = 10 ** math.floor(math.log10((hi - lo) / 4))
  step *= next(m for m in (1, 2, 5, 10) if (hi - lo) / (m * step) <= 6)
  ts = np.arange(math.ceil(lo / step) * step, hi + 1e-9 * step, step)
  if log:
    return [(t, f"{10 ** t:.3g}") for t in ts]
  return [(t, f"{round(t / step) * step:.6g}") for t in ts]


def _dashed(draw, pts, colour, on=8.0, off=5.0):
  pts = np.asarray(pts, np.float64)
  arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
  s = np.arange(0.0, arc[-1], 1.0)
  dense = np.stack([np.interp(s, arc, pts[:, 0]), np.interp(s, arc, pts[:, 1])], -1)
  phase = (s % (on + off)) < on
  for start in range(0, len(s), int(on + off)):
    run = dense[start:start + int(on + off)][phase[start:start + int(on + off)]]
    if len(run) > 1:
      draw.line([tuple(p) for p in run], fill=colour, width=2)


def line_plot(series, title, xlabel="", ylabel="", size=(640, 420), logx=False,
              logy=False, ylim=None) -> np.ndarray:
  """A plot as a uint8 RGB image. ``series``: (label, x, y, style), style "line",
  "dashed" or "points", drawn in that order (later ones on top)."""
  w, h = size
  left, right, top, bottom = 64, 190, 30, 45
  img = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(img)
  font = ImageFont.load_default(size=12)
  tx = np.log10 if logx else (lambda v: v)
  ty = np.log10 if logy else (lambda v: v)
  with np.errstate(divide="ignore", invalid="ignore"):
    data = [(label, tx(np.asarray(x, np.float64)), ty(np.asarray(y, np.float64)), style)
            for label, x, y, style in series]
  xs = np.concatenate([d[1] for d in data])
  ys = np.concatenate([d[2] for d in data])
  x0, x1 = xs[np.isfinite(xs)].min(), xs[np.isfinite(xs)].max()
  y0, y1 = ylim if ylim else (ys[np.isfinite(ys)].min(), ys[np.isfinite(ys)].max())
  x1, y1 = max(x1, x0 + 1e-12), max(y1, y0 + 1e-12)
  pad = 0.04 * (y1 - y0)
  y0, y1 = y0 - pad, y1 + pad

  def px(x, y):
    return (left + (x - x0) / (x1 - x0) * (w - left - right),
            h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))

  draw.rectangle([left, top, w - right, h - bottom], outline="black")
  for t, label in _ticks(x0, x1, logx):
    a = px(t, y0)[0]
    draw.line([a, h - bottom, a, h - bottom + 4], fill="black")
    draw.text((a, h - bottom + 6), label, fill="black", font=font, anchor="ma")
  for t, label in _ticks(y0, y1, logy):
    b = px(x0, t)[1]
    draw.line([left - 4, b, left, b], fill="black")
    draw.text((left - 6, b), label, fill="black", font=font, anchor="rm")
  draw.text(((left + w - right) / 2, 8), title, fill="black", font=font, anchor="ma")
  draw.text(((left + w - right) / 2, h - 18), xlabel, fill="black", font=font,
            anchor="ma")
  draw.text((6, top - 16), ylabel, fill="black", font=font)
  for i, (label, x, y, style) in enumerate(data):
    colour = COLOURS[i % len(COLOURS)]
    keep = np.isfinite(x) & np.isfinite(y) & (y >= y0) & (y <= y1)
    pts = [px(a, b) for a, b in zip(x[keep], y[keep])]
    if style == "points":
      for a, b in pts:
        draw.ellipse([a - 1.5, b - 1.5, a + 1.5, b + 1.5], fill=colour)
    elif style == "dashed" and len(pts) > 1:
      _dashed(draw, pts, colour)
    elif len(pts) > 1:
      draw.line(pts, fill=colour, width=2)
    ly = top + 8 + 18 * i
    draw.line([w - right + 8, ly, w - right + 28, ly], fill=colour, width=3)
    draw.text((w - right + 32, ly), label, fill="black", font=font, anchor="lm")
  return np.asarray(img)


def heatmap(values, title, vmin=0.0, vmax=1.0) -> np.ndarray:
  """A square array as a titled uint8 RGB image (dark blue -> yellow); row 0 at the
  bottom, as on axes."""
  t = np.clip((np.asarray(values, np.float64) - vmin) / (vmax - vmin), 0, 1)[::-1]
  anchors = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98],
                      [253, 231, 37]], np.float64)
  pos = t * (len(anchors) - 1)
  i = np.minimum(pos.astype(int), len(anchors) - 2)
  f = (pos - i)[..., None]
  rgb = ((1 - f) * anchors[i] + f * anchors[i + 1]).astype(np.uint8)
  img = Image.new("RGB", (rgb.shape[1], rgb.shape[0] + 20), "white")
  img.paste(Image.fromarray(rgb), (0, 20))
  ImageDraw.Draw(img).text((rgb.shape[1] / 2, 4), title, fill="black",
                           font=ImageFont.load_default(size=12), anchor="ma")
  return np.asarray(img)


# ----------------------------------------------------------------------------------

def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--outdir", default="/tmp/gan_optimum")
  parser.add_argument("--toy2d", default="eight_gaussians",
                      choices=sorted(toy2d.DISTRIBUTIONS))
  parser.add_argument("--quick", action="store_true",
                      help="few training steps (seconds; for tests, not converged numbers)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  xla_options.configure_cpu()  # before JAX creates its CPU client
  q = args.quick
  d_steps_1d, d_steps_2d, every = (300, 300, 100) if q else (4000, 6000, 250)
  os.makedirs(args.outdir, exist_ok=True)
  start = time.perf_counter()
  results = {}

  # 1-D: D vs D*, V(G, D*) vs -log 4 + 2 JSD.
  p_data, p_g = pair_1d()
  nodes, weights = quadrature_1d()
  jsd = jsd_1d(p_data, p_g)
  r1 = optimum_study(p_data, p_g, nodes, weights, steps=d_steps_1d, eval_every=every,
                     seed=args.seed)
  results["1d"] = {**r1, "jsd": jsd}
  print("== 1-D: p_data = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2), p_g = N(0.5, 1.5^2)")
  _report_optimum(r1, jsd, "adaptive quadrature")
  x = nodes[:, 0]
  sel = (x > -6) & (x < 6)
  img = line_plot(
      [("p_data", x[sel], np.exp(r1["log_pd"][sel]), "line"),
       ("p_g", x[sel], np.exp(r1["log_pg"][sel]), "line"),
       ("D*", x[sel], _sigmoid(optimal_logit(r1["log_pd"], r1["log_pg"]))[sel], "line"),
       (f"trained D ({d_steps_1d})", x[sel], _sigmoid(r1["logits"])[sel], "dashed")],
      "1-D: trained discriminator vs D* = p_data / (p_data + p_g)", "x")
  viz.save_png(img, os.path.join(args.outdir, "d_star_1d.png"))

  # 2-D: the same, with the JSD by Monte-Carlo.
  p_data2, p_g2 = pair_2d(args.toy2d)
  nodes2, weights2 = quadrature_2d()
  jsd2, se2 = jsd_monte_carlo(p_data2, p_g2, 20_000 if q else 1_000_000,
                              np.random.default_rng(args.seed + 1))
  r2 = optimum_study(p_data2, p_g2, nodes2, weights2, steps=d_steps_2d,
                     eval_every=every, seed=args.seed)
  results["2d"] = {**r2, "jsd": jsd2, "jsd_stderr": se2}
  print(f"== 2-D: p_data = toy2d {args.toy2d}, p_g = N((0.5, 0), I)")
  _report_optimum(r2, jsd2, f"Monte-Carlo, standard error {se2:.1e}")
  n = int(round(math.sqrt(len(nodes2))))
  sub = slice(n // 2 - n * 5 // 14, n // 2 + n * 5 // 14)  # the central [-5, 5]^2
  d_star2 = _sigmoid(optimal_logit(r2["log_pd"], r2["log_pg"])).reshape(n, n)
  d_tr2 = _sigmoid(r2["logits"]).reshape(n, n)
  panels = [heatmap(d_star2[sub, sub], "D*"),
            heatmap(d_tr2[sub, sub], f"trained D ({d_steps_2d} steps)"),
            heatmap(np.abs(d_tr2 - d_star2)[sub, sub], "|D - D*| (scale 0..0.2)",
                    vmax=0.2)]
  gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
  viz.save_png(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], 1),
               os.path.join(args.outdir, "d_star_2d.png"))
  img = line_plot(
      [(f"{name}: V(G, D*) - V(G, D_t)", [t[0] for t in r["trace"]],
        [r["v_star"] - t[1] for t in r["trace"]], "line")
       for name, r in (("1-D", r1), ("2-D", r2))],
      "V of the trained discriminator approaches V(G, D*) = -log 4 + 2 JSD from below",
      "discriminator step", "gap", logy=True)
  viz.save_png(img, os.path.join(args.outdir, "value_vs_step.png"))

  # Saturating vs non-saturating: gradients against a rejected generator.
  g = gradient_study(p_data, steps=300 if q else 1500, seed=args.seed)
  results["gradients"] = g
  sat, ns = g["minimax"], g["nonsaturating"]
  print("== generator gradients, D trained against a poor generator N(6, 0.5^2)")
  print(f"  mean D(G(z)) = {g['d_fake'].mean():.2e}  (median {np.median(g['d_fake']):.2e})")
  print(f"  mean |dL/dG(z)|: saturating {sat['grad_x']:.3e}  non-saturating "
        f"{ns['grad_x']:.3e}  ratio {ns['grad_x'] / sat['grad_x']:.1f}")
  print(f"  |dL/d(mu, log sigma)|: saturating {sat['grad_params']:.3e}  non-saturating "
        f"{ns['grad_params']:.3e}  ratio {ns['grad_params'] / sat['grad_params']:.1f}")
  img = line_plot(
      [("saturating", g["d_fake"], sat["per_sample"], "points"),
       ("non-saturating", g["d_fake"], ns["per_sample"], "points")],
      "Per-sample |dL/dG(z)| against D(G(z)) (poor generator)", "D(G(z))",
      "|grad|", logx=True, logy=True)
  viz.save_png(img, os.path.join(args.outdir, "generator_gradients.png"))

  # Short 1-D GANs with each generator loss.
  gan_steps, pretrain = (100, 100) if q else (1500, 300)
  traces = {kind: train_gan_1d(p_data, kind, steps=gan_steps, d_pretrain=pretrain,
                               seed=args.seed)
            for kind in ("minimax", "nonsaturating")}
  results["gan"] = traces
  print(f"== 1-D GAN, affine generator from N(6, 0.5^2), {pretrain} D steps, then "
        f"{gan_steps} D+G steps (SGD on G)")
  for kind, tr in traces.items():
    below = [t[0] for t in tr if t[3] < 0.5]
    print(f"  {kind:>13}: JSD {tr[0][3]:.4f} -> {tr[-1][3]:.4f}, first below 0.5 at step "
          f"{below[0] if below else 'never'};  mu {tr[0][1]:.2f} -> {tr[-1][1]:.2f}, "
          f"sigma {tr[0][2]:.2f} -> {tr[-1][2]:.2f}")
  img = line_plot(
      [("log 2 (disjoint)", [0, gan_steps], [math.log(2)] * 2, "dashed")]
      + [(f"{'saturating' if k == 'minimax' else 'non-saturating'}",
          [t[0] for t in tr], [t[3] for t in tr], "line") for k, tr in traces.items()],
      "1-D GAN: JSD(p_data || p_g) of the generator in training", "generator step",
      "JSD", ylim=(0.0, math.log(2)))
  viz.save_png(img, os.path.join(args.outdir, "gan_1d_jsd.png"))
  print(f"plots in {args.outdir}; {time.perf_counter() - start:.0f} s")
  return results


def _report_optimum(r, jsd, how):
  bound = -LOG4 + 2 * jsd
  (s0, v0, e0), (s1, v1, e1) = r["trace"][0], r["trace"][-1]
  print(f"  V(G, D*) by quadrature: {r['v_star']:.8f}")
  print(f"  -log 4 + 2 JSD:          {bound:.8f}  (JSD {jsd:.6f} by {how})")
  print(f"  difference:              {r['v_star'] - bound:.2e}")
  print(f"  trained D: V {v0:.5f} (step {s0}) -> {v1:.5f} (step {s1}); "
        f"V(G, D*) - V(G, D) = {r['v_star'] - v1:.2e}")
  print(f"  trained D: E_m|D - D*| {e0:.4f} (init) -> {e1:.4f}")


if __name__ == "__main__":
  main()
