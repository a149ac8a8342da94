"""Training organisms: the supervised loop, tokenizers and models from nothing, pretraining, distillation."""
