"""The vector a member's feed is retrieved with: their prompt's embedding, with the embedding
of the post they engaged with last added at ``latest_weight`` (0 leaves it alone).

Mean pooling over a member prompt weighs every history item alike, while on sequential data
the newest item carries most of the signal (on Amazon Office the last item's text neighbours
beat every prompt alone). Adding that item's own vector to the member's keeps both: the
prompt's long-term interests and the session's direction. The same function serves the query
service (``FEEDLINE_SERVICE_LATEST_WEIGHT``) and the leave-one-out evaluation
(``feedline eval leave-one-out --latest-weight``), so what is measured is what is served.
"""

from __future__ import annotations

import numpy as np


def blend_latest(member: np.ndarray, latest: np.ndarray | None, weight: float) -> np.ndarray:
    """``normalize(member + weight * latest)`` per row; ``member`` unchanged when ``weight`` is
    0 or there is no latest post. ``member`` and ``latest``: (D,) or (N, D), unit rows.

    Raises:
        ValueError: a negative weight, or shapes that differ.
    """
    if weight < 0:
        raise ValueError(f"latest_weight must be >= 0, got {weight}")
    if latest is None or weight == 0:
        return member
    if latest.shape != member.shape:
        raise ValueError(f"member {member.shape} and latest {latest.shape} differ in shape")
    blended = np.asarray(member, np.float32) + np.float32(weight) * np.asarray(latest, np.float32)
    norms = np.linalg.norm(blended, axis=-1, keepdims=True)
    return (blended / np.maximum(norms, 1e-12)).astype(np.float32)
