"""Counting reads files into bigWigs: reads_to_bigwig, and make_records --reads."""
