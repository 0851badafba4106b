"""Runs a command on a terminal of its own (a pty) and hangs that terminal up on request.

What a person's ssh session or closed terminal window does to a server run in
the foreground: the kernel sends SIGHUP and every later read or write of the
terminal fails with EIO.

Prints the command's output as it comes, then "@@READY" once a line of it
starts with "ready". Lines on stdin:
  pause   stop reading the terminal (a person's Ctrl-S, or an ssh session whose
          network stalls): once its buffer is full, the command's writes to it
          would block; prints "@@PAUSED"
  resume  read it again; prints "@@RESUMED"
  hangup  close the terminal's master side; then wait (30 s at most) for the
          command and print "@@EXIT <code>" (minus the signal number when a
          signal ended it)
"""
import os
import pty
import select
import sys
import time

pid, master = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])

seen = b''
ready = False
paused = False
while True:
    readable, _, _ = select.select([sys.stdin] if paused else [master, sys.stdin], [], [], 1.0)
    if master in readable:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            chunk = b''
        if not chunk:
            break
        sys.stdout.write(chunk.decode(errors='replace'))
        seen += chunk
        if not ready and any(line.startswith(b'ready') for line in seen.splitlines()):
            ready = True
            sys.stdout.write('\n@@READY\n')
        sys.stdout.flush()
    if sys.stdin in readable:
        line = sys.stdin.readline()
        if line.strip() == 'hangup' or line == '':
            break
        if line.strip() in ('pause', 'resume'):
            paused = line.strip() == 'pause'
            print('@@PAUSED' if paused else '@@RESUMED', flush=True)

os.close(master)
deadline = time.time() + 30
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print('@@EXIT %d' % os.waitstatus_to_exitcode(status), flush=True)
        sys.exit(0)
    time.sleep(0.1)
os.kill(pid, 9)
os.waitpid(pid, 0)
print('@@EXIT timeout', flush=True)
