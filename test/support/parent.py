#!/usr/bin/env python3
"""A stand-in parent process for slirpnetstack lifecycle tests.

  parent.py winch -- CMD...
      Runs CMD as a direct child with inherited stdio and counts the
      SIGWINCHs this process receives. Prints "CHILD <pid>", then "WINCH"
      once per signal as it arrives, and at the end "EXIT <code>" (or
      "SIGNAL <n>") and "WINCHES <count>". Lines on stdout, flushed.

  parent.py orphan -- CMD...
      Becomes a child subreaper, forks an intermediate parent that runs CMD
      and then just sleeps. Prints "CHILD <pid>". On a line "kill" on stdin
      it SIGKILLs the intermediate parent, so CMD is orphaned (and
      re-parented to us, the subreaper), prints "KILLED" once that parent
      is reaped, then waits up to 5 s for CMD and
      prints "EXIT <code>" / "SIGNAL <n>" / "TIMEOUT", and "AFTER <ms>"
      (time from the kill to CMD's exit).
"""
import ctypes
import os
import signal
import subprocess
import sys
import time


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def status_line(status):
    if os.WIFEXITED(status):
        return "EXIT %d" % os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return "SIGNAL %d" % os.WTERMSIG(status)
    return "STATUS %d" % status


def winch(cmd):
    count = 0

    def on_winch(signum, frame):
        nonlocal count
        count += 1
        out("WINCH")

    signal.signal(signal.SIGWINCH, on_winch)
    child = subprocess.Popen(cmd)
    out("CHILD %d" % child.pid)
    _, status = os.waitpid(child.pid, 0)
    out(status_line(status))
    out("WINCHES %d" % count)


def orphan(cmd):
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        out("ERROR prctl %d" % ctypes.get_errno())
        sys.exit(1)
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(r)
        child = subprocess.Popen(cmd)
        os.write(w, b"%d\n" % child.pid)
        os.close(w)
        while True:
            time.sleep(3600)
    os.close(w)
    pid = int(os.read(r, 64).decode().strip())
    os.close(r)
    out("CHILD %d" % pid)
    for line in sys.stdin:
        if line.strip() == "kill":
            break
    else:
        os.kill(middle, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        return
    t0 = time.monotonic()
    os.kill(middle, signal.SIGKILL)
    os.waitpid(middle, 0)
    out("KILLED")
    deadline = t0 + 5
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            out("AFTER %d" % int((time.monotonic() - t0) * 1000))
            out(status_line(status))
            return
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            out("TIMEOUT")
            return
        time.sleep(0.002)


def main():
    mode = sys.argv[1]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    {"winch": winch, "orphan": orphan}[mode](cmd)


if __name__ == "__main__":
    main()
