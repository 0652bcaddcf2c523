"""The rule engine: every rule of a pack evaluated together over a batch of events.

- :mod:`loader.engine.plan` (pure Python, sqlglot): which rules share one pass over the events
  (*fused*) and which run alone (*solo*, with the reason), the enrichment lookups; its parts in
  :mod:`loader.engine.planned`, the shared sub-expressions in :mod:`loader.engine.share`;
- :mod:`loader.engine.sql` and :mod:`loader.engine.reduce_sql` (pure Python): the SQL text of
  a batch's passes, and of what is made of their sightings;
- :mod:`loader.engine.observe` (Spark): a batch of events → observations (rule, key, entity,
  value, event, result row), the lookups once per distinct argument, a failing rule found and
  left out;
- :mod:`loader.engine.state` and :mod:`loader.engine.step` (pure Python): what profiles,
  thresholds and dedup remember, and the step that applies observations to it — the one
  implementation of the rules' semantics, for `detect` (history as one batch) and `run`
  (batch after batch, the state in Spark's state store); :mod:`loader.engine.records`, the
  rows it writes;
- :mod:`loader.engine.evaluate` (Spark): `detect`'s and `test-rules`' whole evaluation;
  :mod:`loader.engine.ruletests` runs the rules' test cases, :mod:`loader.engine.export` the
  rules as Athena queries.
"""
