# learnrec: `make demo` runs the main job, `make test` runs the tests (both set up what is missing).
VENV ?= $(or $(LEARNREC_VENV),$(HOME)/.cache/learnrec/venv)
export LEARNREC_VENV := $(VENV)
# The checkout's own code wins over whatever checkout the shared venv was installed from.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: setup demo test services-up services-down lint bench

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh $(ARGS)

test:
	scripts/test.sh $(ARGS)

services-up: setup
	$(VENV)/bin/python -m devtools.services up

services-down:
	$(VENV)/bin/python -m devtools.services down

lint: setup
	$(VENV)/bin/ruff check learnrec cli shared stream trainer serving demo devtools bench tests
