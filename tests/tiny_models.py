"""Tiny randomly initialised Hugging Face model directories for tests: built from a config
with the packaged MiniLM tokenizer, saved like real models, nothing downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from transformers import AutoTokenizer, BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

from models.encoder import default_model_path


def save_tiny_model(directory: Path, kind: Literal["llama", "bert"]) -> Path:
    """A 32-dim LLaMA-style decoder LLM or BERT encoder in ``directory``; returns it."""
    tokenizer = AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)
    torch.manual_seed(0)
    if kind == "llama":
        config = LlamaConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
        LlamaForCausalLM(config).save_pretrained(directory)
    else:
        bert = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
        BertModel(bert).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
