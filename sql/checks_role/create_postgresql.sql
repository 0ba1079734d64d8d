-- The checks role: no login, no privileges of its own beyond the grants below.
CREATE ROLE {role} NOLOGIN
