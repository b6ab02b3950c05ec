# Rapport — the two commands a newcomer needs:
#   make demo   run the main job on the embedded default (one process, no Kafka needed)
#   make test   pass all tests (brings up the real Kafka/PostgreSQL/Redis stack if none is given)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Reinstall whenever the dependency pins or the project metadata change.
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test chaos fuzz lint typecheck unit integration bench bench-quick bench-clock bench-readme stack-up stack-down stack-status docs image image-test cluster-test clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[test]"
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

demo: install
	$(BIN)/rapport demo

test: install lint typecheck
	$(BIN)/python -m pytest

# The full chaos run (5,000 responses while services are SIGKILLed and Kafka restarts) and the
# full poison-under-load run (20,000 valid events); each prints its counts as a JSON line
# starting with CHAOS or POISON. `make test` runs slim ones.
chaos: install
	RAPPORT_CHAOS_RESPONSES=$${RAPPORT_CHAOS_RESPONSES:-5000} RAPPORT_CHAOS_SECONDS=$${RAPPORT_CHAOS_SECONDS:-240} \
	RAPPORT_POISON_VALID=$${RAPPORT_POISON_VALID:-20000} \
		$(BIN)/python -m pytest tests/system/test_chaos.py tests/system/test_poison_under_load.py \
		-s -q -p no:cacheprovider

# The API fuzz with ten times the examples per operation and role of `make test` (~10 min).
fuzz: install
	RAPPORT_FUZZ_EXAMPLES=$${RAPPORT_FUZZ_EXAMPLES:-200} \
		$(BIN)/python -m pytest tests/unit/test_api_fuzz.py -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy --strict (pyproject.toml) over the kernel, every service (migrations aside) and the tooling.
typecheck: install
	$(BIN)/mypy --exclude 'services/[a-z]+/migrations/' shared rapport/stack services \
		rapport/simulate.py rapport/simulation.py rapport/simulation_attendance.py rapport/simulation_goals.py rapport/simulate_goals.py rapport/report_goals.py rapport/simulate_attendance.py rapport/replay.py rapport/replay_clock.py rapport/simulate_arms.py rapport/simulate_live.py rapport/simulate_cli.py rapport/report.py rapport/report_charts.py rapport/report_follow_up.py rapport/simulate_actions.py rapport/demo.py rapport/events.py rapport/receiver.py rapport/arguments.py rapport/trajectories

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install
	$(BIN)/python -m pytest tests/integration

# Every benchmark on the real stack, 3 runs each: one table, bench/results/latest.json (~12 min).
bench: install
	$(BIN)/python bench/run.py

# One small run of each, for a smoke test (bench/results/quick.json).
bench-quick: install
	$(BIN)/python bench/run.py --quick

# The README's performance table from the newest bench/results/reference-<date>-*.json
# (bench/readme_table.py; --check only compares). After a reference run:
#   cp bench/results/latest.json bench/results/reference-<date>-2core.json && make bench-readme
bench-readme: install
	$(BIN)/python bench/readme_table.py

# Analytics' clock alone: 100,000 episodes with pending checks, against a bare SKIP LOCKED loop.
bench-clock: install
	$(BIN)/python bench/clock_bench.py

stack-up: install
	$(BIN)/rapport stack up

stack-down: install
	$(BIN)/rapport stack down

stack-status: install
	$(BIN)/rapport stack status

docs: install
	$(BIN)/rapport docs

# The production image from deploy/Dockerfile, with podman (installed if missing; a base made
# from Debian packages when python:3.11-slim-bookworm cannot be pulled). Prints its size and
# what is inside. IMAGE=... names it; PYTHON_IMAGE=... picks the base. See deploy/README.md.
IMAGE ?= localhost/rapport:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	IMAGE=$(IMAGE) bash deploy/tools/build-image.sh

# That image run as the Helm chart runs it (Jobs, four services, read-only root, no
# capabilities) on the real stack: probes, metrics, the end-to-end flow to a webhook receiver,
# and checks from inside a container (tests/deploy/image). Stack: RAPPORT_TEST_* or `rapport stack`.
image-test: install image
	RAPPORT_IMAGE=$(IMAGE) $(BIN)/python -m pytest tests/deploy/image -v -s -p no:cacheprovider

# The chart on a real single-node Kubernetes (components built from their Go modules once,
# containerd and runc from Debian): helm install, the end-to-end flow through the Services,
# helm upgrade with no failed request, helm uninstall (deploy/cluster, tests/deploy/cluster).
# Root only; not part of `make test`. See deploy/README.md, "Cluster test".
cluster-test: install image
	IMAGE=$(IMAGE) bash deploy/cluster/cluster-test.sh

clean:
	rm -rf $(VENV) .rapport .pytest_cache .mypy_cache .ruff_cache
