-- Forget the last build (in the transaction that records the new one).
DELETE FROM {state} WHERE kind = 'built'
