from coherence_sql.db import Connection


async def test_migrated_database_has_the_plan_tables(conn: Connection) -> None:
    tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert {"projects", "project_dependencies", "contributors", "assets", "contributions", "agent_tasks"} <= tables
