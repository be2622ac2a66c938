# baton: `make` builds build/batond, build/batonctl and build/baton-smsbuf; `make run` and `make test` are
# described in README.md. `make test SANITIZE=1` builds into build/san with ASan+UBSan.

CC      ?= cc
PKGS    := expat openssl sqlite3 inih libcares
SANITIZE ?= 0

ifeq ($(SANITIZE),1)
BUILD   ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build
SANFLAGS :=
endif

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wformat=2 -Wshadow -Wno-unused-parameter \
	   -Wmissing-prototypes -MMD -MP $(SANFLAGS)
CPPFLAGS += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS += $(SANFLAGS)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lwslay -lunistring -lpthread

objs = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(wildcard $(1)))
CORE_OBJ  := $(call objs,src/core/*.c)
XML_OBJ   := $(call objs,src/xml/*.c)
NET_OBJ   := $(call objs,src/net/*.c)
XMPP_OBJ  := $(call objs,src/xmpp/*.c)
STORE_OBJ := $(call objs,src/store/*.c)
MUC_OBJ   := $(call objs,src/muc/*.c)
WEB_OBJ   := $(call objs,src/web/*.c)
CONT_OBJ  := $(call objs,src/continuity/*.c)
ID_OBJ    := $(call objs,src/identity/*.c)
SMS_OBJ   := $(call objs,src/sms/*.c)
SIP_OBJ   := $(call objs,src/sip/*.c)
SMSBUF_OBJ := $(call objs,src/smsbuf/*.c)
UPLOAD_OBJ := $(call objs,src/upload/*.c)
LIB_OBJ   := $(UPLOAD_OBJ) $(SIP_OBJ) $(SMS_OBJ) $(WEB_OBJ) $(ID_OBJ) $(CONT_OBJ) $(MUC_OBJ) $(XMPP_OBJ) $(NET_OBJ) $(STORE_OBJ) $(XML_OBJ) $(CORE_OBJ)

PROGS := $(BUILD)/batond $(BUILD)/batonctl $(BUILD)/baton-smsbuf

# Each unit test links only the modules it tests, so a module is testable on its own.
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/%,$(wildcard tests/unit/test_*.c))
test_core_OBJ  := $(CORE_OBJ)
test_config_OBJ := $(CORE_OBJ)
test_xml_OBJ   := $(XML_OBJ) $(CORE_OBJ)
test_jid_OBJ   := $(CORE_OBJ) # includes jid.c itself
test_sasl_OBJ  := $(BUILD)/obj/xmpp/sasl.o $(BUILD)/obj/xmpp/jid.o $(CORE_OBJ)
test_store_OBJ := $(STORE_OBJ) $(CORE_OBJ)
test_store_archive_OBJ := $(STORE_OBJ) $(CORE_OBJ)
test_store_pep_OBJ := $(STORE_OBJ) $(CORE_OBJ)
test_xmpp_OBJ  := $(LIB_OBJ)
test_gsm_OBJ   := $(BUILD)/obj/smsbuf/gsm.o $(CORE_OBJ)
test_cimd2_OBJ := $(BUILD)/obj/smsbuf/cimd2.o $(CORE_OBJ)
test_smpp_OBJ  := $(BUILD)/obj/smsbuf/smpp.o $(CORE_OBJ)
test_smslink_OBJ := $(BUILD)/obj/sms/link.o $(CORE_OBJ)
test_sipmsg_OBJ := $(BUILD)/obj/sip/msg.o $(CORE_OBJ)
test_sipdigest_OBJ := $(BUILD)/obj/sip/digest.o $(CORE_OBJ)
test_dns_OBJ   := $(NET_OBJ) $(CORE_OBJ)

.PHONY: all run test unit integration fuzz format format-check deps test-deps clean bench
all: $(PROGS)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/batond: $(BUILD)/obj/cmd/batond.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/batonctl: $(BUILD)/obj/cmd/batonctl.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The SMSC buffer server: its codecs and ring (kept on disk by its own journal), the link codec
# it shares with batond (sms/link.c), and the network layer.
$(BUILD)/baton-smsbuf: $(BUILD)/obj/cmd/baton-smsbuf.o $(SMSBUF_OBJ) $(BUILD)/obj/sms/link.o \
		$(NET_OBJ) $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/tests/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Isrc -c -o $@ $<

.SECONDEXPANSION:
$(BUILD)/test_%: $(BUILD)/obj/tests/test_%.o $$(test_%_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- the two commands of the README ----

deps:
	@scripts/deps.sh run

test-deps:
	@scripts/deps.sh test
	@# The web clients of tests/web (Converse.js, @xmpp/client, playwright-core), from the
	@# lockfile, reinstalled only when it changes.
	@[ tests/web/node_modules/.package-lock.json -nt tests/web/package-lock.json ] || \
		(cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
	@# The SMPP SMSC of tests/sms (the npm smpp package), the same way.
	@[ tests/sms/node_modules/.package-lock.json -nt tests/sms/package-lock.json ] || \
		(cd tests/sms && npm ci --no-audit --no-fund --loglevel=error)

run: deps all
	@scripts/run.sh $(BUILD)

test: test-deps
	@$(MAKE) --no-print-directory all $(UNIT_TESTS) $(BUILD)/xmpp-load
	@scripts/test.sh $(BUILD) $(UNIT_TESTS)

unit: all $(UNIT_TESTS)
	@scripts/test.sh --unit-only $(BUILD) $(UNIT_TESTS)

# ---- benchmarks (bench/RESULTS.md): baton side by side with Prosody and ejabberd ----

$(BUILD)/xmpp-load: bench/xmpp-load.c bench/Makefile
	@$(MAKE) --no-print-directory -C bench BUILD=$(abspath $(BUILD))

bench: deps all $(BUILD)/xmpp-load
	@scripts/deps.sh bench
	@bench/all.sh
	@# SMS (seed 001 R4): MT through the link with and without 200 ms RTT.
	@/usr/bin/python3 bench/sms.py
	@# SIP (issue 9): MESSAGE transactions/s, baton and Kamailio with msilo.
	@/usr/bin/python3 bench/sip.py

# ---- fuzzing: clang's libFuzzer, each target for FUZZ_SECONDS from its seed corpus ----

FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_LIBS    := $(wildcard src/core/*.c src/xml/*.c src/net/*.c) src/xmpp/jid.c src/xmpp/sasl.c \
		src/web/form.c $(wildcard src/smsbuf/gsm.c src/smsbuf/cimd2.c src/smsbuf/smpp.c src/sms/link.c src/sip/digest.c src/sip/msg.c)
FUZZ_CFLAGS  := -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Isrc

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIBS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) $(CPPFLAGS) -o $@ $^ $(LDLIBS)

# fuzz_s2s runs a whole server in-process (server and component streams over loopback): every
# module batond links, with the fuzzer's flags.
FUZZ_SERVER_SRC := $(filter-out src/cmd/% src/smsbuf/%,$(wildcard src/*/*.c))
build/fuzz/fuzz_s2s: tests/fuzz/fuzz_s2s.c $(FUZZ_SERVER_SRC)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) $(CPPFLAGS) -o $@ $^ $(LDLIBS)

fuzz: $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus_$$t; \
		echo "fuzz_$$t: $(FUZZ_SECONDS)s"; \
		if ! build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			-print_final_stats=1 build/fuzz/corpus_$$t tests/fuzz/corpus/$$t \
			>build/fuzz/fuzz_$$t.log 2>&1; then \
			tail -40 build/fuzz/fuzz_$$t.log; echo "fuzz_$$t: FAILED"; exit 1; \
		fi; \
		grep -E 'stat::(number_of_executed_units|peak_rss)' build/fuzz/fuzz_$$t.log; \
	done

format:
	clang-format -i $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
