"""Settings shared by every test: nothing downloads, nothing leaks between tests."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The torch runtime's default precision depends on the CPU (bfloat16 where it has AMX):
# tests compare embeddings at float32 tolerances and must pass alike on every machine, so
# they run float32 unless a test asks for another precision (tests/unit/models/test_encoder.py).
os.environ.setdefault("FEEDLINE_ENCODER_TORCH_DTYPE", "float32")
