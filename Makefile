# cxpulse developer entry points. `make help` lists them.
#
# Local stack (deploy/local/stack.sh): Kafka 4.x KRaft single node from Maven Central jars on
# 127.0.0.1:$(CXPULSE_STACK_KAFKA_PORT) (controller $(CXPULSE_STACK_CONTROLLER_PORT)), Redis on
# 127.0.0.1:$(CXPULSE_STACK_REDIS_PORT); data, logs and the jar cache under .local/ (git-ignored).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.cxpulse-installed
# the compiled core's record of its sources (setup.py writes it); any module of the core (not only those setup.py
# compiles: one list, in setup.py) makes it due again
CORE_STAMP := cxpulse/core/compiled.json
CORE_SOURCES := $(wildcard cxpulse/core/*.py)
STACK := deploy/local/stack.sh
WITH_STACK := deploy/local/with_stack.sh
PYTEST_ARGS ?=

# ports of the local stack; stack.sh reads the same variables (and has the same defaults)
CXPULSE_STACK_KAFKA_PORT ?= 19092
CXPULSE_STACK_CONTROLLER_PORT ?= 19093
CXPULSE_STACK_REDIS_PORT ?= 16379
export CXPULSE_STACK_KAFKA_PORT CXPULSE_STACK_CONTROLLER_PORT CXPULSE_STACK_REDIS_PORT

# Debian packages the stack and the later tooling need; java/mvn checked by command name, and a C compiler with
# Python's headers for the compiled core (setup.py; without them the core installs as pure Python, slower)
APT_PACKAGES := redis-server prometheus prometheus-alertmanager chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# Helm for the chart's tests (deploy/helm/cxpulse): built from the Go module proxy into .local/bin, one
# binary per version (a version bump rebuilds; Go's build cache makes a rebuild on the same machine quick).
HELM_VERSION := v3.22.0
HELM := .local/bin/helm-$(HELM_VERSION)
CXPULSE_HELM := $(abspath $(HELM))
export CXPULSE_HELM

# The wheels of cxpulse's runtime dependencies (pyproject [project] dependencies), for the clean-venv wheel
# test (tests/unit/test_wheel.py), which installs from here with --no-index: fast and offline after the first
# download; fetched again when pyproject.toml changes.
WHEELHOUSE := .local/wheelhouse
WHEELHOUSE_STAMP := $(WHEELHOUSE)/.complete

.PHONY: help venv deps jars helm wheelhouse up down status logs clean test unit mutants run screenshot chaos

help:
	@echo "make venv     .venv with cxpulse[dev] (re-installs when pyproject.toml changes)"
	@echo "make deps     Debian packages when missing: $(APT_PACKAGES), java, maven"
	@echo "make jars     Apache Kafka jars from Maven Central into .local/kafka-jars/"
	@echo "make helm     helm $(HELM_VERSION) built with go install into $(HELM) (the chart's tests need it)"
	@echo "make wheelhouse  wheels of the runtime dependencies into $(WHEELHOUSE) (the clean-venv wheel test)"
	@echo "make up       start Kafka ($(CXPULSE_STACK_KAFKA_PORT)) and Redis ($(CXPULSE_STACK_REDIS_PORT)); idempotent"
	@echo "make down     stop them"
	@echo "make status   what runs, pid, port"
	@echo "make logs     tail of the Kafka and Redis logs"
	@echo "make clean    stop everything and remove .local/ (data, logs, jar cache)"
	@echo "make test     install what is missing, start the stack, run all tests, stop what it started"
	@echo "make unit     unit tests only (no services)"
	@echo "make mutants  mutation run over cxpulse/core and cxpulse/models (slow; MUTANTS_ARGS='--jobs 2 --only FILE')"
	@echo "make run      install, start the stack and the simulator (Ctrl-C stops)"
	@echo "make screenshot  out/wallboard.png (1920x1080) of the running wallboard, or of one it starts itself"
	@echo "make chaos    bench/chaos.py: hostile input, rebalance soak, broker stop/kill (own broker on 29092); CHAOS_ARGS=..."

venv: $(VENV_STAMP) $(CORE_STAMP)

$(VENV_STAMP): pyproject.toml setup.py
	@test -x $(PY) || { echo "venv: creating $(VENV)"; $(PYTHON3) -m venv $(VENV); }
	@echo "venv: pip install -e '.[dev]'"
	@$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $@

# The KPI core's hot modules compiled with mypyc (setup.py: which and why). pip install -e compiles them once;
# an edit of one of them compiles them again here (cxpulse/core/__init__.py runs the sources until then).
$(CORE_STAMP): $(CORE_SOURCES) | $(VENV_STAMP)
	@echo "venv: compiling the KPI core with mypyc (setup.py build_ext --inplace, about a minute)"
	@$(PY) setup.py -q build_ext --inplace >/dev/null

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	test -x $(PY) || $(PYTHON3) -c 'import ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc"; \
	$(PYTHON3) -c 'import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
	  || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) apt-get update -q; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

jars:
	@$(STACK) jars

helm: $(HELM)

$(HELM):
	@echo "helm: go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION) (a few minutes the first time)"
	@mkdir -p $(@D)
	@GO="$$(test -x /usr/local/go/bin/go && echo /usr/local/go/bin/go || command -v go || true)"; \
	  test -n "$$GO" || { echo "helm: needs Go >= 1.21 (the machine's /usr/local/go or go on PATH)" >&2; exit 1; }; \
	  tmp="$$(mktemp -d)"; \
	  GOTOOLCHAIN=auto GOBIN="$$tmp" GOFLAGS=-buildvcs=false "$$GO" install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); \
	  mv "$$tmp/helm" $@; rmdir "$$tmp"
	@$@ version --short

wheelhouse: $(WHEELHOUSE_STAMP)

$(WHEELHOUSE_STAMP): pyproject.toml | venv
	@echo "wheelhouse: pip download of the runtime dependencies into $(WHEELHOUSE)"
	@mkdir -p $(WHEELHOUSE)
	@$(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
	  > $(WHEELHOUSE)/requirements.txt
	@$(PY) -m pip download -q --disable-pip-version-check --only-binary=:all: -d $(WHEELHOUSE) -r $(WHEELHOUSE)/requirements.txt
	@touch $@

up: deps venv jars
	@$(STACK) up

down:
	@$(STACK) down

status:
	@$(STACK) status || true

logs:
	@$(STACK) logs

clean:
	@$(STACK) clean

# with_stack.sh stops only what it started (a stack from `make up` stays up) also when pytest fails or is
# interrupted, and exits with pytest's code (5 = no tests collected is a failure too).
test: deps venv jars helm wheelhouse
	@$(WITH_STACK) $(PY) -m pytest $(PYTEST_ARGS)

unit: venv helm wheelhouse
	@$(PY) -m pytest -m "not integration" tests/unit $(PYTEST_ARGS)

# not part of `make test`: ~15-20 min on one core (docs/mutation.md); never touches the working tree
MUTANTS_ARGS ?=
mutants: venv
	@$(PY) bench/mutants.py --equivalent docs/mutation-equivalent.txt $(MUTANTS_ARGS)

run: deps venv jars
	@deploy/local/run.sh

screenshot: deps venv jars
	@$(PY) deploy/screenshot.py

# The chaos suite (not part of `make test`): scenarios a and b on the shared stack (with_stack.sh starts it if
# needed and stops only what it started); scenario c starts, stops, kills and finally removes its own broker
# under .local-chaos/ on ports 29092-29094 / 26379, so the shared broker is never touched.
CHAOS_ARGS ?=
chaos: deps venv jars
	@$(WITH_STACK) $(PY) bench/chaos.py $(CHAOS_ARGS)
