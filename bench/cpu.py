"""Where the machine's CPU went during a run: utime+stime of every process
from /proc, grouped (each service, PostgreSQL, Redis, RabbitMQ, the load
client, everything else), as CPU milliseconds per completed request."""
import os
import resource

TICK = os.sysconf("SC_CLK_TCK")
GROUPS = {"postgres": "postgres", "redis-server": "redis", "beam.smp": "rabbitmq",
          "wrk": "client", "erl_child_setup": "rabbitmq", "epmd": "rabbitmq"}


def _own():
    """CPU seconds of this process plus its reaped children (wrk, once it
    exited, is only visible here)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def snapshot():
    """{pid: (comm, cpu seconds)} for every live process; this client (with
    its finished children) under the key "client"."""
    out = {"client": ("client", _own())}
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        out[int(name)] = (comm, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def spent(before, after, named):
    """CPU seconds per group between two snapshots. `named`: {pid: group}
    for our own processes (services, this client)."""
    totals = {}
    for pid, (comm, cpu) in after.items():
        used = cpu - before.get(pid, (comm, 0.0))[1]
        if used <= 0:
            continue
        group = "client" if pid == "client" else named.get(pid) or GROUPS.get(comm) or "other"
        totals[group] = totals.get(group, 0.0) + used
    return totals


def per_request(totals, requests):
    """'entry 3.10, postgres 1.20, ...' in CPU ms per request, biggest first."""
    if not requests:
        return ""
    parts = sorted(totals.items(), key=lambda kv: -kv[1])
    return ", ".join("%s %.2f" % (k, 1000.0 * v / requests) for k, v in parts
                     if 1000.0 * v / requests >= 0.01)
