"""`python -m bpnet_tfx.motifs COMMAND [--flags]`: picks the command's main and runs it.

Each command is its own absl main (its flags only); `python -m bpnet_tfx.motifs COMMAND
--help` lists them. Unknown or missing commands exit with status 2.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    'discover': ('discover', 'TF-MoDISco on a contrib folder -> patterns, MEME files, report'),
    'annotate': ('annotate', 'match discovered patterns to a MEME database (TOMTOM)'),
    'scan': ('scan', 'CWM scanning of contribution scores -> instances BED, counts per region'),
    'report': ('report', 're-render the HTML report (with annotations and scan counts)'),
    'marginalize': ('marginalize', 'insert motifs into shuffled backgrounds, predict the change'),
    'ablate': ('ablate', 'shuffle scanned instances away, predict the change'),
    'space': ('space', 'two motifs at distances 0..D: pair vs sum of singles (plot)'),
    'pipeline': ('pipeline', 'contrib -> discover -> annotate -> scan -> report in one folder'),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f'  {name.ljust(width)}  {text}' for name, (_, text) in COMMANDS.items()]
    return (
        'usage: python -m bpnet_tfx.motifs COMMAND [--flags]   (COMMAND --help: its flags)\n'
        'commands:\n' + '\n'.join(lines)
    )


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ('-h', '--help', 'help'):
        print(usage())
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    command = sys.argv[1]
    if command not in COMMANDS:
        print(f'motifs: error: unknown command {command!r}\n{usage()}', file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f'bpnet_tfx.motifs.commands.{COMMANDS[command][0]}')
    # absl's --help shows the flags of the module named by argv[0] and __main__'s docstring.
    sys.argv = [module.__name__, *sys.argv[2:]]
    sys.modules['__main__'].__doc__ = module.__doc__
    module.run()


if __name__ == '__main__':
    main()
