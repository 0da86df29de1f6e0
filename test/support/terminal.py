#!/usr/bin/env python3
"""Drives a command in a pseudo-terminal, as a person at a terminal would: for the tests of
interactive commands (`llama-kv chat`).

usage: terminal.py SCRIPT_JSON

SCRIPT_JSON: {"argv": [...], "env": {...}, "steps": [...], "cols": 200, "rows": 50}. Steps, in order:
  {"send": "text"}                    write to the terminal ("\\r" is Enter, "\\u0003" Ctrl-C, "\\u0004" Ctrl-D)
  {"expect": "regex", "timeout": s}   wait until the output since the last match (ANSI sequences and
                                      carriage returns removed) matches; the next expect looks after it
  {"sleep": s}                        wait, reading the output
  {"exit": s}                         wait for the process to exit

Prints one JSON object: ok, error (the failed step and why), output (all of it, cleaned), raw (as written),
exitCode (None while it still runs: it is killed when the steps end), and for each step the
seconds since the start when it was done (`at`) and, for an expect, what matched (`match`).
"""
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import fcntl
import time

ANSI = re.compile(r'\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\r')


def main():
    script = json.loads(sys.argv[1])
    argv = script['argv']
    env = script.get('env', dict(os.environ))
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', script.get('rows', 50), script.get('cols', 200), 0, 0))

    raw = bytearray()
    state = {'cursor': 0, 'status': None, 'eof': False}

    def clean():
        return ANSI.sub('', raw.decode('utf8', errors='replace'))

    def pump(seconds):
        """Reads what the process writes for up to `seconds` (less when it has nothing more to say)."""
        if state['eof']:
            time.sleep(max(0.0, min(seconds, 0.05)))
            return
        ready, _, _ = select.select([fd], [], [], max(0.0, seconds))
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                data = b''
            if data:
                raw.extend(data)
            else:
                state['eof'] = True

    def reap():
        if state['status'] is None:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                state['status'] = os.waitstatus_to_exitcode(status)
        return state['status']

    results = []
    error = None
    for i, step in enumerate(script['steps']):
        record = {'step': i}
        if 'send' in step:
            os.write(fd, step['send'].encode('utf8'))
        elif 'expect' in step:
            pattern = re.compile(step['expect'])
            deadline = time.monotonic() + step.get('timeout', 20)
            while True:
                text = clean()
                m = pattern.search(text, state['cursor'])
                if m:
                    state['cursor'] = m.end()
                    record['match'] = m.group(0)
                    break
                if time.monotonic() > deadline:
                    error = f'step {i}: no match for {step["expect"]!r} within {step.get("timeout", 20)} s; output since the last match: {text[state["cursor"]:]!r}'
                    break
                if state['eof'] and reap() is not None:
                    error = f'step {i}: the process exited ({state["status"]}) before {step["expect"]!r} matched; output since the last match: {text[state["cursor"]:]!r}'
                    break
                pump(min(0.2, max(0.0, deadline - time.monotonic())))
        elif 'sleep' in step:
            deadline = time.monotonic() + step['sleep']
            while time.monotonic() < deadline:
                pump(deadline - time.monotonic())
        elif 'exit' in step:
            deadline = time.monotonic() + step['exit']
            while reap() is None:
                if time.monotonic() > deadline:
                    error = f'step {i}: the process did not exit within {step["exit"]} s'
                    break
                pump(0.1)
            # What it wrote last.
            while not state['eof'] and select.select([fd], [], [], 0.1)[0]:
                pump(0)
        record['at'] = round(time.monotonic() - start, 3)
        results.append(record)
        if error:
            break

    if reap() is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)
    print(json.dumps({'ok': error is None, 'error': error, 'output': clean(), 'raw': raw.decode('utf8', errors='replace'), 'exitCode': state['status'], 'steps': results}))


main()
