# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv bench clean system-deps

venv: $(STAMP)

# torch/torchvision are pinned at install time only: these pins are the builds that lie on
# this kind of machine's disk; elsewhere pip resolves torch>=2.6 from pyproject as usual.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1" || $(BIN)/pip install -q "torch>=2.6" torchvision
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/evostreaming demo

# Debian's chromium drives the browser tests (Playwright with the system browser, never a downloaded one);
# GStreamer's RTSP server feeds the RTSP tests; nginx balances the replica test (docs/deploy.md).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) ; } || \
		echo "note: chromium is not installed and cannot be (not root?): the browser tests will skip"
	@/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-gi gir1.2-gst-rtsp-server-1.0 \
		gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad) ; } || \
		echo "note: GStreamer's RTSP server is not installed and cannot be (not root?): the RTSP tests will skip"
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) ; } || \
		echo "note: nginx is not installed and cannot be (not root?): the replica test will skip"

test: $(STAMP) system-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
