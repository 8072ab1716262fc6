"""Variant effect scores and variant files (VCF/TSV)."""
