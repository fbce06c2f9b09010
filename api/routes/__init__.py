"""The HTTP routes, one module per resource, every path written out."""
