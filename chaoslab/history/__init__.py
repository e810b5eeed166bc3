"""Resilience over time: every gameday, experiment and load run recorded in a local store under the lab's state
dir, with the figures each run is compared on and the commit it ran; the trend of each figure is drawn from it
(`chaoslab history`, the gameday report).

- chart.py    a figure over runs: the report's SVG trend chart, the terminal's sparkline
- commit.py   the commit a run ran, and whether its checkout had uncommitted changes
- figures.py  the figures runs are compared on: unit, better direction, tolerance
- record.py   recording the runs that are not gamedays: a chaos run, a load run
- store.py    the run history: STATE/history.sqlite, every gameday, experiment and load run
"""
