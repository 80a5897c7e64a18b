"""The three days Duoyou must survive, and the SLAs each is judged by.

Pure Python: read by the runner (nameko venv) and the locustfile (Locust venv).
A shape is a list of (fraction of the run, fraction of peak users) points.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sla:
    """Production SLAs, measured by Locust on the same 2-core machine (so they
    include the client's own overhead)."""
    gate_p99_ms: float = 150
    checkin_p99_ms: float = 500
    booking_p99_ms: float = 1500
    search_p99_ms: float = 500
    error_rate: float = 0.01        # failures / requests
    oversells: int = 0
    double_admissions: int = 0
    double_rooms: int = 0

    def generous(self):
        """For the smoke test in `make test`: proves the verdict machinery,
        not the speed of a loaded CI machine. Integrity stays at zero."""
        return Sla(gate_p99_ms=5000, checkin_p99_ms=5000, booking_p99_ms=10000,
                   search_p99_ms=5000, error_rate=0.05)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    users: int                       # peak users by default
    shape: tuple                     # ((t_fraction, users_fraction), ...)
    weights: dict                    # user class -> weight
    hotels: int = 3
    rooms_per_type: int = 30
    venues: tuple = (("museum", "single", 1),)   # (kind, entry policy, lanes)
    pool_tickets: int = 60           # booked before the run, per venue
    pool_stays: int = 20             # booked for today before the run, per hotel
    spawn_rate: float = 0.5          # users per second, as a fraction of peak users
    sla: Sla = field(default_factory=Sla)

    def level(self, x):
        points = self.shape
        if x <= points[0][0]:
            return points[0][1]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0 or 1)
        return points[-1][1]


SCENARIOS = {
    # An ordinary Tuesday: a steady trickle everywhere.
    "weekday": Scenario(
        "weekday", "steady weekday: tourists, desks and gates at a constant low rate",
        users=30, shape=((0.0, 1.0), (1.0, 1.0)),
        weights={"tourist": 3, "desk": 2, "gate": 3},
        hotels=3, venues=(("museum", "single", 2), ("park", "multi", 2)),
        pool_tickets=60, pool_stays=15),
    # National Day across the city: everything busy, ramping up and down.
    "holiday": Scenario(
        "holiday", "holiday peak across the city: ramp up, plateau, ramp down",
        users=60, shape=((0.0, 0.2), (0.25, 1.0), (0.8, 1.0), (1.0, 0.5)),
        weights={"tourist": 4, "desk": 2, "gate": 4},
        hotels=6, rooms_per_type=40,
        venues=(("museum", "single", 3), ("park", "multi", 3), ("library", "multi", 1)),
        pool_tickets=120, pool_stays=20),
    # 08:30 at the Palace Museum: every lane opens at once on a queue.
    "opening": Scenario(
        "opening", "opening-time burst at a big museum: every lane at once",
        users=60, shape=((0.0, 1.0), (0.6, 1.0), (1.0, 0.3)), spawn_rate=1.0,
        weights={"tourist": 1, "desk": 1, "gate": 10},
        hotels=1, venues=(("museum", "single", 10),),
        pool_tickets=1500, pool_stays=5),
}
