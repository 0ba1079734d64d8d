-- Created once, with the tables: the identity the watermark Variables are keyed by.
INSERT INTO {identity} (warehouse_id, created_at)
VALUES (:warehouse_id, :created_at)
