"""Tiny randomly initialised Hugging Face models with a locally built tokenizer, saved to a
folder, so tests run the real loading code without any download."""

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel, PreTrainedTokenizerFast

WORDS = "title brand category sanding roll grit pipette tips glass beaker acme tools".split()


def _tokenizer(with_pad: bool) -> PreTrainedTokenizerFast:
    specials = ["[UNK]", "[PAD]"] if with_pad else ["[UNK]"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    extra = {"pad_token": "[PAD]"} if with_pad else {"eos_token": "[UNK]"}
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", **extra)


def save_tiny_model(folder: Path, kind: str) -> Path:
    """``kind`` "bert" (an encoder with a pad token) or "llama" (a decoder without one):
    hidden size 16, one layer. -> ``folder``."""
    torch.manual_seed(0)
    n = len(WORDS) + 2
    if kind == "bert":
        cfg = BertConfig(vocab_size=n, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)
        model, tok = BertModel(cfg), _tokenizer(with_pad=True)
    else:
        cfg = LlamaConfig(vocab_size=n, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
        model, tok = LlamaModel(cfg), _tokenizer(with_pad=False)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
