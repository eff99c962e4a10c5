"""Training: views of the batch, the objective, the Lightning trainer."""
