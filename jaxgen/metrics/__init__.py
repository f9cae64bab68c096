"""Evaluation metrics for generative models: FID, KID, Inception Score, SSIM, MS-SSIM.

The modules here hold only the numerical core, computed from features, logits or image
arrays; they reproduce the reference implementations (pytorch-fid, torch-fidelity,
tf.image) so that numbers are comparable with published ones.
"""
