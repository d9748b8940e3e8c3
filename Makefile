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

# ---- install / uninstall ----------------------------------------------------------------------------------
#   make install [PREFIX=/usr/local] [DESTDIR=] [BINDIR=] [SYSTEMDUNITDIR=] [DOCDIR=]
# installs the release binary, the systemd units from units/ (paths substituted) and an example
# /etc/default/ldap-health-check under $(DOCDIR). It never writes /etc and enables nothing; with DESTDIR
# empty and systemd running it runs `systemctl daemon-reload`. Packagers: DESTDIR=... SYSTEMDUNITDIR=$$(pkg-config
# --variable=systemdsystemunitdir systemd). NOBUILD=1 installs $(INSTALL_BIN) as it is, without cargo
# (the systemd end-to-end test installs the test build this way).
# `make uninstall` (same variables) removes exactly those files; on a live system it first disables and
# stops the timer, the .path unit and the boot check (what `systemctl enable ldap-health-check.timer` set up).
INSTALL_BIN ?= $(BIN)
UNIT_TEMPLATES := ldap-health-check.service
UNIT_FILES := ldap-health-check.timer ldap-health-check.path \
              ldap-health-check-stop-postfix.service ldap-health-check-start-postfix.service
EXAMPLE_ENV := examples/ldap-health-check.default
LIVE_SYSTEMD = [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]

.PHONY: install-bin install-units install-doc uninstall-bin uninstall-units uninstall-doc

# man pages and shell completions: add install-man / install-completions (and their uninstall-*) here
install: install-bin install-units install-doc
	if $(LIVE_SYSTEMD); then systemctl daemon-reload; fi

install-bin: $(if $(NOBUILD),,$(BIN))
	$(INSTALL) -Dm755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/ldap-health-check

install-units:
	$(INSTALL) -d $(DESTDIR)$(SYSTEMDUNITDIR)
	for u in $(UNIT_TEMPLATES); do \
	  sed -e 's|@BINDIR@|$(BINDIR)|g' units/$$u.in > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
	  chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
	  mv -f $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done
	$(INSTALL) -m644 $(addprefix units/,$(UNIT_FILES)) $(DESTDIR)$(SYSTEMDUNITDIR)/

install-doc:
	$(INSTALL) -Dm644 units/ldap-health-check.default $(DESTDIR)$(DOCDIR)/$(EXAMPLE_ENV)

uninstall: uninstall-units uninstall-bin uninstall-doc
	if $(LIVE_SYSTEMD); then systemctl daemon-reload; fi

uninstall-units:
	if $(LIVE_SYSTEMD); then \
	  systemctl disable --now ldap-health-check.timer ldap-health-check.path ldap-health-check.service || :; \
	fi
	rm -f $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(UNIT_TEMPLATES) $(UNIT_FILES))

uninstall-bin:
	rm -f $(DESTDIR)$(BINDIR)/ldap-health-check

uninstall-doc:
	rm -f $(DESTDIR)$(DOCDIR)/$(EXAMPLE_ENV)
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null
