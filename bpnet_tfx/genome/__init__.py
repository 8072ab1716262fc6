"""Genome files and sequence: one-hot encoding, reverse complement, FASTA/BED/bigWig I/O."""
