"""``models.dual.loss``: InfoNCE against a hand computation, and the temperature."""

from __future__ import annotations

import math

import pytest
import torch

from models.dual.loss import Temperature, info_nce


def hand_info_nce(queries: list[list[float]], docs: list[list[float]], tau: float) -> float:
    """The same loss in plain Python: mean over rows of -log softmax(cos / tau)[row]."""

    def unit(v: list[float]) -> list[float]:
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    total = 0.0
    for i, q in enumerate(queries):
        logits = [sum(a * b for a, b in zip(unit(q), unit(d), strict=True)) / tau for d in docs]
        total += math.log(sum(math.exp(x) for x in logits)) - logits[i]
    return total / len(queries)


QUERIES = [[1.0, 0.0], [0.0, 2.0]]  # (B=2, D=2)
DOCS = [[3.0, 1.0], [1.0, 1.0], [-1.0, 0.5]]  # (B + M = 3, D): 2 positives, 1 negative


def test_matches_a_hand_computed_cross_entropy() -> None:
    loss = info_nce(torch.tensor(QUERIES), torch.tensor(DOCS), 0.5)
    assert loss.shape == ()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(hand_info_nce(QUERIES, DOCS, 0.5), rel=1e-5)


def test_temperature_tensor_and_float_agree() -> None:
    queries, docs = torch.tensor(QUERIES), torch.tensor(DOCS)
    as_float = info_nce(queries, docs, 0.1)
    as_tensor = info_nce(queries, docs, torch.tensor(0.1))
    assert as_float.item() == pytest.approx(as_tensor.item())
    assert as_float.item() == pytest.approx(hand_info_nce(QUERIES, DOCS, 0.1), rel=1e-5)


def test_embeddings_are_normalised_first() -> None:
    queries, docs = torch.tensor(QUERIES), torch.tensor(DOCS)
    scaled = info_nce(queries * 7.0, docs * 0.01, 0.5)
    assert scaled.item() == pytest.approx(info_nce(queries, docs, 0.5).item(), rel=1e-5)


def test_excluded_docs_are_not_negatives() -> None:
    queries, docs = torch.tensor(QUERIES), torch.tensor(DOCS)
    exclude = torch.tensor([[False, False, True], [False, False, False]])  # (B, B + M)
    masked = info_nce(queries, docs, 0.5, exclude)
    row0 = hand_info_nce(QUERIES[:1], DOCS[:2], 0.5)  # row 0 without the negative
    row1 = hand_info_nce(QUERIES[1:], [DOCS[1], DOCS[0], DOCS[2]], 0.5)
    assert masked.item() == pytest.approx((row0 + row1) / 2, rel=1e-5)


def test_perfect_alignment_beats_random() -> None:
    torch.manual_seed(0)
    queries = torch.randn(8, 16)  # (B, D)
    negatives = torch.randn(8, 16)  # (M, D)
    aligned = info_nce(queries, torch.cat([queries, negatives]), 0.05)
    shuffled = info_nce(queries, torch.cat([torch.randn(8, 16), negatives]), 0.05)
    assert aligned.item() < 0.1 < shuffled.item()


def test_one_row_without_negatives_has_zero_loss() -> None:
    assert info_nce(torch.randn(1, 4), torch.randn(1, 4), 0.05).item() == pytest.approx(0.0)


def test_gradients_reach_queries_and_docs() -> None:
    queries = torch.randn(3, 4, requires_grad=True)
    docs = torch.randn(5, 4, requires_grad=True)
    info_nce(queries, docs, 0.05).backward()
    assert queries.grad is not None and docs.grad is not None
    assert docs.grad.abs().sum() > 0


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="at least the 3 positives"):
        info_nce(torch.randn(3, 4), torch.randn(2, 4), 0.05)
    with pytest.raises(ValueError, match="same width"):
        info_nce(torch.randn(3, 4), torch.randn(3, 5), 0.05)


def test_stays_float32_under_autocast() -> None:
    queries, docs = torch.randn(2, 8), torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = info_nce(queries, docs, 0.05)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(info_nce(queries, docs, 0.05).item(), rel=1e-6)


# --- temperature ---------------------------------------------------------------------------


def test_learned_temperature_gets_a_gradient() -> None:
    temperature = Temperature(0.05, learned=True)
    assert temperature.value() == pytest.approx(0.05)
    assert [name for name, _ in temperature.named_parameters()] == ["log_tau"]
    info_nce(torch.randn(4, 8), torch.randn(6, 8), temperature()).backward()
    assert temperature.log_tau.grad is not None
    assert temperature.log_tau.grad.item() != 0.0


def test_fixed_temperature_has_no_parameters_and_no_gradient() -> None:
    temperature = Temperature(0.07, learned=False)
    assert list(temperature.parameters()) == []
    assert "log_tau" in dict(temperature.named_buffers())
    tau = temperature()
    assert not tau.requires_grad
    queries = torch.randn(4, 8, requires_grad=True)
    info_nce(queries, torch.randn(6, 8), tau).backward()
    assert temperature.log_tau.grad is None
    assert tau.item() == pytest.approx(0.07)


def test_temperature_is_clamped() -> None:
    temperature = Temperature(0.05, learned=True)
    with torch.no_grad():
        temperature.log_tau.fill_(math.log(1e-4))
    assert temperature.value() == pytest.approx(0.01)
    with torch.no_grad():
        temperature.log_tau.fill_(math.log(50.0))
    assert temperature.value() == pytest.approx(1.0)


def test_lower_temperature_sharpens_the_loss() -> None:
    torch.manual_seed(1)
    queries = torch.randn(4, 8)
    docs = torch.cat([queries + 0.1 * torch.randn(4, 8), torch.randn(4, 8)])
    assert info_nce(queries, docs, 0.01) < info_nce(queries, docs, 1.0)


@pytest.mark.parametrize("initial", [0.0, 0.005, 1.5, -0.1])
def test_initial_temperature_outside_bounds_is_refused(initial: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        Temperature(initial)


def test_fixed_temperature_is_saved_in_the_state_dict() -> None:
    restored = Temperature(0.05, learned=False)
    restored.load_state_dict(Temperature(0.2, learned=False).state_dict())
    assert restored.value() == pytest.approx(0.2)
