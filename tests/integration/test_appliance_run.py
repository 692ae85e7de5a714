#!/usr/bin/python3
"""
test_appliance_run.py -- acceptance test 8: the appliance as a person starts
it, `./bootstrap.sh run`, with its private Redis, and a critical datapoint
kept through an outage of its file sink.

bootstrap.sh run uses the build at the top of the source tree (where
run-suite.sh runs every test), whatever BUILD_DIR is: this test exercises
that build, and only talks to it.  It runs in a session of its own, with
SIGINT at its default (as in a terminal), and with
RUN_DIR=<temporary directory>/run and LISTEN_PORT=<a free port>, so the
tree's run/ and port 2003 are left alone and two runs of the suite cannot
collide.

The file sink run/metrics.txt is a FIFO made before the start and read by
the test: orchester opens files without blocking, so once the reader is
gone a write to it fails and it cannot be opened again (the destination is
down); once it is removed, orchester's next attempt creates a regular file.

Checks:
  - bootstrap.sh run starts redis-server (answers PING on
    RUN_DIR/redis/redis.sock) and orchester (answers orchester-ctl -f
    RUN_DIR/orchester.conf status, accepts connections on the port);
  - redis-server runs with etc/redis.conf: no TCP port, append-only,
    noeviction, maxmemory set, data in RUN_DIR/redis; in a process group of
    its own;
  - with every package there and the build up to date, it installs and
    rebuilds nothing;
  - an ordinary datapoint reaches the FIFO;
  - with the reader gone, one critical datapoint goes to Redis: `buffer`
    shows backlog=1 and XLEN of its key is 1;
  - with the FIFO removed, the datapoint is replayed into a new
    metrics.txt, backlog=0, the stream is empty;
  - SIGINT to bootstrap.sh's process group (a Ctrl-C) stops orchester and
    then redis-server: both PIDs are gone, bootstrap.sh exits 0 and removes
    its pid files.
"""
import errno
import os
import re
import signal
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Test, Proc, GiveUp, require, free_port_pair,  # noqa: E402
                     wait_until, run, ctl, parse_status, tcp_accepts, send_tcp,
                     CTL_TIMEOUT)

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_BOUND = 600.0  # bootstrap.sh may have to build first; a built tree takes seconds
STOP_BOUND = 60.0    # orchester drains for at most 10 s, redis-server 10 s more


def _terminal_signals():
    """In the child, before exec: SIGINT and SIGQUIT at their defaults, as a
    shell in a terminal has them (a shell cannot trap a signal it was
    started with ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class SessionProc(Proc):
    """A Proc started in a session (and process group) of its own; stop()
    signals the whole group, as a terminal does."""

    def start(self):
        self.runs += 1
        self.out_path = os.path.join(self.dir, "%s.stdout" % self.name)
        self.err_path = os.path.join(self.dir, "%s.stderr" % self.name)
        self.err_paths.append(self.err_path)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(
                self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, close_fds=True,
                start_new_session=True, preexec_fn=_terminal_signals)
        self.expect_alive = True
        return self

    def signal_group(self, sig):
        self.expect_alive = False
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout=30.0):
        self.expect_alive = False
        if self.p is None:
            return None, False
        if self.p.poll() is None:
            self.signal_group(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.signal_group(signal.SIGKILL)
                return self.p.wait(), True
        # whatever of the group is left (nothing, normally)
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.p.returncode, False


def alive(pid):
    """Whether pid is a running process (a zombie is not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def body(t):
    rundir = t.tmp.join("run")
    os.makedirs(rundir)
    fifo = os.path.join(rundir, "metrics.txt")
    sock = os.path.join(rundir, "redis", "redis.sock")
    conf = os.path.join(rundir, "orchester.conf")
    port = free_port_pair()
    key = "orchester:buf:local:" + fifo
    pids = {}          # what bootstrap.sh started: name -> pid
    reader = [None]    # the FIFO's read end

    # the sink: a FIFO with the test as its reader
    os.mkfifo(fifo)
    reader[0] = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)

    def close_reader():
        if reader[0] is not None:
            os.close(reader[0])
            reader[0] = None

    # before: is the in-tree build up to date?
    binaries = [os.path.join(TOP, "relay", p) for p in ("orchester", "orchester-ctl")]
    before = [mtime(b) for b in binaries]
    rc, _, _, _ = run(["make", "-C", TOP, "-q", "relay/orchester",
                       "relay/orchester-ctl"], 120)
    up_to_date = rc == 0 and None not in before

    env = dict(os.environ)
    env.pop("CARBON", None)
    env["RUN_DIR"] = rundir
    env["LISTEN_PORT"] = str(port)
    bs = SessionProc("bootstrap", [os.path.join(TOP, "bootstrap.sh"), "run"],
                     t.tmp.path, env=env, cwd=TOP)
    t.procs.append(bs)

    def leftovers():
        """At the end, also after a failure: stop bootstrap.sh's process
        group (bootstrap.sh stops redis-server), then, by PID, whatever it
        started and could not stop."""
        close_reader()
        bs.stop()
        for name, want in (("orchester", "orchester"), ("redis", "redis-server")):
            pid = pids.get(name) or read_pid(os.path.join(rundir, name + ".pid"))
            if pid and alive(pid) and comm(pid) == want:
                os.kill(pid, signal.SIGTERM)
                try:
                    wait_until(lambda: not alive(pid), 20, "%s to exit" % name)
                except Exception:
                    os.kill(pid, signal.SIGKILL)
    t.on_cleanup(leftovers)

    def buffer_status():
        rc, out, err, _ = ctl(TOP, ["-f", conf, "buffer"])
        require(rc == 0, "orchester-ctl buffer: exit %s: %s" % (rc, err.strip()[-300:]))
        st = parse_status(out)
        d = st["destinations"].get(("local", fifo))
        require(d is not None, "no destination local %s in %r" % (fifo, out[-600:]))
        return st, d

    def redis_raw(*args):
        rc, out, err, _ = run(["redis-cli", "-s", sock] + [str(a) for a in args],
                              CTL_TIMEOUT)
        require(rc == 0, "redis-cli %s: exit %s: %s" % (args[0], rc, err.strip()))
        return out

    def redis_cli(*args):
        return redis_raw(*args).strip()

    with t.check("bootstrap.sh run starts redis-server and orchester", fatal=True):
        t0 = time.monotonic()
        bs.start()

        def ready():
            if not bs.alive():
                raise GiveUp("bootstrap.sh exited with %s: %s" % (
                    bs.returncode, bs.stderr_tail(1500).strip()))
            if redis_cli("PING") != "PONG":
                return False
            rc, _, _, _ = ctl(TOP, ["-f", conf, "status"])
            return rc == 0 and tcp_accepts(port)

        wait_until(ready, START_BOUND, "redis-server and orchester to answer",
                   interval=0.2)
        print("# bootstrap.sh run: ready after %.1f s" % (time.monotonic() - t0))
        for name in ("orchester", "redis"):
            pid = read_pid(os.path.join(rundir, name + ".pid"))
            require(pid is not None, "no %s/%s.pid" % (rundir, name))
            pids[name] = pid
        require(comm(pids["orchester"]) == "orchester",
                "orchester.pid names %r" % comm(pids["orchester"]))
        require(comm(pids["redis"]) == "redis-server",
                "redis.pid names %r" % comm(pids["redis"]))
        m = re.search(r"process_id:(\d+)", redis_cli("INFO", "server"))
        require(m and int(m.group(1)) == pids["redis"],
                "redis.pid says %d, Redis %s" % (pids["redis"],
                                                 m.group(1) if m else "nothing"))

    with t.check("redis-server runs with etc/redis.conf: no TCP port, "
                 "append-only, noeviction, maxmemory, data in RUN_DIR/redis, "
                 "its own process group"):
        got = {}
        for k in ("port", "appendonly", "appendfsync", "maxmemory-policy",
                  "maxmemory", "dir", "save"):
            lines = redis_raw("CONFIG", "GET", k).split("\n")
            got[k] = lines[1] if len(lines) > 1 else None
        want = {"port": "0", "appendonly": "yes", "appendfsync": "everysec",
                "maxmemory-policy": "noeviction",
                "dir": os.path.join(os.path.realpath(rundir), "redis"), "save": ""}
        bad = {k: got[k] for k in want if got[k] != want[k]}
        require(not bad, "got %r, expected %r" % (bad, {k: want[k] for k in bad}))
        require(got["maxmemory"] not in (None, "0"), "maxmemory %r" % got["maxmemory"])
        require(os.getpgid(pids["redis"]) != os.getpgid(bs.pid),
                "redis-server is in bootstrap.sh's process group")
        require(os.getpgid(pids["orchester"]) == os.getpgid(bs.pid),
                "orchester is not in bootstrap.sh's process group")

    with t.check("with the packages there and the build up to date, "
                 "bootstrap.sh run installs and rebuilds nothing"):
        err = bs.stderr()
        for word in ("bootstrap: installing", "bootstrap: autoreconf",
                     "bootstrap: configure"):
            require(word not in err, "it said %r: %s" % (word, err[:800]))
        if up_to_date:
            after = [mtime(b) for b in binaries]
            require(after == before, "make relinked %s" % ", ".join(
                b for b, x, y in zip(binaries, before, after) if x != y))
        else:
            print("# the in-tree build was not up to date before the test: "
                  "not checking that nothing was rebuilt")

    with t.check("the configuration bootstrap.sh wrote uses RUN_DIR and "
                 "LISTEN_PORT only"):
        with open(conf) as f:
            text = "\n".join(ln.split("#", 1)[0] for ln in f)
        require("127.0.0.1:%d" % port in text, "port %d not in %s" % (port, conf))
        require(":2003" not in text, "2003 still in %s" % conf)
        rest = text.replace(rundir + "/", "")
        require("run/" not in rest, "a path outside RUN_DIR in %s: %r" % (
            conf, rest[max(0, rest.find("run/") - 40):rest.find("run/") + 30]))

    ts = int(time.time())
    live = b"demo.live.x 1 %d" % ts
    crit = b"demo.critical.x 42 %d" % ts
    got = [b""]

    def fifo_has(line):
        while True:
            try:
                chunk = os.read(reader[0], 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            got[0] += chunk
        return line in got[0].split(b"\n")

    with t.check("an ordinary datapoint reaches the file sink (a FIFO)",
                 fatal=True):
        errs = send_tcp(port, [live + b"\n"])
        require(not errs, "; ".join(errs))
        wait_until(lambda: fifo_has(live), 30, "%r in the FIFO" % live)
        st, d = buffer_status()
        require(d.get("buffer") == "live", "buffer=%s" % d.get("buffer"))
        require(d.get("key") == key, "key=%s, expected %s" % (d.get("key"), key))
        redis_line = [ln for ln in st["other"] if ln.startswith("redis ")]
        require(redis_line and "state=up" in redis_line[0],
                "the redis line: %r" % redis_line)

    with t.check("with the sink blocked, a critical datapoint goes to Redis: "
                 "backlog=1, XLEN 1", fatal=True):
        close_reader()  # the sink fails at the next write, and cannot reopen
        errs = send_tcp(port, [crit + b"\n"])
        require(not errs, "; ".join(errs))
        state = {}

        def spilled():
            _, d = buffer_status()
            state.update(d)
            return d.get("backlog") == 1

        wait_until(spilled, 30, lambda: "backlog=1 (buffer=%s backlog=%s "
                   "buffered=%s redisErrors=%s)" % (
                       state.get("buffer"), state.get("backlog"),
                       state.get("buffered"), state.get("redisErrors")))
        require(state.get("buffer") == "spilling", "buffer=%s" % state.get("buffer"))
        n = int(redis_cli("XLEN", key))
        require(n == 1, "XLEN %s is %d" % (key, n))
        require(stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO is gone")

    with t.check("with the sink back, the datapoint is replayed into "
                 "metrics.txt; backlog=0, the stream is empty"):
        os.unlink(fifo)  # the next attempt creates a regular file

        def delivered():
            try:
                with open(fifo, "rb") as f:
                    return crit in f.read().split(b"\n")
            except OSError as e:
                if e.errno == errno.ENOENT:
                    return False
                raise

        wait_until(delivered, 60, "%r in %s" % (crit, fifo))
        state = {}

        def drained():
            _, d = buffer_status()
            state.update(d)
            return d.get("backlog") == 0 and d.get("buffer") == "live"

        wait_until(drained, 30, lambda: "backlog=0 and buffer=live (have "
                   "buffer=%s backlog=%s)" % (state.get("buffer"),
                                              state.get("backlog")))
        require(state.get("replayed") == 1, "replayed=%s" % state.get("replayed"))
        require(int(redis_cli("XLEN", key)) == 0, "the stream is not empty")
        with open(fifo, "rb") as f:
            lines = f.read().split(b"\n")
        require(lines.count(crit) == 1, "%s holds the datapoint %d times"
                % (fifo, lines.count(crit)))

    with t.check("SIGINT to bootstrap.sh's process group (Ctrl-C) stops "
                 "orchester, then redis-server; exit 0, pid files removed"):
        t0 = time.monotonic()
        bs.signal_group(signal.SIGINT)
        rc = bs.wait(STOP_BOUND)
        require(rc is not None, "bootstrap.sh still running %.0f s after SIGINT"
                % STOP_BOUND)
        print("# stopped %.1f s after SIGINT" % (time.monotonic() - t0))
        left = [n for n, p in pids.items() if alive(p)]
        require(not left, "still running: %s" % ", ".join(
            "%s (pid %d)" % (n, pids[n]) for n in left))
        require(rc == 0, "bootstrap.sh exited with %s: %s" % (
            rc, bs.stderr_tail(800).strip()))
        err = bs.stderr()
        require("orchester: stopped" in err, "orchester did not log its stop")
        require(err.find("orchester: stopped") < err.find("redis-server stopped"),
                "redis-server did not stop after orchester")
        for name in ("orchester.pid", "redis.pid"):
            require(not os.path.exists(os.path.join(rundir, name)),
                    "%s is still there" % name)
        require(not os.path.exists(sock), "the Redis socket is still there")


if __name__ == "__main__":
    Test().run(body)
