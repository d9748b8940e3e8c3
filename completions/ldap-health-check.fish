complete -c ldap-health-check -s f -l conffile -d 'A Postfix ldap_table(5) map file; repeat for several maps [default: the space-separated paths in $LDAP_HEALTH_CHECK_CONFFILE, else every LDAP map of the Postfix configuration (--postfix-config)]' -r -F
complete -c ldap-health-check -l interval -d 'Without --once: time between two checks while the directory is healthy (e.g. 60s, 5m)' -r
complete -c ldap-health-check -s t -l timeout -d 'One hard deadline for the whole check (e.g. 2s, 500ms, or bare seconds); default: the longest a Postfix lookup of the maps could take (`timeout` for each operation), at most 2 minutes' -r
complete -c ldap-health-check -s w -l warning -d 'Response time (seconds) that makes the check WARNING, as a Nagios range (10, 10:, ~:10, @1:2)' -r
complete -c ldap-health-check -s c -l critical -d 'Response time (seconds) that makes the check CRITICAL, as a Nagios range' -r
complete -c ldap-health-check -l format -d 'What stdout carries for each check: the Nagios line, or one JSON object on one line. Without --once, only the failing check that ends the loop prints (every check with --debug)' -r -f -a "nagios\t'The Nagios plugin line, with long output after it with -v'
json\t'JSON Lines, described by docs/json-schema.json'"
complete -c ldap-health-check -l prometheus-textfile -d 'Also write the result of every check to PATH in the Prometheus text format, atomically, for node_exporter\'s textfile collector (e.g. /var/lib/prometheus/node-exporter/ldap-health-check.prom); a failed write is a warning on stderr and does not change the verdict [default: $LDAP_HEALTH_CHECK_PROMETHEUS_TEXTFILE when set and not empty]' -r -F
complete -c ldap-health-check -l canary -d 'A key that must resolve in every map of the run (repeatable), e.g. postmaster@example.com: not found is CRITICAL (Postfix would answer 550 User unknown). Per-map keys: `health_check_key = k1, k2` in the map' -r
complete -c ldap-health-check -l query -d 'Look KEY up in the one map given with -f, exactly as `postmap -q KEY ldap:FILE` does, print the result and exit 0 found, 1 not found, 2 lookup error (reason on stderr)' -r
complete -c ldap-health-check -l postfix-config -d 'Postfix\'s configuration directory, read with `postconf -c DIR` to find every ldap: map when no map file is given [default: $MAIL_CONFIG, else /etc/postfix]' -r -F
complete -c ldap-health-check -l cert-warn -d 'WARNING when a TLS server\'s certificate (any server of a map, standbys included) expires within this time, or has expired while Postfix does not verify it (0: never), e.g. 21d, 2w' -r
complete -c ldap-health-check -l cert-crit -d 'CRITICAL when a certificate Postfix verifies (tls_require_cert = yes) expires within this time (0: never; the systemd unit sets 0, so that a certificate that still works never stops Postfix)' -r
complete -c ldap-health-check -l replica-lag -d 'WARNING when a server\'s data lags the freshest server of its map by more than this (maps with several servers; their contextCSN values compared; 0: never), e.g. 5m, 1h' -r
complete -c ldap-health-check -l policy-cache -d 'With --policy: reuse a judgement for this long (0: judge every RCPT), e.g. 0, 500ms, 2s' -r
complete -c ldap-health-check -l once -d 'Check once, print the verdict and exit with its status (the Nagios plugin and systemd mode)'
complete -c ldap-health-check -s v -l verbose -d 'Long output: one line per map and per server with each stage\'s timing or error, each canary with its value, the Postfix parameters that use each discovered map; repeat for more'
complete -c ldap-health-check -l debug -d 'Print the old tool\'s `DEBUG: LDAP search success: dn=...` line for each successful check, and more detail'
complete -c ldap-health-check -l syslog -d 'Also log to the local syslog (facility mail); a missing syslog socket is only a warning'
complete -c ldap-health-check -l policy -d 'Serve Postfix\'s SMTPD access policy protocol on stdin/stdout until EOF (run by ldap-health-check-policy.socket, or by spawn(8)): answer DEFER_IF_REJECT for a recipient while the recipient maps answer wrong (Postfix\'s 550 becomes 450), DUNNO otherwise; logs to syslog. The maps: -f, else those main.cf uses for recipients. -t is the deadline per request [default: 2s]'
complete -c ldap-health-check -l self-test -d 'With --policy: judge the directory once, print the answer an RCPT would get now and why, and exit (0 DUNNO, 1 DEFER_IF_REJECT, 3 no recipient map to guard)'
complete -c ldap-health-check -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ldap-health-check -s V -l version -d 'Print version'
