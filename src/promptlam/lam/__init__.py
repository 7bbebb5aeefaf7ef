"""Latent action models: data, models, augmentation, training and probes."""
