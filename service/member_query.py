"""The query vector of a member's feed and of ``POST /v1/retrieve`` by member: the member's
indexed vector, with the vector of the post they engaged with last added at
``ServiceSettings.latest_weight`` (``index_store.member_query.blend_latest``).

The newest positive engagement (``processors.reembed.POSITIVE_ACTIONS``) comes from the
member histories the history feed keeps; a post that is not indexed (deleted, or not embedded
yet) leaves the member's vector alone, as does a member with no positive engagement."""

from __future__ import annotations

import numpy as np

from index_store import IndexStore
from index_store.member_query import blend_latest
from processors.engagement_history import MemberHistories
from processors.reembed import POSITIVE_ACTIONS


def member_query_vector(
    store: IndexStore,
    histories: MemberHistories,
    member_id: str,
    vector: np.ndarray,
    latest_weight: float,
) -> np.ndarray:
    """``vector`` (the member's, from ``store``) blended with their newest engaged post's."""
    if latest_weight == 0:
        return vector
    post_id = histories.latest_post(member_id, POSITIVE_ACTIONS)
    if post_id is None:
        return vector
    vectors, records = store.post_vectors([post_id])
    if records[0] is None:
        return vector
    return blend_latest(vector, vectors[0], latest_weight)
