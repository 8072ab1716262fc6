"""Apache Beam jobs that turn genomes, peaks and bigWig tracks into BPNet training records."""
