#!/usr/bin/python3
"""SMTP RCPT probes for tests/policy/ (stdlib only; raw socket, so replies are shown exactly).

  smtp-probe.py PORT RCPT...            one session: EHLO, MAIL FROM, RCPT TO each address, RSET-free, QUIT
  options:
    --xclient ADDR      send XCLIENT ADDR=ADDR NAME=[UNAVAILABLE] first (poses as a remote client outside
                        mynetworks; the instance allows XCLIENT from 127.0.0.0/8)
    --sender ADDR       MAIL FROM (default sender@example.net)
    --sessions N        repeat the whole session N times (new connection each time; default 1)
    --duration S        repeat sessions until S seconds have passed (overrides --sessions)
    --per-session K     at most K RCPTs per session, then QUIT and reconnect (default: all)
    --timeout S         socket timeout (default 30)
    --transcript        print the whole dialogue (C: / S: lines) to stderr
    --stats             instead of one line per RCPT, print a summary per reply code:
                        <code> n=<count> median=<ms> p90=<ms> p99=<ms> max=<ms>   (RCPT round trip, client side)

One line per RCPT on stdout, tab-separated:
    <unix time, s.ms>  <recipient>  <reply code>  <milliseconds the RCPT took>  <reply text (last line)>
Exit status 0 when every session completed (whatever the codes), 1 on a protocol or socket error.
"""
import socket
import sys
import time


class Smtp:
    def __init__(self, port, timeout, transcript):
        self.transcript = transcript
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""

    def log(self, s):
        if self.transcript:
            sys.stderr.write(s + "\n")
            sys.stderr.flush()

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                data = self.sock.recv(4096)
                if not data:
                    raise EOFError("connection closed by server")
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            self.log("S: " + text)
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), lines

    def cmd(self, line):
        self.log("C: " + line)
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.cmd("QUIT")
        except Exception:
            pass
        self.sock.close()


def expect(what, got, ok):
    code, lines = got
    if code not in ok:
        raise RuntimeError(f"{what}: {lines[-1]}")


def session(port, rcpts, opts, out):
    s = Smtp(port, opts["timeout"], opts["transcript"])
    try:
        expect("greeting", s.reply(), (220,))
        expect("EHLO", s.cmd("EHLO probe.example.net"), (250,))
        if opts["xclient"]:
            expect("XCLIENT", s.cmd(f"XCLIENT NAME=[UNAVAILABLE] ADDR={opts['xclient']}"), (220,))
            expect("EHLO", s.cmd("EHLO probe.example.net"), (250,))
        expect("MAIL", s.cmd(f"MAIL FROM:<{opts['sender']}>"), (250,))
        for r in rcpts:
            t0 = time.monotonic()
            code, lines = s.cmd(f"RCPT TO:<{r}>")
            ms = (time.monotonic() - t0) * 1000
            if opts["stats"] is not None:
                opts["stats"].setdefault(code, []).append(ms)
            else:
                out.write(f"{time.time():.3f}\t{r}\t{code}\t{ms:.3f}\t{lines[-1]}\n")
                out.flush()
    finally:
        s.close()


def main(argv):
    opts = {"xclient": None, "sender": "sender@example.net", "sessions": 1, "duration": None,
            "per_session": 0, "timeout": 30.0, "transcript": False, "stats": None}
    args = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--xclient", "--sender", "--sessions", "--duration", "--per-session", "--timeout"):
            v = argv[i + 1]
            i += 1
            key = a[2:].replace("-", "_")
            opts[key] = v if key in ("xclient", "sender") else float(v) if key in ("duration", "timeout") else int(v)
        elif a == "--transcript":
            opts["transcript"] = True
        elif a == "--stats":
            opts["stats"] = {}
        elif a.startswith("--"):
            sys.exit(__doc__)
        else:
            args.append(a)
        i += 1
    if len(args) < 2:
        sys.exit(__doc__)
    port, rcpts = int(args[0]), args[1:]
    k = opts["per_session"] or len(rcpts)
    chunks = [rcpts[j:j + k] for j in range(0, len(rcpts), k)]
    end = time.monotonic() + opts["duration"] if opts["duration"] is not None else None
    n = 0
    try:
        while (end is not None and time.monotonic() < end) or (end is None and n < opts["sessions"]):
            for c in chunks:
                session(port, c, opts, sys.stdout)
            n += 1
    except (OSError, EOFError, RuntimeError) as e:
        sys.stderr.write(f"smtp-probe: {e}\n")
        return 1
    finally:
        for code, v in sorted((opts["stats"] or {}).items()):
            v.sort()
            q = lambda f: v[min(len(v) - 1, int(f * len(v)))]
            print(f"{code} n={len(v)} median={q(0.5):.2f} p90={q(0.9):.2f} p99={q(0.99):.2f} max={v[-1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
