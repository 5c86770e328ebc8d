"""An `ImportedDataset` as what the rest of feedline reads: wire events for
``feedline produce``, the engagement table for ``feedline train gr``, and a training set for
``feedline train dual-encoder`` / ``feedline eval``.

- Items → ``PostCreated`` (post id = item id; author = the brand's slug, ``unknown`` without
  one; company = brand; industry = the leaf category; text = title, then description),
  created at the item's own time or, when the data has none, its first interaction.
- Positive interactions → an ``impression`` and the dataset's positive action at the same
  time; shown-not-engaged ones → an ``impression`` alone.
- The training set is leave-one-out (`processors.loo_rows`) unless asked for a time split
  (`processors.training_rows`, the layout's default, with hard negatives from impressions).

Post prompts carry the one count the data has (positive interactions in the training part,
as a ``likes`` percentile, or raw with ``numbers="raw"``; ``numbers="none"`` leaves the
engagement line out); member prompts list the titles of the member's history.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import pyarrow as pa

from feedline.importers.dataset import ImportedDataset, Interaction, Item
from processors.loo_rows import LooSpec, Step, Target, assemble_leave_one_out
from processors.percentiles import PercentileSketch, render_percentile
from processors.prompts import PromptLibrary
from processors.training_rows import (
    BuildSpec,
    EngagementRow,
    PostInfo,
    assemble_training_set,
    split_time,
)
from schemas import Engagement, PostCreated
from schemas.engagement_table import ENGAGEMENTS_SCHEMA
from schemas.events import Action
from schemas.training_set import TrainingSet

PromptNumbers = Literal["percentile", "raw", "none"]
POPULARITY_FEATURE = "likes"
MAX_LABEL = 256
_NOT_ID = re.compile(r"[^A-Za-z0-9_.:@~-]+")


def author_id(brand: str | None) -> str:
    """A brand as an entity id: ``Texas Instruments`` → ``Texas-Instruments``."""
    slug = _NOT_ID.sub("-", brand or "").strip("-")[:128]
    return slug or "unknown"


def post_of(item: Item, created_at_ms: int, descriptions: bool = True) -> PostCreated:
    """The wire record of ``item``; its text is the title, then (``descriptions``) the
    description."""
    parts = (item.title, item.description) if descriptions else (item.title,)
    text = "\n".join(part for part in parts if part) or item.item_id
    return PostCreated(
        schema_version=1,
        post_id=item.item_id,
        author_id=author_id(item.brand),
        created_at_ms=item.created_at_ms if item.created_at_ms is not None else created_at_ms,
        format=item.format,
        text=text,
        author_company=item.brand[:MAX_LABEL] if item.brand else None,
        industry=item.categories[-1][:MAX_LABEL] if item.categories else None,
        language=item.language,
    )


def posts_of(dataset: ImportedDataset, descriptions: bool = True) -> dict[str, PostCreated]:
    """Every item as a post, created at its own time or its first interaction."""
    first: dict[str, int] = {}
    for interaction in dataset.interactions:
        first.setdefault(interaction.item_id, interaction.ts_ms)
    fallback = min(first.values(), default=0)
    return {
        item_id: post_of(item, first.get(item_id, fallback), descriptions)
        for item_id, item in dataset.items.items()
    }


def engagements_of(dataset: ImportedDataset) -> Iterator[Engagement]:
    """The interactions as engagements, in time order."""
    for interaction in dataset.interactions:
        yield _engagement(interaction, "impression")
        if interaction.positive:
            yield _engagement(interaction, dataset.positive_action)


def _engagement(interaction: Interaction, action: Action) -> Engagement:
    return Engagement(
        schema_version=1,
        member_id=interaction.member_id,
        post_id=interaction.item_id,
        ts_ms=interaction.ts_ms,
        action=action,
    )


def wire_events(dataset: ImportedDataset) -> Iterator[dict[str, object]]:
    """``{"topic", "value"}`` envelopes for ``feedline produce``: posts, then profiles, then
    engagements in time order (a post always precedes its engagements)."""
    for post in sorted(posts_of(dataset).values(), key=lambda p: p.created_at_ms):
        yield {"topic": "posts.created", "value": post.model_dump(mode="json", exclude_none=True)}
    for profile in dataset.profiles.values():
        value = profile.model_dump(mode="json", exclude_none=True)
        yield {"topic": "members.profile", "value": value}
    for engagement in engagements_of(dataset):
        value = engagement.model_dump(mode="json", exclude_none=True)
        yield {"topic": "engagements", "value": value}


def engagement_table(dataset: ImportedDataset) -> pa.Table:
    """The engagements as ``ENGAGEMENTS_SCHEMA`` (what ``feedline train gr`` reads)."""
    columns: dict[str, list[object]] = {name: [] for name in ENGAGEMENTS_SCHEMA.names}
    for engagement in engagements_of(dataset):
        for name, values in columns.items():
            values.append(getattr(engagement, name))
    return pa.Table.from_pydict(columns, schema=ENGAGEMENTS_SCHEMA)


class DatasetPrompts:
    """Post and member prompts of one dataset, from the training part only."""

    def __init__(
        self,
        dataset: ImportedDataset,
        library: PromptLibrary,
        popularity: Mapping[str, int],
        numbers: PromptNumbers = "percentile",
        descriptions: bool = True,
    ) -> None:
        self.library = library
        self.posts = posts_of(dataset, descriptions)
        self.profiles = dataset.profiles
        sketch = PercentileSketch.of(popularity.get(p, 0) for p in self.posts)
        self.post_prompts: dict[str, str] = {}
        for post_id, post in self.posts.items():
            count = popularity.get(post_id, 0)
            pcts = {} if numbers == "none" else {POPULARITY_FEATURE: sketch.percentile(count)}
            text = library.render_post(post, pcts)
            if numbers == "raw":
                text = text.replace(
                    render_percentile(POPULARITY_FEATURE, pcts[POPULARITY_FEATURE]), str(count), 1
                )
            self.post_prompts[post_id] = text
        self.summaries = {p: library.summary(post) for p, post in self.posts.items()}

    def member(self, member_id: str, history: Sequence[str]) -> str | None:
        """The member prompt from ``history`` (post ids, oldest first); None when the member
        has neither a profile nor a history."""
        profile = self.profiles.get(member_id)
        if profile is None and not history:
            return None
        return self.library.render_member(profile, [self.summaries[p] for p in history])


def leave_one_out_set(
    dataset: ImportedDataset,
    library: PromptLibrary,
    numbers: PromptNumbers = "percentile",
    descriptions: bool = True,
) -> TrainingSet:
    """The leave-one-out training set of ``dataset``'s positive interactions."""
    sequences: dict[str, list[Step]] = defaultdict(list)
    for interaction in dataset.interactions:
        if interaction.positive:
            sequences[interaction.member_id].append(Step(interaction.item_id, interaction.ts_ms))
    popularity: dict[str, int] = defaultdict(int)
    for steps in sequences.values():
        for step in steps[:-2]:
            popularity[step.post_id] += 1
    prompts = DatasetPrompts(dataset, library, popularity, numbers, descriptions)
    given = {
        (h.member_id, h.stage): Target(h.item_id, h.negative_ids) for h in dataset.heldout
    } or None
    return assemble_leave_one_out(
        sequences,
        _post_infos(prompts.posts),
        prompts.post_prompts,
        prompts.member,
        LooSpec(
            source=dataset.name,
            numbers="raw" if numbers == "raw" else "percentile",
            prompt_versions=_versions(library, numbers),
        ),
        given,
    )


def time_split_set(
    dataset: ImportedDataset,
    library: PromptLibrary,
    holdout_fraction: float = 0.2,
    max_hard_negatives: int = 4,
) -> TrainingSet:
    """The layout's time split, with hard negatives from shown-not-engaged items (MIND)."""
    rows = list(_engagement_rows(dataset))
    split = split_time((r.ts_ms for r in rows), holdout_fraction)
    popularity: dict[str, int] = defaultdict(int)
    history: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for interaction in dataset.interactions:
        if interaction.positive:
            history[interaction.member_id].append((interaction.ts_ms, interaction.item_id))
            if interaction.ts_ms < split:
                popularity[interaction.item_id] += 1
    prompts = DatasetPrompts(dataset, library, popularity)

    def member_prompt(member: str, ts_ms: int, target: str | None) -> str | None:
        events = history.get(member, [])
        before = [p for _, p in events[: bisect.bisect_left(events, (ts_ms, ""))]]
        return prompts.member(member, before)

    spec = BuildSpec(
        split_ms=split,
        holdout_fraction=holdout_fraction,
        source=dataset.name,
        max_hard_negatives=max_hard_negatives,
        prompt_versions=_versions(library, "percentile"),
        positive_actions=frozenset({dataset.positive_action}),
    )
    return assemble_training_set(
        rows,
        _post_infos(prompts.posts),
        member_prompt,
        lambda post_id, _at: prompts.post_prompts.get(post_id),
        spec,
    )


def _engagement_rows(dataset: ImportedDataset) -> Iterator[EngagementRow]:
    for e in engagements_of(dataset):
        yield EngagementRow(e.member_id, e.post_id, e.action, e.ts_ms)


def _post_infos(posts: Mapping[str, PostCreated]) -> list[PostInfo]:
    return [PostInfo(p.post_id, p.author_id, p.created_at_ms) for p in posts.values()]


def _versions(library: PromptLibrary, numbers: PromptNumbers) -> dict[str, str]:
    suffix = "" if numbers == "percentile" else f"+{numbers}-counts"
    return {"post": library.post_version + suffix, "member": library.member_version}
