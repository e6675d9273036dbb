"""wrk runs that walk files of tokens (bench/tracking.py): the Lua script, one run's figures,
the tokens a run's walk covered, and the servers' start and stop. Imported as `wrk_walks`
(the scripts run as `python bench/NAME.py`)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import cpu_seconds

# Each wrk thread walks the token file with a stride of the thread count, starting at its own
# id, and reports how many requests it made: the distinct tokens hit follow from that.
LUA = r"""
local tokens, method, body, headers, prefix, suffix, links = {}, "GET", nil, {}, "", "", 0
local threads, nthreads = {}, 1
counter, id = 0, 0  -- globals: thread:set and thread:get reach them

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    .. "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
  if args[2] == "unsubscribe" then
    method, prefix = "POST", "/u/"
    body = "List-Unsubscribe=One-Click"
    headers["Content-Type"] = "application/x-www-form-urlencoded"
  elseif args[2] == "click" then
    prefix, links = "/c/", 3
  elseif args[2] == "click1" then
    prefix, suffix = "/c/", "/1"
  else
    prefix, suffix = "/t/", ".gif"
  end
  nthreads = tonumber(args[3])
end

function request()
  local i = (counter * nthreads + id) % #tokens
  counter = counter + 1
  local tail = suffix
  if links > 0 then tail = "/" .. (counter % links + 1) end
  return wrk.format(method, prefix .. tokens[i + 1] .. tail, headers, body)
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("thread %d made %d\n", thread:get("id"), thread:get("counter")))
  end
end
"""


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{name} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)  # uvicorn's graceful shutdown: the last flush
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class Run:
    rps: float
    made: list[int]  # requests each wrk thread made
    errors: str
    cpu_per_request: float  # the server's CPU time (all its threads), in seconds
    p99_ms: float  # wrk's 99th percentile of latency
    done: int = 0  # requests answered


def walked(runs: list[Run], size: int) -> set[int]:
    """The token indices the Lua script's walks covered, given each thread's request count
    (every run starts at the top of its file)."""
    return {
        (j * len(run.made) + tid) % size
        for run in runs
        for tid, c in enumerate(run.made)
        for j in range(min(c, size))
    }


def distinct_hit(runs: list[Run], size: int) -> int:
    return len(walked(runs, size))


def wrk(
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
    url: str,
    tokens: Path,
    mode: str,
    script: Path,
    seconds: int,
) -> Run:
    cpu = cpu_seconds(server.pid)
    out = subprocess.run(
        ["wrk", "--latency", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s",
         "-s", str(script), url, "--", str(tokens), mode, str(args.threads)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    cpu = cpu_seconds(server.pid) - cpu
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    made = [int(m) for m in re.findall(r"thread \d+ made (\d+)", out)]
    errors = " ".join(
        line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line
    )
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    p99_ms = float(p99.group(1)) * _TO_MS[p99.group(2)] if p99 else float("nan")
    return Run(rps, made, errors, cpu / max(done, 1), p99_ms, done)


_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path
