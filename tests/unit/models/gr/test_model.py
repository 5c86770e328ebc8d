from __future__ import annotations

import pytest
import torch

from models.gr.config import DEFAULT_TASK_WEIGHTS, GRConfig, GRConfigError
from models.gr.mmoe import MMoEHead
from models.gr.model import GRInputs
from models.gr.scoring import one_per_row
from tests.unit.models.gr.gr_fixtures import SMALL, random_inputs, random_model

FULL = GRConfig(dropout=0.0)  # the default sizes: 384-d posts, 1,000-step history


def _separately(model: torch.nn.Module, inputs: GRInputs, chunk: int = 64) -> torch.Tensor:
    rows = one_per_row(inputs)
    scores = [
        model.score_candidates(rows.batch_slice(i, i + chunk))
        for i in range(0, rows.action.shape[0], chunk)
    ]
    return torch.cat(scores)[:, 0]  # (K, N)


@pytest.mark.parametrize(
    ("history_len", "n_candidates", "config"),
    [(0, 1, SMALL), (0, 9, SMALL), (1, 3, SMALL), (57, 128, SMALL), (1000, 512, FULL)],
)
def test_shared_context_scores_equal_scoring_each_candidate_alone(
    history_len: int, n_candidates: int, config: GRConfig
) -> None:
    model = random_model(config, seed=history_len)
    inputs = random_inputs(history_len, n_candidates, config, seed=n_candidates)
    with torch.inference_mode():
        shared = model.score_candidates(inputs, "sdpa")[0]  # (K, N)
        alone = _separately(model, inputs)
    assert shared.shape == (n_candidates, len(config.tasks))
    assert (shared - alone).abs().max().item() <= 1e-4


def test_flex_path_scores_equal_sdpa_path() -> None:
    model = random_model()
    inputs = random_inputs(200, 150, seed=3)
    with torch.inference_mode():
        sdpa = model.score_candidates(inputs, "sdpa")
        flex = model.score_candidates(inputs, "flex")
    assert (sdpa - flex).abs().max().item() <= 1e-5


def test_a_candidate_score_ignores_the_other_candidates_but_not_the_history() -> None:
    model = random_model()
    inputs = random_inputs(40, 6, seed=5)
    other_candidates = inputs.post_emb.clone()
    other_candidates[:, 41:] = torch.randn_like(other_candidates[:, 41:])
    other_history = inputs.post_emb.clone()
    other_history[:, 10] = -other_history[:, 10]
    with torch.inference_mode():
        base = model.score_candidates(inputs)[0, 0]
        moved = model.score_candidates(inputs._replace(post_emb=other_candidates))[0, 0]
        changed = model.score_candidates(inputs._replace(post_emb=other_history))[0, 0]
    assert torch.equal(base, moved)
    assert (base - changed).abs().max().item() > 1e-6


def test_training_pass_is_causal() -> None:
    model = random_model()
    inputs = random_inputs(30, 0, seed=2)
    later = inputs.post_emb.clone()
    later[:, 20:] = 0.0
    with torch.inference_mode():
        full = model(inputs)
        cut = model(inputs._replace(post_emb=later))
    assert torch.equal(full[:, :20], cut[:, :20])
    assert not torch.equal(full[:, 20:], cut[:, 20:])


def test_history_longer_than_configured_is_refused() -> None:
    model = random_model(GRConfig(embedding_dim=16, d_model=32, max_history=8))
    with pytest.raises(ValueError, match="max_history"):
        model(random_inputs(9, 1, GRConfig(embedding_dim=16, d_model=32, max_history=8)))


def test_mmoe_has_one_gate_per_task_over_shared_experts() -> None:
    head = MMoEHead(in_dim=10, n_experts=3, expert_dim=8, tower_dim=4, n_tasks=6)
    x = torch.randn(2, 5, 10)
    assert head(x).shape == (2, 5, 6)
    gates = head.gates(x).view(2, 5, 6, 3).softmax(-1)
    assert torch.allclose(gates.sum(-1), torch.ones(2, 5, 6))
    assert head.gates.out_features == 6 * 3


def test_config_round_trips_and_rejects_bad_values() -> None:
    config = GRConfig(d_model=48, n_heads=6, task_weights={"like": 3.0})
    assert GRConfig.from_dict(config.to_dict()) == config
    assert GRConfig().task_weights == DEFAULT_TASK_WEIGHTS
    with pytest.raises(GRConfigError, match="n_heads"):
        GRConfig(d_model=30, n_heads=4)
    with pytest.raises(GRConfigError, match="unknown tasks"):
        GRConfig(task_weights={"retweet": 1.0})
    with pytest.raises(GRConfigError, match="upgrade"):
        GRConfig.from_dict({**config.to_dict(), "new_field": 1})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flex_on_cuda_scores_equal_sdpa_on_cpu() -> None:
    """The compiled FlexAttention kernel (auto on CUDA) applies the shared-context mask the
    CPU's SDPA path applies."""
    model = random_model()
    inputs = random_inputs(200, 150, seed=3)
    with torch.inference_mode():
        cpu = model.score_candidates(inputs, "sdpa")
        model.to("cuda")
        on_cuda = {
            impl: model.score_candidates(inputs.to("cuda"), impl).cpu() for impl in ("flex", "sdpa")
        }
    model.to("cpu")
    for impl, scores in on_cuda.items():
        assert (scores - cpu).abs().max().item() <= 1e-3, impl
