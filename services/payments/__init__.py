"""payments service: `python -m services.payments`."""
