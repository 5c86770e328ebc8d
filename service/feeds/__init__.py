"""The serve role's inputs: what keeps a query-service replica's index and histories current.

- ``topic_reader``: every partition of some topics read in order, with positions and the end
  offsets that catching up means (the one follow-a-topic loop of this wing);
- ``index_feed``: the embedding topics into the ``IndexStore`` (``index_start`` restores a
  snapshot or starts empty, ``index_updates`` applies records, ``index_checkpoint`` writes
  snapshots and commits what they cover), and the store switch of a rollout;
- ``history_feed``: ``engagements`` into ``MemberHistories`` for the ranker;
- ``rollout``: a shadow index of a new model built from the compacted topics.

Nothing outside ``service`` uses them; each replica reads everything, without a consumer group
deciding what it owns.
"""
