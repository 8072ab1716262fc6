"""Shared by every stage: command-line runs and errors, devices, output folders, progress."""
