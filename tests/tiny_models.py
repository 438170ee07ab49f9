"""Tiny random Hugging Face models saved to a folder, for tests that must not download anything."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

WORDS = (
    "the a an is was it this that and or but not very good bad great terrible fine ok guitar string "
    "strings amp cable pedal sound tone price cheap broke works love hate buy bought return quality "
    "music play played playing loud quiet nice awful best worst product item one two three i you we "
    "they my for with to of in on at really"
).split()


def build_tiny_model(folder: Path, seed: int = 0, decoder: bool = False) -> Path:
    """Save a tiny random BERT (or GPT-2) with a ~100-token WordPiece tokenizer into ``folder``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast, GPT2Config, GPT2Model

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'")
    vocab = specials + WORDS + letters + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    vocab = list(dict.fromkeys(vocab))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # transformers 5 takes the vocabulary as ``vocab``; 4.x as ``vocab_file``
    arg = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    tok = BertTokenizerFast(**{arg: str(folder / "vocab.txt")}, do_lower_case=True)
    assert tok("good")["input_ids"][1] == vocab.index("good")
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    if decoder:
        config = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64)
        model = GPT2Model(config)
    else:
        config = BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
        )
        model = BertModel(config)
    model.save_pretrained(folder)
    return folder
