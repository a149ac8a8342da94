"""Probes and detectors on cached activations: tensors and labels in, per-layer scores out.

Linear probes (logistic regression, mass-mean, contrast-pair), unsupervised anomaly detectors,
cross-stage transfer. Every result carries its controls (clean twin, random-init model). Never
imports a model class.
"""
