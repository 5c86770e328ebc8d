"""The prompt library: versioned templates that turn structured features into text to embed.

Post prompt: format, author headline, company, industry, engagement percentiles (views,
likes, comments, shares, author followers) and the post text. Member prompt: headline,
current title, company, industry, work history, skills, education and the posts the member
engaged with positively, oldest first (newest last).

Every prompt fits a token budget measured with the encoder's own tokenizer. When it does not,
text goes in this order: the post text (cut at a token boundary); for members the oldest
engaged posts, then education, skills and the oldest positions; identity fields go last.
Rendering is deterministic. ``prompt_version`` hashes the template version and the whole
``PromptConfig``, so it changes whenever the template or the bucketing config changes.

Example (budget 256, MiniLM tokenizer)::

    post | format: article | author: ML engineer | company: Nimbus Labs | industry: Software
    engagement: views <view_pct>71</view_pct> | likes <like_pct>40</like_pct> | ...
    text: We cut inference cost in half by ...
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from processors.percentiles import DEFAULT_K, FEATURES, render_percentile, wrapper_tokens
from processors.text import clean_text
from processors.token_budget import MEMO_CHARS, MEMO_ENTRIES, TokenMeter
from schemas import MemberProfile, PostCreated

TEMPLATE_VERSION = 2
MAX_LABEL_CHARS = 200
FEATURE_WORDS = {
    "views": "views",
    "likes": "likes",
    "comments": "comments",
    "shares": "shares",
    "followers": "author followers",
}


@dataclass(frozen=True)
class PromptConfig:
    """Everything that shapes prompt text; all of it is hashed into ``prompt_version``."""

    token_budget: int = 256
    """Tokens per prompt including the tokenizer's special tokens (MiniLM: 256)."""
    history_in_prompt: int = 50
    """Most engaged posts a member prompt lists (before the token budget cuts more)."""
    summary_chars: int = 160
    latest_line: bool = False
    """Name the member's newest engaged post on its own line too (``latest: …``), which gives
    it more weight under mean pooling; the history still lists it."""
    max_text_chars: int = 4_000
    """Characters of post text kept before token counting (bounds work on huge posts)."""
    features: tuple[str, ...] = FEATURES
    sketch_k: int = DEFAULT_K
    """KLL accuracy parameter of the percentile sketches (bucketing config)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Free-form settings a deployment wants reflected in the version."""

    def prompt_version(self, entity: str) -> str:
        """``post-v2-1a2b3c4d``: template version plus a hash of this config."""
        fields = asdict(self)
        if not self.latest_line:
            del fields["latest_line"]  # off: the versions of before the option existed
        payload = json.dumps({"template": TEMPLATE_VERSION, **fields}, sort_keys=True)
        return f"{entity}-v{TEMPLATE_VERSION}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


class PromptLibrary:
    """Renders post and member prompts within the token budget."""

    def __init__(self, config: PromptConfig, meter: TokenMeter) -> None:
        self.config = config
        self.meter = meter
        self.post_version = config.prompt_version("post")
        self.member_version = config.prompt_version("member")
        self._budget = config.token_budget - meter.special_tokens
        self.user_text = UserText([*wrapper_tokens(), *meter.reserved])

    def summary(self, post: PostCreated) -> str:
        """A short description of a post for member histories."""
        return self.user_text(post.text, self.config.summary_chars)

    def render_post(self, post: PostCreated, percentiles: Mapping[str, int]) -> str:
        """The post prompt; the text is cut to whatever the budget leaves."""
        header = "post | " + _fields(
            self.user_text,
            ("format", post.format),
            ("author", post.author_headline),
            ("company", post.author_company),
            ("industry", post.industry),
        )
        shown = [f for f in self.config.features if f in percentiles]
        engagement = " | ".join(
            f"{FEATURE_WORDS[f]} {render_percentile(f, percentiles[f])}" for f in shown
        )
        head = header + ("\nengagement: " + engagement if engagement else "") + "\ntext: "
        text = self.user_text(post.text, self.config.max_text_chars)
        room = self._budget - self.meter.count(head)
        if room <= 0:
            return self.meter.cut(head.rstrip(), self._budget)
        return head + self.meter.cut(text, room)

    def render_member(self, profile: MemberProfile | None, engaged: Sequence[str]) -> str:
        """The member prompt; ``engaged`` holds post summaries, oldest first."""
        shown = self.config.history_in_prompt
        recent = engaged[len(engaged) - shown :] if shown else []
        parts = _MemberParts.of(profile, recent, self.user_text)
        parts.latest_line = self.config.latest_line
        parts.keep_newest_history(self._budget, self.meter)
        rendered = parts.render()
        if self.meter.count(rendered) <= self._budget:
            return rendered  # the common case: one count of the whole prompt
        for shrink in (parts.drop_education, parts.drop_skill, parts.drop_position):
            while self.meter.count(parts.render()) > self._budget and shrink():
                pass
        rendered = parts.render()
        while self.meter.count(rendered) > self._budget and parts.history:
            parts.history.pop(0)  # token counts of parts are not always additive
            rendered = parts.render()
        return self.meter.cut(rendered, self._budget)


@dataclass
class _MemberParts:
    identity: str
    positions: list[str]
    skills: list[str]
    education: list[str]
    history: list[str]
    latest_line: bool = False

    @classmethod
    def of(
        cls, profile: MemberProfile | None, engaged: Sequence[str], clean: UserText
    ) -> _MemberParts:
        history = _non_empty(clean(s) for s in engaged)
        if profile is None:
            return cls("member", [], [], [], history)
        identity = "member | " + _fields(
            clean,
            ("headline", profile.headline),
            ("title", current_title(profile)),
            ("company", profile.company),
            ("industry", profile.industry),
        )
        positions = _non_empty(
            clean(p.title) + (f" at {clean(p.company)}" if p.company else "")
            for p in profile.positions
        )
        education = _non_empty(
            ", ".join(clean(x) for x in (e.degree, e.field, e.school) if x)
            for e in profile.education
        )
        skills = _non_empty(clean(s) for s in profile.skills)
        return cls(identity.rstrip(" |"), positions, skills, education, history)

    def render(self) -> str:
        lines = [
            self.identity,
            "latest: " + self.history[-1] if self.latest_line and self.history else "",
            "experience: " + "; ".join(self.positions) if self.positions else "",
            "skills: " + ", ".join(self.skills) if self.skills else "",
            "education: " + "; ".join(self.education) if self.education else "",
            "engaged with: " + " || ".join(self.history) if self.history else "",
        ]
        return "\n".join(line for line in lines if line)

    def keep_newest_history(self, budget: int, meter: TokenMeter) -> None:
        """Drop the oldest engaged posts until the rest fits beside everything else."""
        history, self.history = self.history, []
        room = budget - meter.count(self.render() + "\nengaged with: ")
        kept: list[str] = []
        for item in reversed(history):
            cost = meter.count(item) + meter.count("||")
            if cost > room:
                break
            kept.insert(0, item)
            room -= cost
        self.history = kept

    def drop_education(self) -> bool:
        return _drop(self.education, -1)

    def drop_skill(self) -> bool:
        return _drop(self.skills, -1)

    def drop_position(self) -> bool:
        return _drop(self.positions, 0)


def current_title(profile: MemberProfile) -> str | None:
    """The profile's title, else the title of a position without an end."""
    if profile.title:
        return profile.title
    current = [p.title for p in profile.positions if p.end_ms is None]
    return current[-1] if current else None


def _drop(items: list[str], index: int) -> bool:
    """Remove one item; False when there was none left to remove."""
    if not items:
        return False
    items.pop(index)
    return True


def _non_empty(items: Iterable[str]) -> list[str]:
    return [item for item in items if item]


def _fields(clean: UserText, *pairs: tuple[str, str | None]) -> str:
    labels = [(name, clean(value)) for name, value in pairs]
    return " | ".join(f"{name}: {label}" for name, label in labels if label)


class UserText:
    """Makes text from producers safe for a prompt: invisible characters gone, whitespace
    collapsed, length bounded, and no string the tokenizer would read as a special token.
    ``</view_pct>`` or ``[SEP]`` typed into a post would otherwise forge a feature or a
    boundary; invisible characters inside them (``</view_\u200bpct>``) do not help, since
    removal repeats until nothing changes."""

    def __init__(self, reserved: Iterable[str]) -> None:
        alternatives = sorted(set(reserved), key=len, reverse=True)
        self._reserved = re.compile("|".join(re.escape(token) for token in alternatives))
        self._memo: dict[tuple[str, int], str] = {}

    def __call__(self, value: str | None, max_chars: int = MAX_LABEL_CHARS) -> str:
        if not value or len(value) > MEMO_CHARS:
            return self._clean(value, max_chars)
        key = (value, max_chars)
        known = self._memo.get(key)
        if known is None:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()  # bounded; member histories repeat the same summaries
            known = self._memo[key] = self._clean(value, max_chars)
        return known

    def _clean(self, value: str | None, max_chars: int) -> str:
        text = clean_text(value or "", max_chars)
        while (stripped := clean_text(self._reserved.sub("", text), max_chars)) != text:
            text = stripped
        return text
