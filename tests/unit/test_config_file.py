"""config.yml as `nameko run` reads it: every setting present, strings stay strings."""
import yaml
from nameko.cli.main import setup_yaml_parser

from shared.config import DEFAULTS


def load(monkeypatch, **env):
    for key in DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    setup_yaml_parser()
    with open("config.yml") as f:
        return yaml.safe_load(f)


def test_defaults_match_shared_config(monkeypatch):
    config = load(monkeypatch)
    for key, value in DEFAULTS.items():
        if key == "LOG_LEVEL":
            assert config["LOGGING"]["root"]["level"] == value
        else:
            assert str(config[key]) == value, key


def test_values_from_the_environment_stay_strings(monkeypatch):
    config = load(monkeypatch, REDIS_PREFIX="city:", QR_SIGNING_KEY="1234", ADMIN_TOKEN="1e5")
    assert config["REDIS_PREFIX"] == "city:"
    assert config["QR_SIGNING_KEY"] == "1234" and config["ADMIN_TOKEN"] == "1e5"
