-- The models' inputs version starts at 0, once (the row has no key constraint: should two first
-- runs race, both rows are bumped together and the largest is read).
INSERT INTO {state} (kind, version)
SELECT 'inputs', 0
WHERE NOT EXISTS (SELECT 1 FROM {state} WHERE kind = 'inputs')
