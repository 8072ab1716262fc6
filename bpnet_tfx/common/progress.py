"""Progress lines on stderr for long-running library work ('predict: 40/200 windows (20%), ...')."""

from __future__ import annotations

import sys
import time


class Progress:
    """A progress line on stderr every `every` items or `percent` % of `total`, and at the end.

    Args:
      label: the command's name, first on the line.
      unit: what is counted ('windows', 'examples').
      total: how many there will be, or None when unknown.
      every: a line every this many items; default `percent` % of `total` (1000 without it).
      percent: see `every`.
    """

    def __init__(
        self,
        label: str,
        unit: str,
        total: int | None,
        *,
        every: int | None = None,
        percent: float = 5.0,
    ):
        self._label, self._unit, self._total = label, unit, total
        if every is None:
            every = max(1, int(total * percent / 100)) if total else 1000
        self._every = every
        self._next = every
        self._last = 0
        self._start = time.perf_counter()

    def update(self, done: int, *, final: bool = False) -> None:
        """Reports `done` items if a step was crossed since the last line (or `final`)."""
        if (done < self._next and not final) or done == self._last:
            return
        self._last = done
        while self._next <= done:
            self._next += self._every
        rate = done / max(time.perf_counter() - self._start, 1e-9)
        of = f'/{self._total}' if self._total else ''
        pct = f' ({100 * done / self._total:.0f}%)' if self._total else ''
        print(
            f'{self._label}: {done}{of} {self._unit}{pct}, {rate:.1f} {self._unit}/s',
            file=sys.stderr,
            flush=True,
        )
