"""Encoders, the two architectures behind one interface, and the VQ-VAE."""
