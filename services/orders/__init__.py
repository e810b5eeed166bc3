"""orders service: `python -m services.orders`."""
