"""Registers the shared fixtures in tests/fixtures/ as plugins (tests import helpers from there)."""

pytest_plugins = [
    'tests.fixtures.motif_folders',  # folders: hand-made contrib and discovery folders
    'tests.fixtures.records',  # small_records, tiny_export, shared_tiny_export
    'tests.fixtures.genomes',  # genome, track_genome
    'tests.fixtures.fake_remote',  # fake_remote
    'tests.fixtures.reads',  # reads_bam: small BAMs, tagAlign and fragments files
    'tests.fixtures.control_models',  # control_model: trained once a session
    'tests.fixtures.simulated_models',  # planted_motif_model: simulated, recorded, trained once
]
