# The two commands of the quick start: `make lab` and `make test`.
# Each creates .venv, installs the package and registers the Jupyter kernel on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
KERNEL := mma-edu
STAMP  := $(VENV)/.mma-edu-installed
# Jupyter refuses to run as root unless told; containers often run as root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
LAB_ARGS ?=

.PHONY: lab test tour bench zoo student venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,attacks]'
	$(PY) -m ipykernel install --user --name $(KERNEL) --display-name "Python (mma-edu)"
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest

tour: $(STAMP)
	$(PY) -m mma_edu.tour --out build

# The course without its solution cells (cells tagged "solution"), for students: build/student/.
student: $(STAMP)
	$(PY) -m mma_edu.course.student build/student

# Retrain the course's model zoo (mma_edu/zoo_weights/: weights + manifest.json), about 15 min on one CPU thread.
zoo: $(STAMP)
	$(PY) -m mma_edu.zoo build

bench: $(STAMP)
	$(PY) -m bench.mma_step
	$(PY) -m bench.evaluation
	$(PY) -m bench.scaling

clean:
	rm -rf build .pytest_cache
