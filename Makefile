# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: demo test lint typecheck bench setup

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

setup: | $(UV)
	$(UV) sync --frozen

demo: setup
	$(UV) run pkjwt demo

lint: setup
	$(UV) run ruff check src tests benchmarks
	$(UV) run ruff format --check src tests benchmarks

typecheck: setup
	$(UV) run mypy

test: setup lint typecheck
	$(UV) run pytest

bench: setup
	$(UV) run python -m benchmarks
