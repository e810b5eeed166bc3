"""The scenarios, shapes, thresholds, exporter and summary of loadtests/locustfile.py, for a user's own locustfile:

    locust -f loadtests/with_your_users.py,my_locustfile.py --mix custom --scenario ramp ...

(`chaoslab load --locustfile my_locustfile.py` runs exactly that). Loaded under this module name rather than as
loadtests/locustfile.py, since Locust imports each file under its base name and users name theirs locustfile.py
too. With --mix custom, the users are your file's classes (--custom-users picks some), not chaoslab's journeys.
"""

from loadtests.locustfile import ScenarioShape  # noqa: F401 - Locust finds the shape in this module

__all__ = ["ScenarioShape"]
