import os

# Before the kit is imported: its metrics then carry the module that recorded them (services/kit/metrics.py).
os.environ["METRICS_BY_MODULE"] = "1"

from services.monolith.app import main  # noqa: E402

if __name__ == "__main__":
    main()
