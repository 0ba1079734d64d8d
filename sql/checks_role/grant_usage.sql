-- The checks role may look up tables in the warehouse's schema.
GRANT USAGE ON SCHEMA {schema} TO {role}
