-- name: ping()$
-- Whether the server answers at all.
SELECT 1 AS "ok!";

-- name: server_version()$
-- The server's version string, for status pages.
SELECT current_setting('server_version') AS "version!";
