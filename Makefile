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

.PHONY: serve demo test lock image
# The demo site is on loopback, so this local quickstart allows private addresses; a real
# deployment runs `harvester serve` without it.
serve: $(BIN)/harvester
	$(BIN)/harvester demo-site --port $(DEMO_PORT) & pid=$$!; trap "kill $$pid 2>/dev/null" EXIT; \
	HARVESTER_ALLOW_PRIVATE_NETWORKS=true $(BIN)/harvester serve --port $(PORT)

demo: $(BIN)/harvester
	$(BIN)/harvester demo-site --port $(DEMO_PORT) & pid=$$!; trap "kill $$pid 2>/dev/null" EXIT; sleep 1; \
	$(BIN)/harvester crawl http://127.0.0.1:$(DEMO_PORT)/ --spec examples/demo.yaml --allow-private

test: $(BIN)/harvester
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# The image's pinned dependency versions, from a clean install of the package with its extras.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install --quiet '.[ray]'
	{ echo "# The image's dependency versions: every package \`pip install .[ray]\` needs, pinned."; \
	  echo "# Regenerate after changing the dependencies in pyproject.toml: make lock"; \
	  .lock-venv/bin/pip freeze --exclude harvester; } > deploy/constraints.txt
	rm -rf .lock-venv

# The deployment image (see deploy/README.md); `make image EXTRAS=ray` for the Ray executor.
image:
	docker build -f deploy/Dockerfile --build-arg EXTRAS=$(EXTRAS) -t harvester .
