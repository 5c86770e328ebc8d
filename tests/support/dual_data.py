"""Training data and settings shared by the dual-encoder trainer tests: two dozen member /
post pairs that are related without sharing words, and fast CPU settings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models import TextEncoder
from models.dual.examples import ContrastiveExample
from models.dual.train_settings import DualTrainSettings

TOPICS = [  # (member headline, the post they engaged with): related, rarely the same words
    (
        "Platform engineer running container clusters",
        "Autoscaling Kubernetes nodes before the Monday traffic spike",
    ),
    (
        "Home baker and food blogger",
        "My sourdough starter finally doubled overnight: hydration notes",
    ),
    ("Marathon runner and running coach", "Negative splits: how I paced the last 10k of Berlin"),
    (
        "Tax accountant for small businesses",
        "Quarterly VAT filing deadlines you cannot miss this year",
    ),
    ("Wildlife photographer", "Shooting herons at dawn with a 600mm lens and no tripod"),
    (
        "Data engineer building streaming pipelines",
        "Cutting Kafka consumer lag in half with better partitioning",
    ),
    ("Pediatric nurse", "Calming anxious toddlers before a vaccination"),
    (
        "Structural engineer designing bridges",
        "Why the cable-stayed span needed extra dampers against wind",
    ),
    ("Sommelier at a wine bar", "Pairing an oaky Chardonnay with roast chicken"),
    ("High school chemistry teacher", "A safe classroom demo of exothermic reactions"),
    ("Urban beekeeper", "Inspecting the hive for varroa mites in late summer"),
    ("Patent attorney", "Drafting claims that survive an obviousness rejection"),
    ("Game developer working in Unity", "Baking lightmaps without blowing the frame budget"),
    ("Commercial airline pilot", "Crosswind landings in a gusty autumn storm"),
    ("Supply chain manager at a retailer", "Safety stock formulas when lead times are volatile"),
    ("Jazz pianist", "Voicing ii-V-I progressions with rootless chords"),
    ("Cybersecurity analyst", "Triaging a phishing campaign that spoofed our CEO"),
    ("Organic farmer", "Cover crops that fixed nitrogen in our clay soil"),
    ("Frontend developer", "Shrinking our React bundle with route-based code splitting"),
    ("Yoga instructor", "Sequencing hip openers for desk workers"),
    ("Recruiter for engineering roles", "Writing job posts that senior engineers actually read"),
    ("Climate scientist", "What the new ice core record says about past CO2"),
    ("Restaurant owner", "Cutting food waste by redesigning our prep lists"),
    ("Machine learning researcher", "Contrastive fine-tuning of dual encoders with hard negatives"),
]
SHOWN = [  # shown to everyone, engaged by no one: the hard negatives
    "Thrilled to announce I have started a new position!",
    "Our team offsite was amazing, thanks everyone",
    "We are hiring interns for the summer cohort",
    "Five leadership lessons I learned from my dog",
    "Please congratulate our colleague on ten years with the company",
    "Join our webinar next Tuesday on digital transformation",
]
UNSEEN = [  # the easy negatives
    "Vintage stamp collection for sale",
    "The best hiking trails in Patagonia",
    "Knitting a cable sweater for winter",
    "Restoring an old motorcycle engine",
    "Birdwatching checklist for spring migration",
    "How to fold a fitted sheet",
]


def post(text: str) -> str:
    return f"post | format: text | <view_pct>71</view_pct>\ntext: {text}"


def topic_examples() -> list[ContrastiveExample]:
    return [
        ContrastiveExample(
            query=f"member\nheadline: {headline}",
            positive=post(text),
            hard_negatives=(post(SHOWN[i % 6]), post(SHOWN[(i + 1) % 6])),
            easy_negatives=(post(UNSEEN[i % 6]),),
        )
        for i, (headline, text) in enumerate(TOPICS)
    ]


def recall_at_1(encoder: TextEncoder, examples: Sequence[ContrastiveExample]) -> float:
    """Share of queries whose nearest positive (among all positives) is their own."""
    queries = encoder.encode([e.query for e in examples])  # (N, D)
    positives = encoder.encode([e.positive for e in examples])  # (N, D)
    return float(((queries @ positives.T).argmax(axis=1) == np.arange(len(examples))).mean())


def input_rows(encoder: TextEncoder) -> torch.Tensor:
    embeddings = encoder.model.get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Embedding)
    return embeddings.weight.detach()  # (V, D)


def fast(**overrides: object) -> DualTrainSettings:
    values: dict[str, object] = {
        "batch_size": 8,
        "learning_rate": 1e-4,
        "warmup_steps": 0,
        "max_length": 64,
        "device": "cpu",
        "progress": False,
    }
    return DualTrainSettings(**{**values, **overrides})  # type: ignore[arg-type]
