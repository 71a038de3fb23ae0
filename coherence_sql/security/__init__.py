"""Security of the connection and of the database.

- `tls`: what a refused TLS connection means, as a typed error (certificate, host name, TLS-only server).
"""
