"""Settings with defaults for the local servers.

nameko hands each service its config dict (from config.yml, which only
substitutes environment variables); `setting()` reads a key from it and falls
back to the environment and then to the local default, so plain scripts (seed
CLI, benchmarks) read the same values as the services.
"""
import os

DEFAULTS = {
    "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/",
    "WEB_SERVER_ADDRESS": "0.0.0.0:8000",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/duoyou",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "REDIS_PREFIX": "duoyou:",
    # Tokens and keys below are development defaults; production sets them
    # through the environment (k8s Secret).
    "ADMIN_TOKEN": "duoyou-admin-dev",
    "ID_HASH_KEY": "duoyou-dev-id-hash-key-change-me",
    # Ed25519 seed (32 bytes, hex) that signs QR codes; only booking needs it.
    "QR_SIGNING_KEY": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    # Public key that gates and desks verify QR codes with (hex); derived
    # from QR_SIGNING_KEY when unset.
    "QR_PUBLIC_KEY": "",
    "CITY_TZ": "Asia/Shanghai",
    "RPC_TIMEOUT": "0.8",
    "MAX_BODY_BYTES": "65536",
    "LOG_LEVEL": "INFO",
}


def setting(config, key):
    """Value of `key` from a nameko config dict, the environment or the default."""
    if config is not None and config.get(key) not in (None, ""):
        return config[key]
    value = os.environ.get(key)
    if value not in (None, ""):
        return value
    return DEFAULTS.get(key)


def env_config(**overrides):
    """A config dict built from the environment (for scripts and tests)."""
    config = {key: setting(None, key) for key in DEFAULTS}
    config.update(overrides)
    return config
