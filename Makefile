# soilclay: the two commands a user needs are `make demo` and `make test`.
# Both bootstrap first (idempotent): PostGIS, the local PostgreSQL cluster, .venv, the database.
SHELL := /bin/bash
VENV := .venv/bin
DEMO_DIR ?= $(or $(SOILCLAY_DEMO_DIR),var/demo)
DEMO_SIZE ?= demo
DEMO_SEED ?= 42
DEMO_AOI := $(if $(filter demo,$(DEMO_SIZE)),demo,demo-$(DEMO_SIZE))
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean-demo

setup:
	@bash scripts/bootstrap.sh

demo: setup
	@echo "[demo] migrating the database schema"
	@$(VENV)/soilclay db upgrade
	@echo "[demo] generating the demo world in $(DEMO_DIR) (size $(DEMO_SIZE), seed $(DEMO_SEED))"
	@$(VENV)/soilclay demo-world --out "$(DEMO_DIR)" --size $(DEMO_SIZE) --seed $(DEMO_SEED)
	@echo "[demo] registering the AOI and recording its scenes"
	@$(VENV)/soilclay aoi add "$(DEMO_DIR)/aoi.geojson"
	@SOILCLAY_SCENE_ARCHIVE="$(DEMO_DIR)/scenes" $(VENV)/soilclay scenes sync --aoi $(DEMO_AOI)
	@echo "[demo] building bare-soil Sentinel-2 and Sentinel-1 composites (local backend)"
	@$(VENV)/soilclay composites build --aoi $(DEMO_AOI)
	@$(VENV)/soilclay composites list --aoi $(DEMO_AOI)
	@echo "[demo] loading the soil samples and training CNN, RF and ANN (champion/challenger gate)"
	@$(VENV)/soilclay samples load "$(DEMO_DIR)/samples.csv" --source $(DEMO_AOI)
	@$(VENV)/soilclay model retrain --aoi $(DEMO_AOI) --source $(DEMO_AOI)
	@$(VENV)/soilclay model list
	@echo "[demo] loading the parcels and estimating clay per parcel with the champion"
	@$(VENV)/soilclay parcels load "$(DEMO_DIR)/parcels.gpkg"
	@$(VENV)/soilclay predict --aoi $(DEMO_AOI)

test: setup
	@$(VENV)/pytest $(PYTEST_ARGS)

lint: setup
	@$(VENV)/ruff check soilclay tests dags plugins benchmarks

clean-demo:
	rm -rf "$(DEMO_DIR)" "$(DEMO_DIR).partial"
