# Two commands set everything up on a fresh machine (see README):
#   make demo   - create .venv, install, run the main job on the shipped defaults
#   make test   - create .venv if missing, run the whole test suite
# GPU users bring their own torch:  make TORCH="torch" demo   (or any pip requirement string)

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= out/demo
# ROS 2 Jazzy Python tools with no PyPI wheel (launch, launch_ros, ros2cli, ...): installed into the venv
# when this folder exists, so the tests build the package with colcon and run `ros2 launch` for real.
ROS_WHEELS ?= ../shared/wheels/ros-jazzy-python

.PHONY: demo test venv lint bench clean system-deps

venv: $(STAMP)

# Open3D's wheels link libusb-1.0 at import time; Debian/Ubuntu minimal images lack it.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing libusb-1.0-0 (needed by open3d)"; \
	    (apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || \
	     (apt-get update -qq && apt-get install -y -qq libusb-1.0-0 >/dev/null)); \
	  else \
	    echo "error: open3d needs libusb-1.0; install it with: sudo apt-get install libusb-1.0-0" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): setup.py Makefile system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[ros,sim,dev,bench,onnx,lora]"
	if [ -d "$(ROS_WHEELS)" ]; then \
	  $(BIN)/python -m pip install -q --no-deps $(ROS_WHEELS)/*.whl && \
	  $(BIN)/python -m pip install -q osrf-pycommon argcomplete packaging lark colcon-common-extensions \
	    ros-jazzy-ament-package; \
	else echo "note: $(ROS_WHEELS) not found: launch / colcon tests will be skipped"; fi
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mf demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q test

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/mf bench geometry
	$(BIN)/mf bench sim
	$(BIN)/mf bench node --model default --mode conditioned
	$(BIN)/mf bench eval --model default
	$(BIN)/mf bench model
	$(BIN)/mf bench quality --out-dir out/quality
	$(BIN)/mf bench consistency

clean:
	rm -rf $(VENV) out build *.egg-info
