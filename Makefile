# ldap-health-check — build, test, demo, install.
#
#   make demo      build, start a throwaway slapd, show OK / CRITICAL (hung) / CRITICAL (down), clean up
#   make test      install missing test dependencies (Debian, as root), then run every test
#   make install   PREFIX=/usr/local DESTDIR= BINDIR= SYSTEMDUNITDIR= ... (see README)
#   make lint      cargo fmt --check and clippy -D warnings

CARGO   ?= cargo
INSTALL ?= install

PREFIX         ?= /usr/local
BINDIR         ?= $(PREFIX)/bin
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
DOCDIR         ?= $(DATADIR)/doc/ldap-health-check
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

BIN := target/release/ldap-health-check

# Debian packages the tests use: a real slapd and its tools, Postfix's own postmap as the oracle,
# the peers for benchmarks, and what the systemd sandbox needs.
TEST_DEPS := slapd ldap-utils openssl postfix postfix-ldap util-linux iproute2 procps systemd python3
BENCH_DEPS := $(TEST_DEPS) monitoring-plugins-standard hyperfine time libnet-ldap-perl
DEMO_DEPS := slapd ldap-utils openssl

.PHONY: all build release test test-deps lint demo bench install uninstall clean

all: release

build:
	$(CARGO) build --locked

release: $(BIN)

$(BIN): Cargo.toml Cargo.lock $(wildcard src/*.rs)
	$(CARGO) build --release --locked

test-deps:
	scripts/install-deps.sh $(TEST_DEPS)

test: test-deps
	$(CARGO) test --locked --all-targets -- --test-threads=4

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

demo: release
	scripts/install-deps.sh $(DEMO_DEPS)
	scripts/demo.sh $(BIN)

clean:
	$(CARGO) clean
