"""Downstream tasks: each names the objective it fine-tunes with and the protocol that evaluates it."""
