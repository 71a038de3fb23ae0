"""What the API runs during the cut-over from the in-memory stores to PostgreSQL: settings, the
cut-over stores (dual-write, read share, shadow reads), write ordering, the journal and dead
letters, and the service the API opens (`open_cutover_stores`, `store_status`)."""
