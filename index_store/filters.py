"""Attribute pre-filters for post search: which posts may be returned at all.

A filter is applied before top-k (as an id mask the backend honours inside its scan), never
after, so a search returns ``k`` posts whenever ``k`` eligible posts exist.

Example::

    PostFilter(languages=frozenset({"en"}), created_after_ms=1_764_000_000_000,
               exclude_posts=frozenset(already_seen))
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PostFilter:
    """Conditions a post must meet; ``None`` or empty means "no condition"."""

    languages: frozenset[str] | None = None
    """Allowed ``language`` values."""
    formats: frozenset[str] | None = None
    """Allowed ``format`` values (text, article, image, video, document, poll)."""
    authors: frozenset[str] | None = None
    """Allowed ``author_id`` values."""
    exclude_authors: frozenset[str] = field(default_factory=frozenset)
    """Authors whose posts are never returned (e.g. the member's own posts)."""
    created_after_ms: int | None = None
    """Only posts created at or after this epoch millisecond."""
    exclude_posts: frozenset[str] = field(default_factory=frozenset)
    """Post ids never returned (e.g. posts the member already saw)."""

    @property
    def is_empty(self) -> bool:
        """True when every indexed post passes."""
        return (
            self.languages is None
            and self.formats is None
            and self.authors is None
            and not self.exclude_authors
            and self.created_after_ms is None
            and not self.exclude_posts
        )


NO_FILTER = PostFilter()
