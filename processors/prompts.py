"""Prompt templates: structured post and member features rendered as text to embed.

These are the first, simple templates (``prompt_version`` below); a template change must
change the version so embeddings of different templates are never compared unknowingly.
Text is placed by concatenation, so template-looking braces in user text are inert.

Example::

    render_post_prompt(post_created)
    # 'post | format: article | author: ML engineer at Nimbus | industry: software\\ntext: ...'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from processors.text import clean_text
from schemas import MemberProfile, PostCreated

POST_PROMPT_VERSION = "post-simple-1"
MEMBER_PROMPT_VERSION = "member-simple-1"

MAX_POST_TEXT_CHARS = 2_000
MAX_LABEL_CHARS = 200
MAX_SUMMARY_CHARS = 160
MAX_HISTORY_IN_PROMPT = 10
MAX_SKILLS_IN_PROMPT = 30
MAX_POSITIONS_IN_PROMPT = 5


def render_post_prompt(post: PostCreated) -> str:
    """The post prompt: format, author, company, industry, then the post text."""
    header = _fields(
        ("format", post.format),
        ("author", post.author_headline),
        ("company", post.author_company),
        ("industry", post.industry),
    )
    return f"post | {header}\ntext: {clean_text(post.text, MAX_POST_TEXT_CHARS)}"


def post_summary(post: PostCreated) -> str:
    """A short description of a post for member histories."""
    return clean_text(post.text, MAX_SUMMARY_CHARS)


def render_member_prompt(profile: MemberProfile | None, engaged: Sequence[str]) -> str:
    """The member prompt: identity, skills, work history, education, then engaged posts.

    ``engaged`` holds summaries of positively engaged posts, oldest first; only the newest
    ``MAX_HISTORY_IN_PROMPT`` are rendered, still oldest first (newest last).
    """
    lines = ["member"]
    if profile is not None:
        lines.extend(_profile_lines(profile))
    recent = _non_empty(clean_text(s, MAX_SUMMARY_CHARS) for s in engaged[-MAX_HISTORY_IN_PROMPT:])
    if recent:
        lines.append("engaged with: " + " || ".join(recent))
    return "\n".join(line for line in lines if line)


def _profile_lines(profile: MemberProfile) -> list[str]:
    skills = _non_empty(
        clean_text(s, MAX_LABEL_CHARS) for s in profile.skills[:MAX_SKILLS_IN_PROMPT]
    )
    positions = [
        _label(p.title) + (f" at {_label(p.company)}" if p.company else "")
        for p in profile.positions[:MAX_POSITIONS_IN_PROMPT]
    ]
    schools = [
        ", ".join(_label(x) for x in (e.degree, e.field, e.school) if x) for e in profile.education
    ]
    return [
        _fields(
            ("headline", profile.headline),
            ("title", profile.title),
            ("company", profile.company),
            ("industry", profile.industry),
        ),
        "skills: " + ", ".join(skills) if skills else "",
        "experience: " + "; ".join(positions) if positions else "",
        "education: " + "; ".join(schools) if schools else "",
    ]


def _non_empty(items: Iterable[str]) -> list[str]:
    return [item for item in items if item]


def _fields(*pairs: tuple[str, str | None]) -> str:
    return " | ".join(f"{name}: {_label(value)}" for name, value in pairs if value)


def _label(value: str | None) -> str:
    return clean_text(value or "", MAX_LABEL_CHARS)
