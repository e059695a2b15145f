# Build and test the leader extension with PGXS.
#
#   make                      build the module
#   make install              install it into the PostgreSQL that pg_config names
#   make installcheck         pg_regress, isolation and TAP tests, each on a
#                             temporary instance of the installed server
EXTENSION = leader

MODULE_big = leader
OBJS = \
	src/module.o \
	src/settings.o \
	src/arguments.o \
	src/keyed_hash.o \
	src/group_lock.o \
	src/holder.o \
	src/session_lock.o \
	src/lease_store.o \
	src/group_capacity.o \
	src/events.o \
	src/election.o \
	src/waiting.o \
	src/shared_state.o \
	src/wakeups.o \
	src/launcher.o \
	src/schedule.o \
	src/worker.o \
	src/database_commands.o \
	src/database_list.o \
	src/functions.o

DATA = sql/$(EXTENSION)--1.0.sql sql/$(EXTENSION)--1.0--1.1.sql

REGRESS = setup functions bad_input privileges events session_identity table_shape \
	group_capacity upgrade
REGRESS_OPTS = --temp-instance=./tmp_check_regress

ISOLATION = acquire_race renew_vs_takeover release_vs_acquire rollback \
	uncommitted_acquire fence_holds_takeover fence_stale_term isolation_levels \
	release_leaves_no_lock
ISOLATION_OPTS = --inputdir=test --outputdir=test/output_iso --temp-instance=./tmp_check_iso

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# The extension's version, leader.control's default_version, for the module's magic block.
LEADER_VERSION := $(shell sed -n "s/^default_version = '\(.*\)'$$/\1/p" $(dir $(lastword $(MAKEFILE_LIST)))leader.control)

PG_CPPFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare \
	-DLEADER_VERSION='"$(LEADER_VERSION)"'

EXTRA_CLEAN = results regression.diffs regression.out test/output_iso tmp_check tmp_check_regress tmp_check_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# pg_leader, the command-line client, has a PGXS Makefile of its own in client/
# (PGXS builds one MODULE_big or one PROGRAM per Makefile); build, install and
# clean it with the extension.
.PHONY: client-all client-install client-uninstall client-clean
all: client-all
install: client-install
uninstall: client-uninstall
clean: client-clean

client-all:
	$(MAKE) -C client PG_CONFIG=$(PG_CONFIG) all
client-install:
	$(MAKE) -C client PG_CONFIG=$(PG_CONFIG) install
client-uninstall:
	$(MAKE) -C client PG_CONFIG=$(PG_CONFIG) uninstall
client-clean:
	$(MAKE) -C client PG_CONFIG=$(PG_CONFIG) clean

# The fault-injection suite (test/faults): a short run with a fixed seed against
# the installed extension, then a run against a planted bug that its checker must
# catch. Longer runs: /usr/bin/python3 test/faults/run.py --seed N --duration S.
FAULT_SEED ?= 1
FAULT_SECONDS ?= 60
.PHONY: faultcheck
faultcheck:
	@status=0; \
	if /usr/bin/python3 test/faults/run.py --seed $(FAULT_SEED) --duration $(FAULT_SECONDS); \
	then echo "ok - fault-injection run, seed $(FAULT_SEED)"; \
	else echo "not ok - fault-injection run, seed $(FAULT_SEED)"; status=1; fi; \
	if PG_CONFIG=$(PG_CONFIG) bash test/faults/planted-bug.sh; \
	then echo "ok - the checker catches a planted bug"; \
	else echo "not ok - the checker catches a planted bug"; status=1; fi; \
	exit $$status
