"""Fine-tune one shared encoder as a dual encoder with InfoNCE (LinkedIn's 2026 recipe).

Member prompts and post prompts go through the same weights. Each step embeds ``B`` member
prompts and ``B + M`` post prompts (the ``B`` engaged posts, then the sampled hard and easy
negatives); every post that is not a row's own positive is a negative for that row. The
percentile special tokens are rows of the input embedding matrix, so they are trained too.
AdamW, linear warm-up then a constant rate, gradient clipping, bf16 autocast on CUDA.

Example::

    result = train_dual_encoder(examples, DualTrainSettings(epochs=2), Path("models/ft"))
    encoder = TextEncoder.load(EncoderSettings(model_path=result.out_dir))
    assert encoder.model_version == result.model_version
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.dual.examples import ContrastiveExample, ExampleSource, build_batch, epoch_examples
from models.dual.loss import Temperature, info_nce
from models.dual.train_settings import DualTrainSettings
from models.encoder import MODEL_CARD_FILE, TextEncoder, default_model_path, pool
from models.settings import EncoderSettings

log = logging.getLogger(__name__)


class DualTrainResult(NamedTuple):
    """What a training run produced and how fast it went."""

    model_version: str
    """``<base name>-ft-<first 12 hex of the weights' sha256>``; what the encoder reports."""
    out_dir: Path
    """The saved model directory (loadable with ``TextEncoder.load``)."""
    step_losses: list[float]
    """InfoNCE loss of every optimiser step, in order."""
    epoch_losses: list[float]
    """Mean loss per epoch, weighted by the queries of each step."""
    seconds: float
    """Wall time of the training loop (not loading or saving)."""
    steps: int
    examples_per_s: float
    """Queries (positive pairs) trained per second of ``seconds``."""


def train_dual_encoder(
    examples: ExampleSource,
    settings: DualTrainSettings,
    out_dir: Path,
    on_step: Callable[[int, float], None] | None = None,
) -> DualTrainResult:
    """Fine-tune ``settings.base_path()`` on ``examples`` and save it to ``out_dir``.

    ``examples`` is a fixed sequence or a sampler ``(epoch, rng) -> examples`` called at the
    start of each epoch. ``on_step(step, loss)`` is called after every optimiser step.
    """
    log.info("dual-encoder training with %s", settings.model_dump_json())
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    encoder = TextEncoder.load(_encoder_settings(settings), backend="transformers")
    trainer = _Trainer(encoder, settings)
    started = time.perf_counter()
    for epoch in range(settings.epochs):
        trainer.epoch(epoch_examples(examples, epoch, rng), rng, on_step)
        if trainer.done():
            break
    seconds = time.perf_counter() - started
    version = trainer.save(Path(out_dir))
    log.info("saved %s to %s after %d steps", version, out_dir, len(trainer.step_losses))
    return DualTrainResult(
        model_version=version,
        out_dir=Path(out_dir),
        step_losses=trainer.step_losses,
        epoch_losses=trainer.epoch_losses,
        seconds=seconds,
        steps=len(trainer.step_losses),
        examples_per_s=trainer.queries / seconds if seconds > 0 else 0.0,
    )


class _Trainer:
    """The model, tokenizer, temperature and optimiser of one run."""

    def __init__(self, encoder: TextEncoder, settings: DualTrainSettings) -> None:
        self.settings = settings
        self.encoder = encoder
        model, tokenizer = encoder.model, encoder.tokenizer
        if not isinstance(model, PreTrainedModel) or not isinstance(
            tokenizer, PreTrainedTokenizerBase
        ):
            raise TypeError("training needs TextEncoder.load(..., backend='transformers')")
        self.model: PreTrainedModel = model
        self.tokenizer: PreTrainedTokenizerBase = tokenizer
        self.device = encoder.device
        self.autocast = settings.bf16 and self.device.type == "cuda"
        self.temperature = Temperature(settings.temperature, settings.learn_temperature)
        self.temperature.to(self.device)
        self.use_cache = getattr(self.model.config, "use_cache", None)
        _prepare_for_training(self.model, settings.use_gradient_checkpointing())
        self.optimizer = _optimizer(self.model, self.temperature, settings)
        warmup = settings.warmup_steps
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.step_losses: list[float] = []
        self.epoch_losses: list[float] = []
        self.queries = 0

    def done(self) -> bool:
        cap = self.settings.max_steps
        return cap is not None and len(self.step_losses) >= cap

    def epoch(
        self,
        examples: Sequence[ContrastiveExample],
        rng: np.random.Generator,
        on_step: Callable[[int, float], None] | None,
    ) -> None:
        size = self.settings.batch_size
        order = rng.permutation(len(examples))
        total, count = 0.0, 0
        for start in range(0, len(order), size):
            if self.done():
                break
            chunk = [examples[int(i)] for i in order[start : start + size]]
            loss = self.step(chunk, rng)
            total, count = total + loss * len(chunk), count + len(chunk)
            if on_step is not None:
                on_step(len(self.step_losses), loss)
        if count:
            self.epoch_losses.append(total / count)

    def step(self, chunk: list[ContrastiveExample], rng: np.random.Generator) -> float:
        batch = build_batch(chunk, self.settings.hard_negatives, self.settings.easy_negatives, rng)
        queries = self.embed(batch.queries)  # (B, D)
        docs = self.embed(batch.docs)  # (B + M, D)
        exclude = torch.from_numpy(batch.exclude).to(self.device)  # (B, B + M)
        loss = info_nce(queries, docs, self.temperature(), exclude)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        value = float(loss.detach())
        self.step_losses.append(value)
        self.queries += len(chunk)
        return value

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Pooled, not yet normalised embeddings ``(N, D)`` with gradients."""
        inputs = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.settings.max_length,
            return_tensors="pt",
        ).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            hidden = self.model(**inputs).last_hidden_state  # (N, T, D)
        return pool(hidden.float(), inputs["attention_mask"], self.encoder.pooling)  # (N, D)

    def save(self, out_dir: Path) -> str:
        self.model.eval()
        if self.model.is_gradient_checkpointing:
            self.model.gradient_checkpointing_disable()
        if self.use_cache is not None:
            self.model.config.use_cache = self.use_cache
        return save_dual_encoder(
            self.model,
            self.tokenizer,
            out_dir,
            base_path=self.settings.base_path(),
            card={
                "base_model_version": self.encoder.model_version,
                "pooling": self.encoder.pooling,
                "temperature": self.temperature.value(),
                "steps": len(self.step_losses),
                "settings": self.settings.model_dump(mode="json"),
            },
        )


def _encoder_settings(settings: DualTrainSettings) -> EncoderSettings:
    return EncoderSettings(
        model_path=settings.base_path(),
        pooling=settings.pooling,
        max_length=settings.max_length,
        percentile_tokens=settings.percentile_tokens,
        device=settings.device,
    )


def _prepare_for_training(model: PreTrainedModel, checkpointing: bool) -> None:
    model.train()
    if getattr(model.config, "use_cache", None):
        model.config.use_cache = False  # a KV cache is useless in training and clashes with
        # gradient checkpointing
    if not checkpointing:
        return
    if model.supports_gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        log.info("%s does not support gradient checkpointing", type(model).__name__)


def _optimizer(
    model: PreTrainedModel, temperature: Temperature, settings: DualTrainSettings
) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and norms, nor on the temperature (decay would pull
    ``log τ`` towards 0, i.e. ``τ`` towards 1)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict[str, object]] = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": settings.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    if settings.learn_temperature:
        groups.append(
            {
                "params": list(temperature.parameters()),
                "weight_decay": 0.0,
                "lr": settings.temperature_learning_rate,
            }
        )
    return torch.optim.AdamW(groups, lr=settings.learning_rate)


def save_dual_encoder(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    *,
    base_path: Path,
    card: dict[str, Any],
) -> str:
    """Write weights (safetensors), tokenizer and ``feedline_model.json`` to ``out_dir``
    atomically (a temp dir beside it, then a rename); return the model version.

    The saved ``config.json`` keeps the base's ``architectures``: ``AutoModel`` saves a
    decoder LLM as its bare ``…Model``, and ``TextEncoder.load`` would then no longer see a
    decoder and would pick mean instead of last-token pooling.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _keep_architectures(base_path, tmp)
        base_name = _base_name(base_path)
        version = f"{base_name}-ft-{_weights_digest(tmp)[:12]}"
        full = {"model_version": version, "base_name": base_name, **card}
        (tmp / MODEL_CARD_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        _make_readable(tmp)
        _replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return version


def _keep_architectures(base_path: Path, saved: Path) -> None:
    architectures = json.loads((base_path / "config.json").read_text()).get("architectures")
    if not architectures:
        return
    config = json.loads((saved / "config.json").read_text())
    config["architectures"] = architectures
    (saved / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _base_name(base_path: Path) -> str:
    """The bundled MiniLM's name, a fine-tuned base's own base name, else the directory's."""
    card = base_path / MODEL_CARD_FILE
    if card.exists():
        data = json.loads(card.read_text())
        return str(data.get("base_name", data["model_version"]))
    return "all-MiniLM-L6-v2" if base_path == default_model_path() else base_path.name


def _weights_digest(directory: Path) -> str:
    """sha256 over every safetensors file (one, or the shards of a large model), by name."""
    digest = hashlib.sha256()
    for file in sorted(directory.glob("*.safetensors")):
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def _make_readable(directory: Path) -> None:
    """``mkdtemp`` and the safetensors writer leave owner-only modes; the embedding workers
    and the query service may run as other users."""
    directory.chmod(0o755)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _replace(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        tmp.rename(out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-old-", dir=out_dir.parent))
    out_dir.rename(old / out_dir.name)
    tmp.rename(out_dir)
    shutil.rmtree(old)
