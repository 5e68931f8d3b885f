# The two commands of the README. Both set everything up first (scripts/setup.sh is idempotent).
.PHONY: run test lint setup

setup:
	@scripts/setup.sh

run: setup
	.venv/bin/nba serve --demo-customers 1000

test: setup
	.venv/bin/ruff check nba tests loadtests
	.venv/bin/mypy
	.venv/bin/pytest

lint: setup
	.venv/bin/ruff check nba tests loadtests
	.venv/bin/mypy
