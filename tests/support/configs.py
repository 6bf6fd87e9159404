"""A tiny synthetic experiment: two losses, one seed, a few CPU steps (seconds)."""

ITERS, BATCH, K = 6, 4, 19
TINY = f"""
losses: [mcce, tce]
seeds: [0]
data:
  dataset: synthetic
  train_options: {{num_images: 16, size: [32, 64], seed: 3}}
  val_options: {{num_images: 6, size: [32, 64], seed: 3}}
model: {{name: unet_small}}
optim: {{name: adam, lr: 0.002}}
train: {{iters: {ITERS}, batch_size: {BATCH}, checkpoint_every: 2}}
eval: {{batch_size: 4, samples: 2}}
"""
