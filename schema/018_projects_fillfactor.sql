-- Room on each projects page for the updates that follow an insert. dependency_count changes with
-- every edge written from a project (the live add_dependency's trigger, the backfill's set-based
-- counts). On a full page such an UPDATE writes the new row version elsewhere and new entries in
-- every index of the table, the two trigram GIN indexes included: ~130-180 us a row measured at
-- 100k projects. With free space on the page it is a HOT update (no index entry, old versions
-- pruned on the page): ~13-24 us a row (docs/benchmarks.md "Backfill and transfer at scale").
-- 85%: about six new row versions fit on a page of ~40 projects. Applies to pages written from now
-- on (no rewrite and no long lock here): the backfill's and the indexer's.

ALTER TABLE projects SET (fillfactor = 85);
