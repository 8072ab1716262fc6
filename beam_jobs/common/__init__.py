"""Shared by the Beam jobs: errors, files (remote paths, publishing), runners, logs."""
