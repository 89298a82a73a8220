# Two commands for a fresh clone: `make run` and `make test`. Each one sets up .venv on its own.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A directory remote shared by the clones on this machine, so `dvc push` in one and `dvc pull` in another work.
DVC_REMOTE ?= $(HOME)/.local/share/fashionvlp/dvc-remote
MLFLOW_PORT ?= 5000
FLOW_UI_PORT ?= 4200
# A Prefect server of this checkout (make prefect-server / make ui); deploy and worker talk to it.
PREFECT_HOME ?= $(CURDIR)/.prefect
FLOW_API ?= http://127.0.0.1:$(FLOW_UI_PORT)/api

export MLFLOW_DISABLE_TELEMETRY=true
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DO_NOT_TRACK=true
export DVC_NO_ANALYTICS=1
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Reproducible MKL numerics (see src/fashionvlp/env.py): no load-dependent kernels or threads.
export MKL_CBWR=AUTO
export MKL_DYNAMIC=FALSE
export OMP_DYNAMIC=FALSE

.PHONY: setup run test mlflow-ui prefect-server ui deploy worker team-check dvc-remote data synth validate bench bench-serving ablation sweep export serve promote backfill clean-venv

setup: $(STAMP) dvc-remote

# torch and torchvision go in first and pinned: an unpinned resolve would pull gigabytes of other builds.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[serve,dev]"
	@touch $(STAMP)

dvc-remote: $(STAMP)
	@mkdir -p "$(DVC_REMOTE)"
	@$(VENV)/bin/dvc remote add --local --force --default local "$(DVC_REMOTE)" >/dev/null

# CATALOG=DIR trains on another catalog (an imported one: `fashionvlp data import`); ARGS adds flow options,
# e.g. ARGS="--set=evaluation.allow_fallback=true" for a catalog with fewer than 101 products per subcategory.
run: setup
	$(PY) flows/retrain.py $(if $(CATALOG),--set=paths.catalog=$(abspath $(CATALOG))) $(ARGS)

# Two pytest-xdist workers, one per core: most tests wait on a subprocess, a server or one thread, so two at
# a time nearly halve the wall time; loadscope keeps a module's tests (and its fixtures) on one worker.
PYTEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope

# The papers' pre-training ablations at tiny scale on the embedded catalog: FashionViL's objective table
# (derived/ablation/ablation.md) and KG-FLIP guided vs unguided (derived/ablation-kgflip/ablation.md),
# which needs a longer attribute fine-tuning to learn anything at this scale.
ABLATION_SEEDS ?= 3
FASHIONVIL_ABLATION ?= --set=pretrain.steps=200 $(foreach t,xmr tgir classification ocir,--set=finetune.$(t).steps=100)
KGFLIP_ABLATION ?= --set=pretrain.steps=400 --set=finetune.attributes.steps=600
ablation: data
	$(PY) flows/ablation.py --preset=tiny --only=fashionvil --seeds=$(ABLATION_SEEDS) $(FASHIONVIL_ABLATION)
	$(PY) flows/ablation.py --preset=tiny --only=kgflip --seeds=$(ABLATION_SEEDS) --out=derived/ablation-kgflip $(KGFLIP_ABLATION)

# A grid of named configurations (configs/sweeps/*.yaml), each row an MLflow run of the sweep's experiment:
# derived/sweep/<name>/sweep.md. ROW="label" runs one row (and the row its pre-trained model comes from).
SWEEP ?= configs/sweeps/issue13.yaml
sweep: data
	$(PY) flows/sweep.py --sweep=$(SWEEP) $(if $(ROW),--row="$(ROW)")

# From fine-tuned models to production: export + register (challenger), the gate, then production.
export: setup
	$(VENV)/bin/fashionvlp export --register --int8

promote: setup
	$(PY) flows/promote.py --production

# ONNX Runtime serving on 127.0.0.1:8080 of models:/fashionvlp-fashionvil@production (deploy/serving.yaml);
# MODEL=derived/export/fashionvil serves a bundle directory instead.
MODEL ?=
serve: setup
	$(VENV)/bin/fashionvlp serve --config deploy/serving.yaml $(if $(MODEL),--model $(MODEL))

# Fill the catalog's missing attributes with the production model (Dask, sharded, resumable) → backfill/.
backfill: setup
	$(PY) flows/backfill.py

# Serving and backfill figures for an exported bundle (make export first).
BUNDLE ?= derived/export/fashionvil
bench-serving: setup
	$(PY) bench/onnx_latency.py --bundle $(BUNDLE)
	$(PY) bench/serving_throughput.py --bundle $(BUNDLE)
	$(PY) bench/backfill_throughput.py --bundle $(BUNDLE)

mlflow-ui: setup
	@mkdir -p mlflow/artifacts
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) \
	    --backend-store-uri sqlite:///$(CURDIR)/mlflow/mlflow.db \
	    --default-artifact-root file://$(CURDIR)/mlflow/artifacts

prefect-server: setup
	@mkdir -p "$(PREFECT_HOME)"
	PREFECT_HOME=$(PREFECT_HOME) $(VENV)/bin/prefect server start --host 127.0.0.1 --port $(FLOW_UI_PORT)

# Both UIs on loopback: MLflow on :$(MLFLOW_PORT), Prefect on :$(FLOW_UI_PORT). Ctrl-C stops both.
ui: setup
	@$(MAKE) --no-print-directory -j2 mlflow-ui prefect-server

# The deployments of prefect.yaml (cron schedules for retraining and backfill) on the Prefect API, and a
# process worker that runs them from this checkout.
deploy: setup
	PREFECT_API_URL=$(FLOW_API) $(VENV)/bin/prefect work-pool create fashionvlp --type process --overwrite
	PREFECT_API_URL=$(FLOW_API) FASHIONVLP_ROOT=$(CURDIR) $(VENV)/bin/prefect --no-prompt deploy --all

worker: setup
	PREFECT_API_URL=$(FLOW_API) $(VENV)/bin/prefect worker start --pool fashionvlp

# deploy/team/compose.yaml's servers without Docker: MLflow and Prefect on a real local PostgreSQL.
team-check: setup
	$(PY) -m pip install -q "psycopg2-binary==2.9.13"
	$(PY) deploy/team/check_services.py

# The embedded catalog: fetch it from the DVC remote, or regenerate it and check it against data.dvc.
data: setup
	$(VENV)/bin/fashionvlp data materialize

validate: setup
	$(VENV)/bin/dvc repro validate

bench: data
	$(PY) bench/synth_speed.py
	$(VENV)/bin/fashionvlp vqvae --preset tiny --no-track --set paths.derived=derived/bench
	$(PY) bench/pretrain_speed.py --preset tiny --set paths.derived=derived/bench
	$(PY) bench/pretrain_speed.py --preset kgflip --preset tiny --set paths.derived=derived/bench

clean-venv:
	rm -rf $(VENV)
