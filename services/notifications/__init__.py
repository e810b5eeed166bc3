"""notifications service: `python -m services.notifications`."""
