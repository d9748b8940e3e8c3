#!/usr/bin/python3 -S
"""The cheapest possible SMTPD policy server, for measuring the protocol's own cost (tests/policy/):
answers every request with the fixed action given as arguments (default DUNNO), buffered I/O, no logging.
Exits at EOF.   master.cf: argv=/path/fixed-policy.py DEFER_IF_REJECT 4.3.0 some text"""
import sys

reply = ("action=" + (" ".join(sys.argv[1:]) or "DUNNO") + "\n\n").encode()
inp, out = sys.stdin.buffer, sys.stdout.buffer
pending = False
for line in inp:
    if line in (b"\n", b"\r\n"):
        if pending:
            out.write(reply)
            out.flush()
        pending = False
    else:
        pending = True
