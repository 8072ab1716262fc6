"""Contribution scores: DeepSHAP/DeepLIFT, integrated gradients, ISM, windows and output."""
