"""The predict_tracks job's regions, shard plans and transforms."""
