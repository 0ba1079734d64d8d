-- The warehouse's identity (the smallest, should two first runs have raced to create it).
SELECT MIN(warehouse_id) FROM {identity}
