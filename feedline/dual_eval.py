"""``feedline eval retrieval``: a dual encoder against a training set's time split.

Posts are embedded from their prompts as of the split; each evaluated member from their
prompt as of the split. Candidates are every post except those the member saw before the
split and their own; the relevant posts are those they engaged with positively after it.
"""

from __future__ import annotations

import numpy as np

from models.dual.retrieval_eval import RetrievalReport, retrieval_report
from models.encoder import TextEncoder
from schemas.training_set import TrainingSet


def evaluate_retrieval(training_set: TrainingSet, encoder: TextEncoder) -> RetrievalReport:
    """Recall@10/50, NDCG@10 and the popularity correlation of ``encoder``."""
    posts = training_set.posts.to_pydict()
    row = {post_id: i for i, post_id in enumerate(posts["post_id"])}
    by_author: dict[str, set[int]] = {}
    for i, author in enumerate(posts["author_id"]):
        if author is not None:
            by_author.setdefault(author, set()).add(i)
    evaluated = training_set.eval.to_pydict()
    relevant = [{row[p] for p in ids if p in row} for ids in evaluated["relevant_post_ids"]]
    excluded = [
        {row[p] for p in seen if p in row} | by_author.get(member, set())
        for member, seen in zip(evaluated["member_id"], evaluated["seen_before_split"], strict=True)
    ]
    keep = [i for i, r in enumerate(relevant) if r]
    post_vectors = encoder.encode(posts["post_prompt"])
    member_vectors = encoder.encode([evaluated["member_prompt"][i] for i in keep])
    return retrieval_report(
        member_vectors,
        post_vectors,
        [relevant[i] for i in keep],
        [excluded[i] for i in keep],
        np.asarray(posts["popularity"], np.float64),
    )
