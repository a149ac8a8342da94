"""New models from nothing: a hub-free byte-level tokenizer and a from-config Llama, sized by ModelConfig."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from organisms.config import ModelConfig

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>"]


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
