"""Using a trained model: SavedModel export, evaluation, metrics, prediction, tracks, plots."""
