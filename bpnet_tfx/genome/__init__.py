"""Genome files and sequence: one-hot encoding, FASTA, BED and bigWig I/O, window tiling."""
