"""benchlib.py -- what the benchmarks in bench/ share: free ports, waiting
for a listener, and a process's CPU time and peak memory from /proc."""
import os
import socket
import time


def free_port():
    """A port on 127.0.0.1 the kernel had free."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc=None, timeout=20.0):
    """Wait (bounded) until something accepts on port; False when the time
    is up or proc (if given) exited."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def proc_cpu(pid):
    """utime + stime of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_kb(pid):
    """Peak resident memory of pid (VmHWM), in kB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
