# soilclay: the two commands a user needs are `make demo` and `make test`.
# Both bootstrap first (idempotent): PostGIS, the local PostgreSQL cluster, .venv, the database.
SHELL := /bin/bash
VENV := .venv/bin
DEMO_DIR ?= $(or $(SOILCLAY_DEMO_DIR),var/demo)
DEMO_SIZE ?= demo
DEMO_SEED ?= 42
DEMO_AOI := $(if $(filter demo,$(DEMO_SIZE)),demo,demo-$(DEMO_SIZE))
PYTEST_ARGS ?=
AIRFLOW_PORT ?= 8080
# soilclay's metrics exporter and Prometheus, started and stopped with Airflow (`soilclay airflow up/down`).
EXPORTER_PORT ?= 9464
PROMETHEUS_PORT ?= 9090
KEEP_UI ?= 0
ADD_SCENES ?= 6
# What the Airflow tasks see (paths made absolute by `soilclay airflow up`).
DEMO_ENV := SOILCLAY_SCENE_ARCHIVE="$(DEMO_DIR)/scenes" SOILCLAY_DEMO_DIR="$(DEMO_DIR)" SOILCLAY_AOIS=$(DEMO_AOI)

.PHONY: setup demo demo-run demo-more-scenes airflow-down test test-ee-live lint clean-demo

setup:
	@bash scripts/bootstrap.sh

# The demo: data people load by hand (AOI, samples, parcels), then Airflow does the rest.
demo: setup
	@echo "[demo] migrating the database schema"
	@$(VENV)/soilclay db upgrade
	@echo "[demo] generating the demo world in $(DEMO_DIR) (size $(DEMO_SIZE), seed $(DEMO_SEED))"
	@$(VENV)/soilclay demo-world --out "$(DEMO_DIR)" --size $(DEMO_SIZE) --seed $(DEMO_SEED)
	@echo "[demo] registering the AOI, loading the soil samples and the parcels"
	@$(VENV)/soilclay aoi add "$(DEMO_DIR)/aoi.geojson"
	@$(VENV)/soilclay samples load "$(DEMO_DIR)/samples.csv" --source $(DEMO_AOI)
	@$(VENV)/soilclay parcels load "$(DEMO_DIR)/parcels.gpkg"
	@$(MAKE) --no-print-directory demo-run

# Start Airflow (with the exporter and Prometheus), trigger the scene watch through the REST API, wait
# until the Asset events have run composites, retraining and parcel estimates, print the summary with the
# addresses; stop the stack unless KEEP_UI=1.
demo-run: setup
	@echo "[demo] starting Airflow (api-server, scheduler, dag-processor, triggerer) on port $(AIRFLOW_PORT)," \
		"the metrics exporter on $(EXPORTER_PORT) and Prometheus on $(PROMETHEUS_PORT)"
	@$(DEMO_ENV) $(VENV)/soilclay airflow up --port $(AIRFLOW_PORT) --exporter-port $(EXPORTER_PORT) \
		--prometheus-port $(PROMETHEUS_PORT)
	@status=0; \
	echo "[demo] triggering soilclay_scene_watch; the Assets drive composites -> retrain -> predict"; \
	$(DEMO_ENV) $(VENV)/soilclay airflow trigger soilclay_scene_watch --timeout 3600 || status=$$?; \
	$(VENV)/soilclay demo-summary --aoi $(DEMO_AOI) --world "$(DEMO_DIR)" \
		--ui-url http://localhost:$(AIRFLOW_PORT)/ --ui-login "admin / admin" \
		--parcel-map-url http://localhost:$(AIRFLOW_PORT)/plugin/soilclay-parcel-map \
		$$(command -v prometheus >/dev/null && echo --prometheus-url http://localhost:$(PROMETHEUS_PORT)/) \
		--exporter-url http://localhost:$(EXPORTER_PORT)/metrics; \
	if [ "$(KEEP_UI)" = 1 ]; then echo "[demo] Airflow, Prometheus and the exporter keep running (KEEP_UI=1):" \
		"stop them with 'make airflow-down'"; \
	else echo "[demo] stopping Airflow, Prometheus and the exporter (keep them with KEEP_UI=1)"; \
		$(VENV)/soilclay airflow down; fi; \
	exit $$status

# New scenes arrive: extend the world, then the watch records them and the chain refreshes everything.
demo-more-scenes: setup
	@$(VENV)/soilclay demo-world --out "$(DEMO_DIR)" --add-scenes $(ADD_SCENES)
	@$(MAKE) --no-print-directory demo-run

airflow-down: setup
	@$(VENV)/soilclay airflow down

test: setup
	@$(VENV)/pytest $(PYTEST_ARGS)

test-ee-live: setup  ## both composite backends on Earth Engine's own pixels (needs SOILCLAY_EE_PROJECT + credentials)
	@SOILCLAY_EE_LIVE=1 $(VENV)/pytest -m ee_live tests/composites/test_live_parity.py -s

lint: setup
	@$(VENV)/ruff check soilclay tests dags plugins benchmarks

clean-demo:
	rm -rf "$(DEMO_DIR)" "$(DEMO_DIR).partial"
