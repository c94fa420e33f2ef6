# The two commands of the quick start: `make lab` and `make test`.
# Each creates .venv, installs the package and registers the Jupyter kernel on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
KERNEL := mma-edu
STAMP  := $(VENV)/.mma-edu-installed
KERNEL_INSTALL = $(PY) -m ipykernel install --user --name $(KERNEL) --display-name "Python (mma-edu: $(CURDIR))"
# Jupyter refuses to run as root unless told; containers often run as root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
LAB_ARGS ?=
# JupyterLab saves widget state into notebooks (jupyter/lab-settings/overrides.json), so a saved notebook
# reopened on a fresh kernel shows its widgets' last pictures instead of "model not found".
LAB_SETTINGS := --LabApp.app_settings_dir=$(CURDIR)/jupyter/lab-settings
# The browser suite (tests/browser): Playwright driving the system Chromium (apt-get install chromium).
BROWSER_PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest --browser tests/browser
BROWSER_SELECT ?=
CHROMIUM := $(or $(MMA_EDU_CHROMIUM),$(shell command -v chromium || command -v chromium-browser || command -v google-chrome))

.PHONY: lab test test-paper test-browser test-grading book app tour bench zoo zoo-l2 budget-study student assignments venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,attacks,browser,site,app]'
	$(KERNEL_INSTALL)
	touch $(STAMP)

# The kernel is user-global, so two checkouts (an instructor's and a student's) share its name: `make lab`
# binds it to this checkout each time, and its display name says which checkout it runs.
lab: $(STAMP)
	$(KERNEL_INSTALL) >/dev/null
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_SETTINGS) $(ROOT_FLAG) $(LAB_ARGS)

# The whole suite but the paper path (make test-paper), then the quick part of the browser suite (about 40 s)
# when a Chromium is found. Tests run on one torch thread each (the models are tiny: threads wait on each other)
# and in as many pytest workers as there are cores (pytest-xdist), one test file per worker.
TEST_WORKERS ?= auto
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not paper_path"
ifneq ($(CHROMIUM),)
	$(BROWSER_PYTEST) -m quick
else
	@echo "make test: SKIPPED the browser tests (tests/browser): no Chromium found." \
	      "Install one (apt-get install chromium) and run make test-browser."
endif

# The paper path as dry runs (tests/test_paper_path.py, marker paper_path): notebooks 05-07 in the paper profile
# on fixture datasets and every paper preset through `mma-edu train --dry-run`; about 2.5 min, so apart from
# make test; .ci/run calls it.
test-paper: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m paper_path tests/test_paper_path.py

# The whole browser suite: every widget notebook in JupyterLab, the course site, the Voilà app.
# BROWSER_SELECT narrows it, e.g. BROWSER_SELECT='-m "not quick"' (what .ci/run adds after make test).
test-browser: $(STAMP)
	$(BROWSER_PYTEST) $(BROWSER_SELECT)

# The executed course (the outputs of make tour, laptop profile) as a static HTML site: build/book/html.
book: $(STAMP)
	test -f build/01_margins.ipynb || $(MAKE) tour
	$(PY) -m mma_edu.book --notebooks build --out build/book

# The widget explorers as a standalone page (Voilà), e.g. for a course lab's projector. Progressive rendering:
# the page shows at once and each explorer appears when its cell has run (not after the whole notebook).
VOILA_ARGS := --VoilaConfiguration.progressive_rendering=True
app: $(STAMP)
	$(VENV)/bin/voila app/explorers.ipynb $(VOILA_ARGS) $(LAB_ARGS)

tour: $(STAMP)
	$(PY) -m mma_edu.tour --out build

# The course as an nbgrader assignment set needs nbgrader, the optional `grader` extra: installed on first use.
GRADER := $(VENV)/.mma-edu-grader
$(GRADER): $(STAMP)
	$(PY) -c "import nbgrader" 2>/dev/null || $(PY) -m pip install --quiet -e '.[grader]'
	touch $(GRADER)

# The nbgrader course directory build/assignments/: source/NN_name/ (the notebooks marked for nbgrader: solution
# regions, graded test cells with points, hidden tests, written answers) -> release/NN_name/ (student copies),
# with its nbgrader_config.py. PROFILE=smoke makes autograding fast (every notebook runs again per student).
PROFILE ?=
assignments: $(GRADER)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m mma_edu.grading build build/assignments $(if $(PROFILE),--profile $(PROFILE),)

# The course without its solutions, for students, made by nbgrader (the release copies): build/student/.
student: $(GRADER)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m mma_edu.grading student build/student

# The nbgrader loop, offline (tests/grading: generate, submit three versions of notebooks 01, 03 and 07,
# autograde, feedback): a few minutes, so apart from make test; .ci/run calls it.
test-grading: $(GRADER)
	OMP_NUM_THREADS=1 PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest --grading tests/grading

# Retrain the course's model zoo (mma_edu/zoo_weights/: weights + manifest.json), about 15 min on one CPU thread.
zoo: $(STAMP)
	$(PY) -m mma_edu.zoo build

# The l2 zoo (the rows of the paper's MNIST l2 table): mma_edu/zoo_weights/l2-*.pt + manifest-l2.json.
zoo-l2: $(STAMP)
	$(PY) -m mma_edu.zoo build --norm l2

# The training-budget study (mma_edu/budget_study.py): about 2-3 h on 2 CPU cores, resumable (runs again
# skip what is done); results in mma_edu/zoo_weights/budget_study.json, training folders in runs/budget_study/.
STUDY_WORKERS ?= 2
budget-study: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m mma_edu.budget_study run --workers $(STUDY_WORKERS)

bench: $(STAMP)
	$(PY) -m bench.mma_step
	$(PY) -m bench.evaluation
	$(PY) -m bench.scaling

clean:
	rm -rf build .pytest_cache
