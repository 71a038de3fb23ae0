"""The accessor generator, the query hazard lint and the accessor benchmark (docs/accessors.md).

`generate.build()` turns `queries/*.sql` (parsed by aiosql, described on a live PostgreSQL) into the
typed modules of `coherence_sql/sql/`; `lint` finds what aiosql would mis-parse; `bench` times it.
"""
