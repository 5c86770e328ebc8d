"""Fixtures shared by the unit tests: the encoder's real tokenizer, loaded once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any

import pytest

from processors.token_budget import TokenMeter


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """The bundled MiniLM tokenizer with the percentile wrappers registered (as in production)."""
    from models.encoder import load_tokenizer
    from models.settings import EncoderSettings

    loaded, _ = load_tokenizer(EncoderSettings())
    return loaded


@pytest.fixture(scope="session")
def meter(tokenizer: Any) -> TokenMeter:
    """Counts and cuts in the tokens the encoder sees."""
    return TokenMeter(tokenizer)
