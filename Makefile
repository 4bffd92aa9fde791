# resp-kv developer entry points. Every target installs what it needs and is a no-op when it is
# already there: the venv (.venv), the project editable with its test extras, and Debian's
# redis-tools + redis-server (redis-cli, redis-benchmark, redis-server) for tests and benchmarks.
#
#   make run          one node on 127.0.0.1:6379, data in ./resp-kv-data   (ARGS="--fsync always")
#   make test         the whole test suite (what .ci/run runs)  (TEST_PATHS=tests/unit PYTEST_ARGS="-k wal")
#   make bench        redis-server vs resp-kv benchmark -> bench/results/  (BENCH_ARGS=--quick)
#   make cluster      3 local nodes on 7001-7003 (peer ports 17001-17003), Ctrl-C stops all
#   make lint-docker  hadolint on Dockerfile + structural check of docker-compose.yml
#
# Installing the project compiles its hot modules with mypyc (setup.py, resp_kv/native.py; about
# two minutes, again whenever one of them changes). RESP_KV_PURE=1 (e.g. `make run
# RESP_KV_PURE=1`) installs it interpreted instead, for py-spy.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
EXT_SUFFIX := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
NATIVE_SOURCES := $(shell sed -n 's/^    "\(.*\.py\)",$$/\1/p' resp_kv/native.py)
ifeq ($(RESP_KV_PURE),1)
STAMP := $(VENV)/.resp-kv-installed-pure
NATIVE_LIB :=
else
STAMP := $(VENV)/.resp-kv-installed
NATIVE_LIB := resp_kv/_native__mypyc$(EXT_SUFFIX)
endif
BENCH_STAMP := $(VENV)/.resp-kv-bench-installed
# Tests get a hard per-test deadline (seconds; see tests/conftest.py).
export RESP_KV_TEST_TIMEOUT_S ?= 300
TEST_PATHS ?= tests

.PHONY: run test bench cluster lint-docker venv tools clean-data

$(VPY):
	$(PYTHON) -m venv $(VENV)

# The other mode's stamp goes: switching back rebuilds (a pure install deletes the .so files).
$(STAMP): pyproject.toml setup.py $(NATIVE_SOURCES) $(NATIVE_LIB) | $(VPY)
	@rm -f $(VENV)/.resp-kv-installed $(VENV)/.resp-kv-installed-pure
	@if [ "$(RESP_KV_PURE)" = 1 ]; then find resp_kv cluster -name '*$(EXT_SUFFIX)' -delete; fi
	$(VPY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

$(NATIVE_LIB):
	@true

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(VPY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $@

venv: $(STAMP)

# Debian packages: redis-tools has redis-cli and redis-benchmark, redis-server the server the
# benchmark compares against. RUNLEVEL=1 keeps the package from starting a system redis on 6379.
tools:
	@if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null \
	    || ! command -v redis-server >/dev/null; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "installing Debian redis-tools redis-server"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
	    apt-get install -y -qq --no-install-recommends redis-tools redis-server >/dev/null; \
	fi

run: $(STAMP)
	exec $(VENV)/bin/resp-kv --bind 127.0.0.1 --port 6379 --data-dir ./resp-kv-data $(ARGS)

test: $(STAMP) tools
	$(VPY) -m pytest -q $(TEST_PATHS) $(PYTEST_ARGS)

bench: $(BENCH_STAMP) tools
	$(VPY) bench/run.py $(BENCH_ARGS)

cluster: $(STAMP)
	exec $(VPY) scripts/local_cluster.py $(ARGS)

lint-docker: $(STAMP)
	$(VENV)/bin/hadolint Dockerfile
	$(VPY) scripts/check_compose.py docker-compose.yml

clean-data:
	rm -rf ./resp-kv-data ./resp-kv-cluster
