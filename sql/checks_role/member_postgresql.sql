-- The loader may SET ROLE to the checks role (PostgreSQL 16+ does not grant this to a role's creator).
GRANT {role} TO CURRENT_USER
