"""Read models fed by the event log."""
