# learnrec: `make demo` runs the main job, `make test` runs the tests (both set up what is missing).
VENV ?= $(or $(LEARNREC_VENV),$(HOME)/.cache/learnrec/venv)
export LEARNREC_VENV := $(VENV)
# The checkout's own code wins over whatever checkout the shared venv was installed from.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
LEARNREC := $(VENV)/bin/learnrec

.PHONY: setup demo test services-up services-down lint bench

setup:
	scripts/setup.sh

demo: setup
	HF_HUB_OFFLINE=1 $(LEARNREC) demo $(ARGS)

test:
	scripts/test.sh $(ARGS)

services-up: setup
	$(LEARNREC) services up

services-down:
	$(LEARNREC) services down

lint: setup
	$(VENV)/bin/ruff check shared stream trainer serving demo bench tests
