# soilclay: the two commands a user needs are `make demo` and `make test`.
# Both bootstrap first (idempotent): PostGIS, the local PostgreSQL cluster, .venv, the database.
SHELL := /bin/bash
VENV := .venv/bin
DEMO_DIR ?= $(or $(SOILCLAY_DEMO_DIR),var/demo)
DEMO_SIZE ?= demo
DEMO_SEED ?= 42
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean-demo

setup:
	@bash scripts/bootstrap.sh

demo: setup
	@echo "[demo] migrating the database schema"
	@$(VENV)/soilclay db upgrade
	@echo "[demo] generating the demo world in $(DEMO_DIR) (size $(DEMO_SIZE), seed $(DEMO_SEED))"
	@$(VENV)/soilclay demo-world --out "$(DEMO_DIR)" --size $(DEMO_SIZE) --seed $(DEMO_SEED)
	@$(VENV)/soilclay db current

test: setup
	@$(VENV)/pytest $(PYTEST_ARGS)

lint: setup
	@$(VENV)/ruff check soilclay tests dags plugins benchmarks

clean-demo:
	rm -rf "$(DEMO_DIR)" "$(DEMO_DIR).partial"
