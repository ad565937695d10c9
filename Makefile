# Two commands for a newcomer: `make demo` (pkjwt end to end) and `make test` (everything).
# Both install what they need: uv (from PyPI) and the locked Python dependencies.
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif

.PHONY: setup demo test lint typecheck pytest docs docs-serve bench bench-quick

setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --all-extras

demo: setup
	$(UV) run pkjwt demo

lint: setup
	$(UV) run ruff check src tests benchmarks docs/_hooks
	$(UV) run ruff format --check src tests benchmarks docs/_hooks

typecheck: setup
	$(UV) run mypy

pytest: setup
	$(UV) run pytest

# the documentation site, strict: a broken link, a missing reference or any warning fails it
docs: setup
	$(UV) sync --frozen --all-extras --group docs
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen --all-extras --group docs mkdocs build --strict

docs-serve: docs
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen --all-extras --group docs mkdocs serve

test: lint typecheck pytest docs

bench: setup
	$(UV) run python -m benchmarks

bench-quick: setup
	$(UV) run python -m benchmarks --quick
