"""What touches the outside: settings, storage, the composition root, logging, metrics."""
