"""Security of the connection and of the database.

- `tls`: what a refused TLS connection means, as a typed error (certificate, host name, TLS-only server).
- `roles`: the plan's least-privilege roles, rendered by PostgreSQL from queries/roles.sql.
"""
