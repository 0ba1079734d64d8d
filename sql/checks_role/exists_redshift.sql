-- Whether the checks user exists (Redshift: SET SESSION AUTHORIZATION takes a user).
SELECT COUNT(*) FROM pg_user WHERE usename = :role
