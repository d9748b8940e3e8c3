#!/usr/bin/python3
"""Run commands interleaved, one run each in turn, and time every run (for scripts/bench.sh).

  bench-interleave.py OUT.json RUNS -n NAME COMMAND [-n NAME COMMAND ...]

COMMAND is split on blanks and run without a shell (as `hyperfine -N` does), stdout and stderr to /dev/null.
Each cycle runs every command once, in a new random order (a fixed seed: the same order every time), so that a
busy spell of the shared machine falls on every command alike; 3 cycles of warm-up, then RUNS cycles. For each
run: the wall time from spawn to reaped, and the CPU time (user + system, from wait4) of the process. A command
that fails stops the whole run (exit 1). OUT.json: {"results": [{"command", "times", "cpu", "exit_codes"}]}
(seconds), the shape of hyperfine's --export-json for the fields that scripts/bench-report.py reads.
"""
import json
import os
import random
import sys
import time

WARMUP = 3


def main(argv):
    out, runs, rest = argv[0], int(argv[1]), argv[2:]
    commands = []
    while rest:
        if len(rest) < 3 or rest[0] != "-n":
            sys.exit(__doc__)
        commands.append((rest[1], rest[2].split()))
        rest = rest[3:]
    devnull = os.open(os.devnull, os.O_WRONLY)
    quiet = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    results = {name: {"command": name, "times": [], "cpu": [], "exit_codes": []} for name, _ in commands}
    order = random.Random(42)
    for cycle in range(WARMUP + runs):
        turn = list(commands)
        order.shuffle(turn)
        for name, argv_ in turn:
            t0 = time.perf_counter()
            pid = os.posix_spawnp(argv_[0], argv_, os.environ, file_actions=quiet)
            _, status, usage = os.wait4(pid, 0)
            t1 = time.perf_counter()
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                sys.exit(f"bench-interleave: {name}: exit status {code}: {' '.join(argv_)}")
            if cycle >= WARMUP:
                r = results[name]
                r["times"].append(t1 - t0)
                r["cpu"].append(usage.ru_utime + usage.ru_stime)
                r["exit_codes"].append(code)
    with open(out, "w") as f:
        json.dump({"results": [results[name] for name, _ in commands]}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
