"""The model: records and their events, rule kinds, the pure evaluator and the Ledger service."""
