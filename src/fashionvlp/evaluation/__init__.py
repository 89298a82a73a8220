"""Metrics (pure: arrays in, numbers out) and evaluation protocols."""
