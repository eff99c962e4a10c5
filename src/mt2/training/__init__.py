"""Training and fitting: the pretraining config, the objective and its step, the Lightning
trainer with its online probes (the probe itself comes from the caller), the masked variant's
codebook, and what inference reads from a trained model (calibration, mode probe, export)."""
