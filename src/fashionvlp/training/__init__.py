"""The Accelerate training loop, its schedules and checkpoints."""
