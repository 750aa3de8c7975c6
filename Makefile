# The two quick-start commands (see README): `make demo` runs the app, `make test` runs the tests.
# Both set up .venv on first use (scripts/bootstrap.sh).
PY := .venv/bin/python
ARGS ?=

.PHONY: demo test serve install
demo:
	@bash scripts/bootstrap.sh
	@$(PY) launcher.py demo $(ARGS)

test:
	@bash scripts/bootstrap.sh --test
	@$(PY) -m pytest -q $(ARGS)

serve:
	@bash scripts/bootstrap.sh
	@$(PY) launcher.py serve --model tiny $(ARGS)

install:
	@bash scripts/bootstrap.sh --test
