"""Operating it: alerts, health, TLS, roles, backups."""
