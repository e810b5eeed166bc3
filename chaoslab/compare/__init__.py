"""`chaoslab compare BASE CANDIDATE`: two sets of runs of one plan (N seeded repetitions each, from two commits),
compared figure by figure: both medians and a bootstrap confidence interval of their difference, a regression only
when it is significant and beyond a stated tolerance.

- judge.py  two sets compared figure by figure, and what counts as a regression
- junit.py  compare's JUnit file: one test case per figure, a failure for a regression
- sets.py   the two sides: sets of runs from run directories or from a lab's history
- stats.py  the median and a bootstrap confidence interval of the difference of medians
"""
