"""Locust scenarios with SLA verdicts: `python -m loadtest.run --scenario weekday`."""
