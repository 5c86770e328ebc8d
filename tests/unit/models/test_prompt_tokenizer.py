"""``PromptTokenizer`` (no torch) counts and cuts as the encoder's transformers tokenizer does."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from feedline.world import WorldConfig, generate_world
from feedline.world_prompts import member_inputs, post_inputs
from models.encoder import default_model_path
from models.prompt_tokenizer import PromptTokenizer, load_prompt_tokenizer
from models.settings import EncoderSettings
from processors.prompts import PromptConfig, PromptLibrary
from processors.token_budget import TokenMeter

TEXTS = [
    "",
    "hello world",
    "<view_pct>71</view_pct> likes [SEP] [CLS] tail",
    "Ünïcödé — ellipsis… and emoji 🚀 mixed with CJK 数据",
    "a " * 400,
]


@pytest.fixture(scope="module")
def prompt_tokenizer() -> Any:
    return load_prompt_tokenizer(EncoderSettings())


def test_uses_tokenizers_not_transformers(prompt_tokenizer: Any) -> None:
    assert isinstance(prompt_tokenizer, PromptTokenizer)
    code = (
        "import sys; from models.prompt_tokenizer import load_prompt_tokenizer;"
        "from models.settings import EncoderSettings; load_prompt_tokenizer(EncoderSettings());"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_same_ids_offsets_and_specials(prompt_tokenizer: Any, tokenizer: Any) -> None:
    assert prompt_tokenizer.all_special_tokens == tokenizer.all_special_tokens
    assert prompt_tokenizer.num_special_tokens_to_add() == tokenizer.num_special_tokens_to_add()
    for text in TEXTS:
        for special in (False, True):
            ours = prompt_tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
            theirs = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
            assert ours["input_ids"] == theirs["input_ids"], text
            assert [tuple(o) for o in ours["offset_mapping"]] == [
                tuple(o) for o in theirs["offset_mapping"]
            ]


def test_percentile_wrappers_are_single_tokens(prompt_tokenizer: Any) -> None:
    ids = prompt_tokenizer("<view_pct>71</view_pct>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 3


def test_renders_the_same_prompts(prompt_tokenizer: Any, meter: TokenMeter) -> None:
    world = generate_world(WorldConfig(members=30, authors=10, posts=80))
    config = PromptConfig(token_budget=96, history_in_prompt=50)  # small: every cut path runs
    ours = PromptLibrary(config, TokenMeter(prompt_tokenizer))
    theirs = PromptLibrary(config, meter)
    for post, percentiles in post_inputs(world).values():
        assert ours.render_post(post, percentiles) == theirs.render_post(post, percentiles)
    for profile, history in member_inputs(world, theirs).values():
        assert ours.render_member(profile, history) == theirs.render_member(profile, history)


def test_special_tokens_of_a_checkpoint_without_special_tokens_map(tmp_path: Path) -> None:
    """transformers 5 saves only tokenizer_config.json: the same special tokens still."""
    from transformers import AutoTokenizer

    source = EncoderSettings().model_path or default_model_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "vocab.txt"):
        shutil.copy(source / name, tmp_path / name)
    ours = PromptTokenizer.from_model_dir(tmp_path, percentile_tokens=True)
    theirs = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert ours.all_special_tokens == theirs.all_special_tokens
    assert "[SEP]" in ours.all_special_tokens
