"""Time in the city's zone: a booking's "today" is Shanghai's today, whatever
the machine's zone."""
import datetime
import zoneinfo

from shared.config import setting


def city_zone(config=None):
    return zoneinfo.ZoneInfo(setting(config, "CITY_TZ"))


def city_now(config=None):
    return datetime.datetime.now(city_zone(config))


def city_today(config=None):
    return city_now(config).date()
