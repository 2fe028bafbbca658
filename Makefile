# Two entry points: `make demo` (environment + a crawl of the bundled demo site) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_PORT ?= 8765

$(BIN)/harvester: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: demo test
demo: $(BIN)/harvester
	$(BIN)/harvester demo-site --port $(DEMO_PORT) & pid=$$!; trap "kill $$pid" EXIT; sleep 1; \
	$(BIN)/harvester crawl http://127.0.0.1:$(DEMO_PORT)/ --dataset demo --allow-private --rate 5

test: $(BIN)/harvester
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest
