# ldap-health-check — build, test, demo, install.
#
#   make demo      build, start a throwaway slapd, show OK / CRITICAL (hung) / CRITICAL (down), clean up
#   make check     run every test; no side effects (the test dependencies must be installed)
#   make test      install missing test dependencies (Debian, as root), then make check
#   make install   PREFIX=/usr/local DESTDIR= BINDIR= SYSTEMDUNITDIR= ... (see README)
#   make lint      cargo fmt --check, clippy -D warnings, rustdoc -D warnings, scripts/structure.py
#   make bench     measure against ldapsearch/check_ldap/postmap on a throwaway slapd; writes docs/benchmarks.md
#   make fuzz      the property tests (tests/props.rs) with many more cases (PROPTEST_CASES, default 100000), and
#                  hostile LDAP replies against the release binary (tests/fuzz_replies.rs, LHC_FUZZ_CASES, default 100000)
#   make man       regenerate the man page and shell completions after a change of options (commit them)

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
TEST_DEPS := slapd ldap-utils openssl postfix postfix-ldap util-linux iproute2 procps systemd python3 man-db strace \
             dpkg-dev icinga2-bin
BENCH_DEPS := $(TEST_DEPS) monitoring-plugins-standard hyperfine time libnet-ldap-perl
DEMO_DEPS := slapd ldap-utils openssl

.PHONY: all build release check test test-deps lint demo bench fuzz install uninstall clean

# promtool (tests/contrib.rs) is only a part of Debian's prometheus package, which installs 332 MB (a server and its
# web UI's JavaScript) and a daemon: take the one static binary out of the package instead, into target/tools
# (apt-get download: 19 MB, no install, nothing started). PROMTOOL=/usr/bin/promtool if prometheus is installed.
PROMTOOL := target/tools/promtool

all: release

build:
	$(CARGO) build --locked

release: $(BIN)

$(BIN): Cargo.toml Cargo.lock $(shell find src vendor -name '*.rs' -o -name Cargo.toml)
	$(CARGO) build --release --locked

test-deps:
	scripts/install-deps.sh $(TEST_DEPS)
	$(MAKE) --no-print-directory $(PROMTOOL)

check:
	$(CARGO) test --locked --all-targets -- --test-threads=4

test: test-deps
	$(MAKE) check

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	RUSTDOCFLAGS='-D warnings' $(CARGO) doc --locked --no-deps --quiet
	python3 scripts/structure.py

demo: release
	scripts/install-deps.sh $(DEMO_DEPS)
	scripts/demo.sh $(BIN)

bench: release
	scripts/install-deps.sh $(BENCH_DEPS)
	scripts/bench.sh $(BIN)

PROPTEST_CASES ?= 100000
LHC_FUZZ_CASES ?= 100000
fuzz: release
	PROPTEST_CASES=$(PROPTEST_CASES) $(CARGO) test --locked --release --test props
	LHC_FUZZ_BIN=$(CURDIR)/$(BIN) LHC_FUZZ_CASES=$(LHC_FUZZ_CASES) $(CARGO) test --locked --test fuzz_replies -- --nocapture

clean:
	$(CARGO) clean

# ---- install / uninstall ----------------------------------------------------------------------------------
#   make install [PREFIX=/usr/local] [DESTDIR=] [BINDIR=] [SYSTEMDUNITDIR=] [DOCDIR=]
# installs the release binary, the systemd units from units/ (paths substituted) and an example
# /etc/default/ldap-health-check under $(DOCDIR). It never writes /etc and enables nothing; with DESTDIR
# empty and systemd running it runs `systemctl daemon-reload`. Packagers: DESTDIR=... SYSTEMDUNITDIR=$$(pkg-config
# --variable=systemdsystemunitdir systemd). NOBUILD=1 installs $(INSTALL_BIN) as it is, without cargo
# (the systemd end-to-end test installs the test build this way).
# `make uninstall` (same variables) removes exactly those files; on a live system it first undoes
# `systemctl enable --now ldap-health-check.timer` and resets the two latches (neither touches Postfix).
INSTALL_BIN ?= $(BIN)
UNIT_TEMPLATES := ldap-health-check.service ldap-health-check-policy@.service
UNIT_FILES := ldap-health-check.timer ldap-health-check.path \
              ldap-health-check-stop-postfix.service ldap-health-check-start-postfix.service \
              ldap-health-check-policy.socket
EXAMPLE_ENV := examples/ldap-health-check.default
LIVE_SYSTEMD = [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]

.PHONY: install-bin install-units install-doc install-contrib uninstall-bin uninstall-units uninstall-doc \
        uninstall-contrib

install: install-bin install-units install-doc install-man install-completions install-contrib
	if $(LIVE_SYSTEMD); then systemctl daemon-reload; fi

# Over a live install the timer may start a check at any moment: the new binary is written beside the old one
# and renamed over it (atomic), so a check runs either the old or the new one, never a half-written file
# (which fails with 203/EXEC and, as a failed check, stops Postfix).
install-bin: $(if $(NOBUILD),,$(BIN))
	$(INSTALL) -d $(DESTDIR)$(BINDIR)
	$(INSTALL) -m755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/.ldap-health-check.tmp
	mv -f $(DESTDIR)$(BINDIR)/.ldap-health-check.tmp $(DESTDIR)$(BINDIR)/ldap-health-check

install-units:
	$(INSTALL) -d $(DESTDIR)$(SYSTEMDUNITDIR)
	for u in $(UNIT_TEMPLATES); do \
	  sed -e 's|@BINDIR@|$(BINDIR)|g' -e '/^@HARDENING@$$/{r units/hardening.inc' -e 'd;}' units/$$u.in | \
	    sed -e '/^##/d' > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
	  chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
	  mv -f $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done
	$(INSTALL) -m644 $(addprefix units/,$(UNIT_FILES)) $(DESTDIR)$(SYSTEMDUNITDIR)/

install-doc:
	$(INSTALL) -Dm644 units/ldap-health-check.default $(DESTDIR)$(DOCDIR)/$(EXAMPLE_ENV)

uninstall: uninstall-units uninstall-bin uninstall-doc uninstall-man uninstall-completions uninstall-contrib
	if $(LIVE_SYSTEMD); then systemctl daemon-reload; fi

# A running check is left to finish: stopping it would count as a failed check and stop Postfix.
# Resetting the stop latch does not start Postfix: if a check had stopped it, it stays stopped, and says so.
uninstall-units:
	if $(LIVE_SYSTEMD); then \
	  if systemctl is-active --quiet ldap-health-check-stop-postfix.service; then \
	    echo '************************************************************************************' >&2; \
	    echo 'NOTICE: Postfix was stopped by ldap-health-check and stays stopped:' >&2; \
	    echo '        systemctl start postfix when ready' >&2; \
	    echo '************************************************************************************' >&2; \
	  fi; \
	  if systemctl is-active --quiet ldap-health-check-policy.socket; then \
	    echo 'NOTICE: ldap-health-check-policy.socket stopped: remove check_policy_service { unix:private/' >&2; \
	    echo '        ldap-health-check, ... } from main.cf (without default_action=DUNNO smtpd answers 451)' >&2; \
	  fi; \
	  systemctl disable --now ldap-health-check.timer ldap-health-check.path ldap-health-check-policy.socket || :; \
	  systemctl disable ldap-health-check.service || :; \
	  systemctl stop ldap-health-check-stop-postfix.service ldap-health-check-start-postfix.service || :; \
	fi
	rm -f $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(UNIT_TEMPLATES) $(UNIT_FILES))

uninstall-bin:
	rm -f $(DESTDIR)$(BINDIR)/ldap-health-check $(DESTDIR)$(BINDIR)/.ldap-health-check.tmp

uninstall-doc:
	rm -f $(DESTDIR)$(DOCDIR)/$(EXAMPLE_ENV)
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null || :

# ---- man page and shell completions ------------------------------------------------------------------------
# Generated from the CLI definition (src/cli.rs) plus man/sections.roff by examples/generate.rs, and committed:
# `make man` regenerates them after a change of options (tests/generated.rs fails until it is run).
# `make install` puts them under $(MANDIR)/man8 and the shells' system-wide completion directories.
MAN_PAGE := man/ldap-health-check.8
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d

.PHONY: man install-man install-completions uninstall-man uninstall-completions

man:
	$(CARGO) run --locked --quiet --example generate

install-man:
	$(INSTALL) -Dm644 $(MAN_PAGE) $(DESTDIR)$(MANDIR)/man8/ldap-health-check.8

install-completions:
	$(INSTALL) -Dm644 completions/ldap-health-check.bash $(DESTDIR)$(BASHCOMPDIR)/ldap-health-check
	$(INSTALL) -Dm644 completions/_ldap-health-check $(DESTDIR)$(ZSHCOMPDIR)/_ldap-health-check
	$(INSTALL) -Dm644 completions/ldap-health-check.fish $(DESTDIR)$(FISHCOMPDIR)/ldap-health-check.fish

uninstall-man:
	rm -f $(DESTDIR)$(MANDIR)/man8/ldap-health-check.8

uninstall-completions:
	rm -f $(DESTDIR)$(BASHCOMPDIR)/ldap-health-check $(DESTDIR)$(ZSHCOMPDIR)/_ldap-health-check \
	      $(DESTDIR)$(FISHCOMPDIR)/ldap-health-check.fish

# ---- fleet files (contrib/) ---------------------------------------------------------------------------------
# The Icinga 2 CheckCommand, NRPE commands and Prometheus alert rules, under $(CONTRIBDIR), with the binary's
# path substituted. Validated by tests/contrib.rs (icinga2 daemon -C, promtool check/test rules, the NRPE
# commands run against a real slapd).
CONTRIBDIR ?= $(DATADIR)/ldap-health-check
CONTRIB_FILES := icinga2/ldap-health-check.conf nrpe/ldap-health-check.cfg prometheus/ldap-health-check.rules.yml

install-contrib:
	for f in $(CONTRIB_FILES); do \
	  $(INSTALL) -d $(DESTDIR)$(CONTRIBDIR)/$$(dirname $$f) && \
	  sed -e 's|/usr/sbin/ldap-health-check|$(BINDIR)/ldap-health-check|g' contrib/$$f > $(DESTDIR)$(CONTRIBDIR)/$$f && \
	  chmod 644 $(DESTDIR)$(CONTRIBDIR)/$$f || exit 1; \
	done

uninstall-contrib:
	rm -f $(addprefix $(DESTDIR)$(CONTRIBDIR)/,$(CONTRIB_FILES))
	rmdir $(addprefix $(DESTDIR)$(CONTRIBDIR)/,icinga2 nrpe prometheus) $(DESTDIR)$(CONTRIBDIR) 2>/dev/null || :

# ---- Debian package ------------------------------------------------------------------------------------------
#   make deb      target/deb/ldap-health-check_VERSION_ARCH.deb from `make install DESTDIR=...` (scripts/deb.sh),
#                 with the dynamically linked release build: it resolves names through the system's NSS as every
#                 other program does. Needs dpkg-dev only (installed when missing).
#   make static   a glibc static-pie build, in its own directory (the normal build is not touched), for `make
#                 bench` only: NOT for the package. glibc's getaddrinfo in a static binary dlopens the system's
#                 NSS modules (libnss_myhostname, _resolve, _mdns4_minimal...) together with a second libc, and
#                 crashed here (SIGSEGV, exit 139: a failed check, so Postfix stopped) with `hosts: myhostname`,
#                 glibc 2.36-9+deb12u14 on both sides (docs/packaging.md).
STATIC_TARGET := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
STATIC_BIN := target/$(STATIC_TARGET)/release/ldap-health-check
DEB_BIN ?= $(BIN)

.PHONY: static deb

static: $(STATIC_BIN)

# --target puts it under target/TRIPLE/ (its own fingerprints); RUSTFLAGS then applies to the target only,
# not to build scripts and proc-macros, which cannot be static.
$(STATIC_BIN): Cargo.toml Cargo.lock $(shell find src -name "*.rs")
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --locked --target $(STATIC_TARGET)

deb: $(DEB_BIN)
	scripts/install-deps.sh dpkg-dev
	scripts/deb.sh $(DEB_BIN) target/deb

# make bench-static: the shipped dynamic build against the static-pie one, side by side (scripts/bench-static.sh)
.PHONY: bench-static
bench-static: release static
	scripts/install-deps.sh $(BENCH_DEPS)
	scripts/bench-static.sh $(BIN) $(STATIC_BIN)

$(PROMTOOL):
	mkdir -p target/tools/download
	cd target/tools/download && rm -f prometheus_*.deb && \
	  { apt-get download -q prometheus || { apt-get update -qq && apt-get download -q prometheus; }; }
	dpkg-deb --fsys-tarfile target/tools/download/prometheus_*.deb | tar -xO ./usr/bin/promtool > $@.tmp
	chmod 755 $@.tmp && mv -f $@.tmp $@ && rm -rf target/tools/download
	$@ --version | head -n 1
