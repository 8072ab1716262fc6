"""The demo simulator: planted motifs, Poisson counts, FASTA/BED/bigWig output."""
