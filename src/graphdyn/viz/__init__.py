"""Figures (PNG, via matplotlib's Agg backend: no screen needed)."""
