"""Evaluation: test metrics, rollouts against the truth, equivariance and reference checks."""
