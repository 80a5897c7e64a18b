# Duoyou: `make run` starts the whole city locally, `make test` runs every test.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCUST_VENV := .venv-locust
SERVICES := services.booking.service:BookingService services.checkin.service:CheckinService services.entry.service:EntryService

.PHONY: venv locust-venv servers run seed test unit bench load clean

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip 'setuptools<82' wheel
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Locust runs on gevent, nameko on eventlet: separate virtual environments.
locust-venv: $(LOCUST_VENV)/.installed
$(LOCUST_VENV)/.installed: loadtest/requirements.txt
	$(PY) -m venv $(LOCUST_VENV)
	$(LOCUST_VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(LOCUST_VENV)/bin/pip install -q --disable-pip-version-check -r loadtest/requirements.txt
	touch $@

servers:
	@bash scripts/ensure-servers.sh

seed: venv servers
	$(BIN)/python -m services.booking.seed demo

run: venv servers
	$(BIN)/python -m services.booking.seed demo
	exec $(BIN)/nameko run --config config.yml $(SERVICES)

test: venv locust-venv servers
	$(BIN)/python -m pytest

unit: venv
	$(BIN)/python -m pytest tests/unit

bench: venv servers
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run

load: venv locust-venv servers
	$(BIN)/python -m loadtest.run --scenario weekday --duration 60

clean:
	rm -rf $(VENV) $(LOCUST_VENV) reports
