# feedline — developer entry points. `make demo` and `make test` do all set-up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed

.PHONY: setup bytecode demo test check unit integration soak bench bench-load bench-workers bench-restart bench-prompts bench-gr bench-store bench-lag bench-index-1m bench-memory bench-gpu bench-dual lock schemas clean promtool k8s-tools

setup: $(STAMP) bytecode promtool k8s-tools  ## create .venv with the locked dependencies and feedline installed (editable)

# Bytecode is compiled once, at set-up: where PYTHONDONTWRITEBYTECODE is set (as on our CI
# machine) Python never caches it, and every process, each test worker and each role a test
# starts, compiled torch, transformers and faust from source again (20 s of a 35 s collection).
PACKAGES := bench feedline index_store models processors schemas service streams
bytecode: $(STAMP)  ## compile feedline's own modules (incremental; the dependencies are compiled by uv at install)
	@$(BIN)/python -m compileall -q -j 0 $(PACKAGES) >/dev/null

promtool:  ## promtool for the alert-rule tests: on PATH, cached in ~/.cache/feedline, or unpacked from Debian's prometheus package
	@scripts/promtool.sh >/dev/null || echo "make: no promtool; tests/unit/feedline/test_monitoring.py will fail (see deploy/monitoring/README.md)" >&2

k8s-tools: $(STAMP)  ## pinned kustomize + kubeconform and offline Kubernetes/KEDA schemas for tests/unit/deploy, built once into ~/.cache/feedline/k8s
	@scripts/k8s_tools.sh >/dev/null || echo "make: no kustomize/kubeconform; tests/unit/deploy will fail (see deploy/kubernetes/README.md)" >&2

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "feedline needs Python >= 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

demo: setup  ## Kafka + the three roles on the synthetic world; last line is a JSON summary
	$(BIN)/feedline demo $(DEMO_ARGS)

# The tests wait on brokers and role processes a third of the time, so three workers keep two
# cores busy, and lint and mypy run beside them (their output is printed once they finish).
# --no-loadscope-reorder keeps tests/conftest.py's order (longest files first): xdist would
# otherwise deal out the files with the most tests first and the one-test soak near the end.
TEST_WORKERS ?= 3

test: setup  ## lint and type-check beside the unit and integration tests (three workers; starts its own Kafka)
	@$(MAKE) --no-print-directory check > $(VENV)/check.log 2>&1 & checking=$$!; \
	$(BIN)/pytest -ra --durations=10 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS); tested=$$?; \
	wait $$checking; checked=$$?; cat $(VENV)/check.log; \
	if [ $$checked -ne 0 ]; then echo "make test: lint or type-check failed (above)" >&2; fi; \
	[ $$tested -eq 0 ] && [ $$checked -eq 0 ]

check: setup  ## ruff lint + format check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest tests/unit -ra $(PYTEST_ARGS)

integration: setup
	$(BIN)/pytest tests/integration -ra $(PYTEST_ARGS)

soak: setup  ## chaos soak: 100+ kill -9 cycles of roles and the broker, checked against ground truth (about 50 minutes)
	$(BIN)/feedline soak $(SOAK_ARGS)

bench: setup  ## the CPU benchmarks; one JSON object per line (DESIGN.md "Benchmarks")
	$(BIN)/python -m bench.producer
	$(BIN)/python -m bench.sketch_accuracy
	$(BIN)/python -m bench.prompt_render
	$(BIN)/python -m bench.reembed_rate
	$(BIN)/python -m bench.index_knn --sizes 200000 --backends flat,ivf,hnsw
	$(BIN)/python -m bench.index_apply --size 200000 --backends flat,ivf
	$(BIN)/python -m bench.index_filter --size 200000 --backends flat,ivf
	$(BIN)/python -m bench.index_snapshot --size 200000 --backends flat,ivf
	$(BIN)/python -m bench.gr_scoring --candidates 100,500
	$(BIN)/python -m bench.embed_throughput --posts 128 --members 64
	$(BIN)/python -m bench.query_http --size 200000 --backends ivf --requests 1000 --rounds 2
	$(BIN)/python -m bench.query_http --size 200000 --backends flat --requests 100 --rounds 1

bench-workers: setup  ## prompt and embedding worker throughput beside their pre-issue-12 commit paths (about 8 minutes)
	$(BIN)/python -m bench.worker_throughput

bench-restart: setup  ## restart-to-first-record per role after kill -9, RocksDB beside the memory store (about 60 minutes with 1M posts)
	$(BIN)/python -m bench.restart_time

bench-load: setup  ## the whole stack ramped to capacity, then freshness at half of it, 1 and 2 embedding workers (about 15 minutes)
	$(BIN)/python -m bench.pipeline_load --workers 1,2

bench-prompts: setup  ## the prompt processor beside a raw Faust agent counting engagements (about 4 minutes)
	$(BIN)/python -m bench.prompt_throughput --engagements 20000

bench-gr: setup  ## ranking quality on the synthetic world: the trained GR beside cosine ranking, seeds 7 and 3 (about 8 minutes)
	$(BIN)/python -m bench.gr_quality
	$(BIN)/python -m bench.gr_quality --seed 3

bench-store: setup  ## prompt-processor throughput on the RocksDB store beside the memory store (about 4 minutes)
	$(BIN)/python -m bench.prompt_store

bench-lag: setup  ## the lag exporter's series after broker restarts, beside the pre-issue-13 reader (about 5 minutes)
	$(BIN)/python -m bench.lag_recovery

bench-dual: setup  ## the dual-encoder ablations (about 25 minutes on 2 CPU cores)
	$(BIN)/python -m bench.dual_ablation

bench-gpu: setup  ## the gpu-marked tests and the GPU benchmarks, each step time-boxed (scripts/gpu_check.sh; logs in .feedline/gpu-check)
	scripts/gpu_check.sh .feedline/gpu-check

bench-memory: setup  ## index memory per million posts per backend, for sizing (about 8 minutes)
	$(BIN)/python -m bench.index_memory --backends flat,ivf,hnsw

bench-index-1m: setup  ## the index benchmarks at 1M vectors (about 25 minutes on 2 cores)
	$(BIN)/python -m bench.index_knn --sizes 1000000 --backends flat,ivf,hnsw,torch
	$(BIN)/python -m bench.index_apply --size 1000000 --backends flat,ivf,torch
	$(BIN)/python -m bench.index_filter --size 1000000 --backends flat,ivf,torch
	$(BIN)/python -m bench.index_snapshot --size 1000000 --backends flat,ivf

lock:  ## re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile --quiet --python-version 3.11 pyproject.toml --extra dev \
		-o requirements.lock --custom-compile-command "make lock"

schemas: setup  ## regenerate schemas/json from the models
	$(BIN)/feedline schemas export

clean:
	rm -rf $(VENV) .feedline .pytest_cache .mypy_cache .ruff_cache
