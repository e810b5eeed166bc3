"""The shop's six modules in one deployable process (app.py says how and why)."""
