-- Inside the check's read-only transaction: the rest of it runs as the checks user (needs a superuser loader).
SET LOCAL SESSION AUTHORIZATION {role}
