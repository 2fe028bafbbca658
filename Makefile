# Two entry points: `make serve` (the service on the embedded default, with the bundled demo
# site to crawl) and `make test`. `make demo` crawls the demo site once from the command line.
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_PORT ?= 8765
PORT ?= 8000

$(BIN)/harvester: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: serve demo test
# The demo site is on loopback, so this local quickstart allows private addresses; a real
# deployment runs `harvester serve` without it.
serve: $(BIN)/harvester
	$(BIN)/harvester demo-site --port $(DEMO_PORT) & pid=$$!; trap "kill $$pid" EXIT; \
	HARVESTER_ALLOW_PRIVATE_NETWORKS=true $(BIN)/harvester serve --port $(PORT)

demo: $(BIN)/harvester
	$(BIN)/harvester demo-site --port $(DEMO_PORT) & pid=$$!; trap "kill $$pid" EXIT; sleep 1; \
	$(BIN)/harvester crawl http://127.0.0.1:$(DEMO_PORT)/ --dataset demo --allow-private --rate 5

test: $(BIN)/harvester
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest
