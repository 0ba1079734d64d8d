-- The checks user: no password (no login), no privileges beyond the grants below.
CREATE USER {role} PASSWORD DISABLE
