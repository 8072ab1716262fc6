"""Registers the shared fixtures in tests/fixtures/ as plugins (tests import helpers from there)."""

import pytest

pytest_plugins = [
    'tests.fixtures.motif_folders',  # folders: hand-made contrib and discovery folders
    'tests.fixtures.records',  # small_records, tiny_export, shared_tiny_export
    'tests.fixtures.genomes',  # genome, track_genome
    'tests.fixtures.fake_remote',  # fake_remote
    'tests.fixtures.reads',  # reads_bam: small BAMs, tagAlign and fragments files
    'tests.fixtures.control_models',  # control_model: trained once a session
    'tests.fixtures.simulated_models',  # planted_motif_model: simulated, recorded, trained once
]

# Session fixtures that train a model: every test file that uses one runs in one xdist worker
# (scripts/test.sh runs two), so each is trained once, not once a worker.
_TRAINED_FIXTURES = ('planted_motif_model', 'control_model')


def pytest_collection_modifyitems(config, items):
    """Groups the tests for `--dist loadgroup`: a file's tests stay in one worker (its module
    fixtures are built once), and the files sharing a trained session fixture go together."""
    trained = {}
    for item in items:
        path = item.nodeid.split('::')[0]
        used = [f for f in _TRAINED_FIXTURES if f in item.fixturenames]
        if used:
            trained.setdefault(path, used[0])
    for item in items:
        path = item.nodeid.split('::')[0]
        item.add_marker(pytest.mark.xdist_group(trained.get(path, path)))
