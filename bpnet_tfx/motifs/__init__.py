"""Motifs from contribution scores: discovery (modisco-lite), annotation against a motif
database, CWM scanning for instances, in-silico syntax experiments and their HTML report.

`python -m bpnet_tfx.motifs COMMAND --flags`; the commands are listed by
`python -m bpnet_tfx.motifs --help` and documented in docs/motifs.md.
"""
