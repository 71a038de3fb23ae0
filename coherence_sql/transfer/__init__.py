"""What an operator runs to move whole data sets: snapshots, backfill, verify, sample data,
rollback and the phase-3 export. It uses the cut-over package, never the other way round."""
