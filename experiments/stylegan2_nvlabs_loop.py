r"""NVlabs' own StyleGAN2-ADA training iteration at the settings of
configs/stylegan2_mnist.py, on the same data, on the CPU: does the reference collapse
where jaxgen's default does?

Run in a separate environment with torch (never a jaxgen dependency) and a checkout
of NVlabs/stylegan2-ada-pytorch (commit d72cc7d, as the parity fixtures):

  python -c "import numpy as np; from jaxgen.data import sources; \
    a = sources.mnist5k_arrays('train'); \
    np.savez('/tmp/mnist5k_train32.npz', image=np.pad(a['image'], ((0,0),(2,2),(2,2),(0,0))))"
  /tmp/refvenv/bin/python experiments/stylegan2_nvlabs_loop.py --nvlabs=/tmp/sg_nvlabs \
    --data=/tmp/mnist5k_train32.npz --out=/tmp/sg_ref --steps=1500

One iteration is training_loop.py's, phase by phase (Gmain, Greg, Dmain, Dreg with
their intervals, lazy-regularisation Adam, nan_to_num, G_ema with ramp-up, the ADA
heuristic), with loss.py's StyleGAN2Loss and the reference networks and AugmentPipe
unchanged; only the multi-GPU plumbing, the data loader (a seeded shuffle of the
npz, padded MNIST in [-1, 1]) and the snapshots are this script's. Every
``--probe_every`` steps it prints one JSON line with the probe of
experiments/stylegan2_diversity.py (G_ema's per-pixel std over 256 fixed z with
constant noise, w's std) and the running losses, and writes a sample grid and the 256
probe images (``probe_<step>.npy``, uint8), whose digit classes
``experiments/stylegan2_diversity.py --images=<out>/probe_*.npy`` counts. At the end
it saves ``--final_samples`` G_ema samples at 28x28 (``final_samples.npy``) for
``python -m jaxgen.score --metric fid <out>/final_samples.npy <MNIST-5k train .npy>
--feature_net mnist_classifier`` (and ``--metric is``), the numbers jaxgen's
``--mode=eval`` reports.
"""
import argparse
import copy
import json
import os
import sys
import time

import numpy as np


def parse():
  p = argparse.ArgumentParser()
  p.add_argument("--nvlabs", required=True, help="checkout of stylegan2-ada-pytorch")
  p.add_argument("--data", required=True, help="npz with 'image' [N, 32, 32, 1] uint8")
  p.add_argument("--out", required=True)
  p.add_argument("--steps", type=int, default=1500)
  p.add_argument("--probe_every", type=int, default=250)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--channel_base", type=int, default=1024)
  p.add_argument("--channel_max", type=int, default=32)
  p.add_argument("--z_dim", type=int, default=128)
  p.add_argument("--mapping_layers", type=int, default=2)
  p.add_argument("--mbstd", type=int, default=4)
  p.add_argument("--lr", type=float, default=0.0025)
  p.add_argument("--gamma", type=float, default=0.01)
  p.add_argument("--ema_kimg", type=float, default=500.0)
  p.add_argument("--ema_rampup", type=float, default=0.05)
  p.add_argument("--augment", default="bgc", help="'bgc' or '' (none)")
  p.add_argument("--ada_kimg", type=float, default=100.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--final_samples", type=int, default=1000,
                 help="G_ema samples (random noise) saved at the end for FID and IS")
  return p.parse_args()


def main():
  a = parse()
  sys.path.insert(0, a.nvlabs)
  import torch
  from torch_utils import misc, training_stats
  from training import augment, loss as loss_lib, networks

  torch.set_num_threads(a.threads)
  os.makedirs(a.out, exist_ok=True)
  np.random.seed(a.seed)
  torch.manual_seed(a.seed)
  data = np.load(a.data)["image"]  # [N, H, W, 1] uint8
  real_all = torch.from_numpy(data).permute(0, 3, 1, 2).float() / 127.5 - 1.0
  n_data, ch, res = real_all.shape[0], real_all.shape[1], real_all.shape[2]

  synthesis = dict(channel_base=a.channel_base, channel_max=a.channel_max,
                   num_fp16_res=0, conv_clamp=256, architecture="skip")
  G = networks.Generator(z_dim=a.z_dim, c_dim=0, w_dim=a.z_dim, img_resolution=res,
                         img_channels=ch, mapping_kwargs=dict(num_layers=a.mapping_layers),
                         synthesis_kwargs=synthesis).train().requires_grad_(False)
  D = networks.Discriminator(c_dim=0, img_resolution=res, img_channels=ch,
                             architecture="orig", channel_base=a.channel_base,
                             channel_max=a.channel_max, num_fp16_res=0, conv_clamp=256,
                             epilogue_kwargs=dict(mbstd_group_size=a.mbstd)
                             ).train().requires_grad_(False)
  G_ema = copy.deepcopy(G).eval()
  pipe = None
  if a.augment == "bgc":
    pipe = augment.AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1,
                               xfrac=1, brightness=1, contrast=1, lumaflip=1, hue=1,
                               saturation=1).train().requires_grad_(False)
    pipe.p.copy_(torch.as_tensor(0.0))
  ada_stats = training_stats.Collector(regex="Loss/signs/real") if pipe else None
  stats = training_stats.Collector(regex=".*")
  loss = loss_lib.StyleGAN2Loss(device=torch.device("cpu"), G_mapping=G.mapping,
                                G_synthesis=G.synthesis, D=D, augment_pipe=pipe,
                                style_mixing_prob=0.0, r1_gamma=a.gamma, pl_weight=0.0)
  phases = []
  for name, module, interval in (("G", G, 4), ("D", D, 16)):
    r = interval / (interval + 1)
    opt = torch.optim.Adam(module.parameters(), lr=a.lr * r, betas=(0.0, 0.99 ** r),
                           eps=1e-8)
    phases += [dict(name=name + "main", module=module, opt=opt, interval=1),
               dict(name=name + "reg", module=module, opt=opt, interval=interval)]

  probe_z = torch.randn([256, a.z_dim], generator=torch.Generator().manual_seed(123))

  def probe(step):
    with torch.no_grad():
      w = G_ema.mapping(probe_z, None, skip_w_avg_update=True)
      img = G_ema.synthesis(w, noise_mode="const")
    u8 = ((img[:, 0].clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    np.save(os.path.join(a.out, f"probe_{step:06d}.npy"), u8)  # [256, res, res] uint8
    grid = u8[:64]
    grid = grid.reshape(8, 8, res, res).transpose(0, 2, 1, 3).reshape(8 * res, 8 * res)
    from PIL import Image
    Image.fromarray(grid).save(os.path.join(a.out, f"samples_{step:06d}.png"))
    return {"G_ema_img_std": float(img.std(0).mean()),
            "G_ema_w_std": float(w[:, 0].std(0).mean())}

  order = np.random.RandomState(a.seed).permutation(n_data)
  pos, cur_nimg, t0 = 0, 0, time.time()
  print(json.dumps({"step": 0, **probe(0)}), flush=True)
  for step in range(a.steps):
    if pos + a.batch > n_data:
      order, pos = np.random.RandomState(a.seed + step).permutation(n_data), 0
    real = real_all[order[pos:pos + a.batch]]
    pos += a.batch
    all_z = torch.randn([len(phases) * a.batch, a.z_dim]).split(a.batch)
    c = torch.zeros([a.batch, 0])
    for phase, gen_z in zip(phases, all_z):
      if step % phase["interval"]:
        continue
      phase["opt"].zero_grad(set_to_none=True)
      phase["module"].requires_grad_(True)
      loss.accumulate_gradients(phase=phase["name"], real_img=real, real_c=c,
                                gen_z=gen_z, gen_c=c, sync=True, gain=phase["interval"])
      phase["module"].requires_grad_(False)
      for p in phase["module"].parameters():
        if p.grad is not None:
          misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
      phase["opt"].step()
    ema_nimg = min(a.ema_kimg * 1000, cur_nimg * a.ema_rampup)
    beta = 0.5 ** (a.batch / max(ema_nimg, 1e-8))
    with torch.no_grad():
      for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
      for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)
    cur_nimg += a.batch
    if ada_stats is not None and (step + 1) % 4 == 0:
      ada_stats.update()
      adjust = (np.sign(ada_stats["Loss/signs/real"] - 0.6) * (a.batch * 4)
                / (a.ada_kimg * 1000))
      pipe.p.copy_((pipe.p + adjust).max(misc.constant(0)))
    if (step + 1) % a.probe_every == 0 or step + 1 == a.steps:
      stats.update()
      rec = {"step": step + 1, **probe(step + 1),
             "ada_p": float(pipe.p) if pipe is not None else 0.0,
             "steps_per_s": (step + 1) / (time.time() - t0)}
      for key in ("Loss/G/loss", "Loss/D/loss", "Loss/signs/real", "Loss/signs/fake",
                  "Loss/r1_penalty"):
        rec[key] = stats[key]
      print(json.dumps(rec), flush=True)
  # As jaxgen's evaluation: G_ema samples with random noise, psi 1, the centre 28x28.
  with torch.no_grad():
    z = torch.randn([a.final_samples, a.z_dim])
    img = torch.cat([G_ema(zb, None, noise_mode="random") for zb in z.split(100)])
  t = (res - 28) // 2
  u8 = ((img[:, 0, t:t + 28, t:t + 28].clamp(-1, 1) + 1) * 127.5).round().byte()
  np.save(os.path.join(a.out, "final_samples.npy"), u8.numpy())


if __name__ == "__main__":
  main()
