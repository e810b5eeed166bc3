"""`chaoslab compare BASE CANDIDATE`: two sets of runs of one plan (N seeded repetitions each, from two commits),
compared figure by figure: both medians and a bootstrap confidence interval of their difference (stats.py), a
regression only when it is significant and beyond a stated tolerance (judge.py), the sets read from run
directories or from a lab's history (sets.py), and JUnit for CI (junit.py)."""
