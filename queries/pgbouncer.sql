-- name: session_settings()^
-- The timeouts this session runs with: behind PgBouncer in transaction mode they come from the
-- role's or database's settings (ALTER ROLE ... SET), never from the connection's startup packet.
-- The role is quoted as an identifier, ready for that statement.
SELECT
    quote_ident(current_user) AS "role!",
    current_setting('lock_timeout') AS "lock_timeout!",
    current_setting('statement_timeout') AS "statement_timeout!",
    current_setting('idle_in_transaction_session_timeout') AS "idle_in_transaction_session_timeout!";
