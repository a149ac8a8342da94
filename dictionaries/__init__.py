"""Sparse autoencoders (sae-lens) trained on cached activations: trigger features, where they
fire, matching across safety stages. Hands features to `activations/` for ablation; never hooks a
model itself.
"""
