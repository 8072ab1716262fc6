"""The flagfiles in configs/: each parses with train's flags (a misspelt or mistyped flag would
stop a user's first run), and the demo configs share the schedule and counts weight that the
design study chose (docs/training.md)."""

import functools
import json
import pathlib
import subprocess
import sys

import pytest

from tests.fixtures.paths import REPO

CONFIGS = sorted(p.name for p in (pathlib.Path(REPO) / 'configs').glob('*.flags'))
_PARSE = """
import json, sys
from absl import flags
import bpnet_tfx.train  # noqa: F401 (defines the flags)
flags.FLAGS(['train', '--flagfile=configs/' + sys.argv[1]])
names = ('epochs', 'patience', 'counts_loss_weight', 'counts_head', 'batch_size')
print(json.dumps({n: getattr(flags.FLAGS, n) for n in names}))
"""


@functools.cache
def _values(config: str) -> dict:
    proc = subprocess.run(
        [sys.executable, '-c', _PARSE, config], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize('config', CONFIGS)
def test_every_config_parses_with_trains_flags(config):
    values = _values(config)
    assert values['epochs'] >= 1 and values['batch_size'] >= 1


def test_the_demo_configs_share_the_studied_defaults():
    demos = [c for c in CONFIGS if c.startswith('demo')]
    assert demos == ['demo.flags', 'demo_2114.flags', 'demo_multitask.flags']
    for config in demos:
        values = _values(config)
        assert (values['epochs'], values['patience']) == (16, 3), config
        assert values['counts_loss_weight'] == 'auto', config
        assert values['counts_head'] == 'profile_sum', config
