"""What the demo prints for a few members: their profile and their top-10 feed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from feedline.world import TOPIC_NAMES, World
from service.api import FeedItem

SNIPPET_CHARS = 48


def print_member_feeds(
    console: Console, world: World, feeds: Mapping[str, Sequence[FeedItem]], how_many: int
) -> None:
    """A profile line and a feed table for the first ``how_many`` members."""
    texts = {p["post_id"]: p["text"] for p in world.posts}
    for member in world.members[:how_many]:
        member_id = member["member_id"]
        interests = world.member_interests[member_id]
        console.rule(f"[bold]{member_id}[/bold] — {member.get('headline', '')}")
        console.print("interests: " + ", ".join(TOPIC_NAMES[t] for t in interests))
        table = Table(show_header=True, header_style="bold")
        for column, width in (("#", 2), ("post", 8), ("topic", 22), ("on interest", 11)):
            table.add_column(column, no_wrap=True, min_width=width)
        table.add_column("score", no_wrap=True, min_width=5, justify="right")
        table.add_column("text", no_wrap=True, overflow="ellipsis", max_width=SNIPPET_CHARS)
        for rank, item in enumerate(feeds[member_id], start=1):
            topic = world.post_topic.get(item.post_id, "?")
            table.add_row(
                str(rank),
                item.post_id,
                TOPIC_NAMES.get(topic, topic),
                "yes" if topic in interests else "-",
                f"{item.score:.3f}",
                texts.get(item.post_id, "")[:SNIPPET_CHARS],
            )
        console.print(table)
