"""Training: typed YAML configs, the Lightning module, self-describing checkpoints, runs."""
