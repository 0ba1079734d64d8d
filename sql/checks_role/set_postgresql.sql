-- Inside the check's read-only transaction: the rest of it runs as the checks role.
SET LOCAL ROLE {role}
