"""The supervisor's database: one interface over SQLite (embedded) and PostgreSQL (production)."""
