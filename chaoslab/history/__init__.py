"""Resilience over time: every gameday, experiment and load run recorded in a local store under the lab's state
dir (store.py: SQLite), the figures each run is compared on (figures.py), the commit it ran (commit.py), how runs
are recorded (record.py), their trend (trend.py) and the report's history chart (chart.py)."""
