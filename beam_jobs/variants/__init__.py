"""The variants job's transforms (its model handler is beam_jobs/inference/handler.py)."""
