# The two commands of the README. Both set everything up first (scripts/setup.sh is idempotent).
.PHONY: run test lint setup constraints

setup:
	@scripts/setup.sh

run: setup
	.venv/bin/nba serve --demo-customers 1000

test:
	@scripts/setup.sh --test
	.venv/bin/ruff check nba tests loadtests
	.venv/bin/ruff format --check nba tests loadtests
	.venv/bin/mypy
	.venv/bin/pytest

lint: setup
	.venv/bin/ruff check nba tests loadtests
	.venv/bin/ruff format --check nba tests loadtests
	.venv/bin/mypy

# the versions of a clean install of .[dev,fast], for scripts/setup.sh to install a fresh clone with
constraints:
	rm -rf .venv-constraints && python3 -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install -q --upgrade pip
	.venv-constraints/bin/python -m pip install -q -e '.[dev,fast]'
	{ sed -n '1,2p' constraints.txt; .venv-constraints/bin/python -m pip freeze --exclude-editable | grep -v '^nba'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-constraints
