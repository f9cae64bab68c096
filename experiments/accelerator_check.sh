#!/bin/bash
# The checks jaxgen runs when a GPU is lent for a few minutes: one command, at most
# ${BUDGET_S:-540} s in all (the device tool allows 600 s a call); each part gets what is
# left of it, the most wanted first.
#
#   OUT=/tmp/out bash experiments/accelerator_check.sh
#
# 1. experiments/device_perf.py (issue 16): fraction of peak and projected paper wall
#    times; experiments/accumulate_cost.py: the bfloat16 step with and without the
#    float32 accumulation, in alternating rounds.
# 2. The Inception and CLIP ports against their torch references at precision HIGHEST
#    on the accelerator (no TF32 creeping into the parity).
# 3. Throughput: DDPM CIFAR-10 paper training and sampling, ddpm_mnist, dcgan_mnist,
#    Inception and CLIP feature extraction (random weights of the real architectures).
# 4. ddpm_mnist and dcgan_mnist trained in their default configs, with --mode=eval's
#    FID / IS (MNIST classifier) written to $OUT.
# The packages jaxgen needs beyond the accelerator image travel as wheels in .whl/.
set -u
OUT=${OUT:-/tmp/accelerator_check}
mkdir -p "$OUT"
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-540} ))
# the seconds a part may take: its own limit, or what is left of the budget if less
left() { local l=$(( DEADLINE - $(date +%s) )); (( l < $1 )) && echo $(( l > 1 ? l : 1 )) || echo $1; }
export PYTHONUNBUFFERED=1 JAXGEN_CACHE=/tmp/jaxgen_cache PYTHONPATH="$PWD:${PYTHONPATH:-}"
nvidia-smi -L
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"

echo "== 1. issue 16: the DDPM and DCGAN steps in float32 and bfloat16, DDIM-50 at 256"
timeout $(left 240) python3 experiments/device_perf.py --json_out="$OUT/device_perf.json" 2>&1 \
  | tee "$OUT/device_perf.txt" | grep -v "^{" | tail -7
echo "   the bfloat16 DDPM step, batch 128: float32 sums and products / sums / no rewrite"
timeout $(left 150) python3 experiments/accumulate_cost.py --batch_size=128 --rounds=5 \
  --iters=5 2>&1 | tee "$OUT/accumulate_cost.txt" | tail -3

echo "== 2. parity on the accelerator"
timeout $(left 90) python3 -m pytest -q -p no:cacheprovider tests/test_inception.py \
  tests/test_clip.py -k "matches_pytorch_fid or matches_transformers or tf_mode" 2>&1 | tail -4

echo "== 3. throughput"
configs=configs/ddpm_cifar10.py:paper,configs/ddpm_mnist.py
[ -f configs/dcgan_mnist.py ] && configs=$configs,configs/dcgan_mnist.py
timeout $(left 190) python3 experiments/benchmark.py --configs=$configs --steps=100 \
  --samplers=ddim:50,ancestral:1000 --sample_batch_size=256 --features=inception,clip \
  --num_images=10000 --feature_batch_size=500 2>&1 | tee "$OUT/benchmark.txt" | tail -12

echo "== 4. default configs trained on the accelerator"
for spec in ddpm_mnist:170 dcgan_mnist:90; do
  config=${spec%:*}
  [ -f configs/$config.py ] || continue
  start=$(date +%s)
  timeout $(left ${spec#*:}) python3 -m jaxgen.main --config=configs/$config.py --workdir=/tmp/$config \
    > "$OUT/$config.log" 2>&1
  echo "$config: exit $? after $(( $(date +%s) - start )) s"
  cp /tmp/$config/eval.json "$OUT/${config}_eval.json" 2>/dev/null && cat "$OUT/${config}_eval.json"
  last=$(ls /tmp/$config/samples/step_*.png 2>/dev/null | sort -V | tail -1)
  [ -n "$last" ] && cp "$last" "$OUT/${config}_samples.png"
done
