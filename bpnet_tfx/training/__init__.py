"""Training: config, steps, input pipeline, epochs, checkpoints, history, worker faults."""
