"""Storage: the database connections, transactions and migrations. It imports nothing of
ours above the core modules."""
