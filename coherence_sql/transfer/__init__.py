"""What an operator runs to move whole data sets: snapshots, backfill, verify, sample data,
rollback and the phase-3 export. It uses the cut-over package, never the other way round.

snapshot (the API's file format), snapshot_file (the format read and written record by record),
sample (generated snapshots), backfill/ (snapshot -> PostgreSQL),
postgres_reader (every table in one moment), export (PostgreSQL -> snapshot, via the store's
mappers), verify/ (both sides through one projection), rollback (each phase's settings), progress
(the callback type). Nothing here prints: `coherence_sql.commands.render` does.
"""
