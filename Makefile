# Everything a fresh machine needs is installed by these targets themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5001
NAB ?= ../shared/nab
CORPORA ?= ../shared/corpora

.PHONY: run test bench evaluate deps dev-deps browser clean
.DELETE_ON_ERROR:

run: deps ## Run the server on the embedded defaults (SQLite under data/, port $$PORT or 5001).
	PORT=$(PORT) $(PY) server.py

test: dev-deps browser ## Run every test: detectors, generators, server, dashboard in headless Chromium.
	@status=0; $(PY) -m pytest || status=$$?; \
	  if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

bench: dev-deps ## Print the speed and memory figures of every benchmark under tests/benchmarks/.
	@for b in tests/benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

evaluate: dev-deps ## Score the default beside a rolling T2 and River's HalfSpaceTrees on NAB and the shared corpora (table, CSV/JSON, plots in results/).
	nice $(PY) -m detectors evaluate --nab $(NAB) --corpora $(CORPORA) --out results

# The stamps are written last, once every step has succeeded (and the server's imports load),
# so a failed or interrupted install is retried by the next make; .DELETE_ON_ERROR removes a
# half-made target too.  The last step compiles the fast path's numba kernels once (cached in
# detectors/__pycache__), so the first uploaded file or submitted batch does not wait for the compiler.
$(VENV)/.deps: requirements.txt package.json package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	npm install --no-audit --no-fund --silent
	$(PY) -c "import gunicorn.workers.ggevent, flask_sock, server, detectors.engine"
	$(PY) -c "from detectors.kernels import warm_up; warm_up()"
	touch $@

$(VENV)/.dev-deps: $(VENV)/.deps requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

deps: $(VENV)/.deps
dev-deps: $(VENV)/.dev-deps

browser: ## Debian's Chromium for the dashboard tests (Playwright drives it; no browser download).
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else sudo apt-get update -q && sudo apt-get install -y -q chromium; fi; }

clean:
	rm -rf $(VENV) node_modules .pytest_cache results
