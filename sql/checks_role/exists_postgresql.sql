-- Whether the checks role exists (PostgreSQL).
SELECT COUNT(*) FROM pg_roles WHERE rolname = :role
