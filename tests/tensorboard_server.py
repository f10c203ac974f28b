"""TensorBoard's own server on a log folder, as `tensorboard --logdir DIR` starts it (its default loader:
the fast Rust data server where it is installed), queried over loopback through the HTTP API its web
page uses, and stopped."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

TENSORBOARD = Path(sys.executable).with_name("tensorboard")


class TensorBoardServer:
    def __init__(self, logdir: Path, timeout: float = 120):
        self.proc = subprocess.Popen(
            [str(TENSORBOARD), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0", "--reload_interval", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.said = []
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:  # it names its address when it serves
            self.said.append(line)
            if found := re.search(r"at (http://127\.0\.0\.1:\d+)/", line):
                self.url = found[1]
                break
            if time.monotonic() > deadline:
                break
        else:
            self.stop()
            raise RuntimeError("tensorboard stopped before serving:\n" + "".join(self.said))

    def data_server(self) -> bool:
        """Whether the fast loader serves the data: its Rust server is a child of TensorBoard's process."""
        children = psutil.Process(self.proc.pid).children(recursive=True)
        return any("tensorboard_data_server" in " ".join(c.cmdline()) for c in children)

    def get(self, path: str, **query) -> object:
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict) -> object:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def scalar_tags(self, runs: int, timeout: float = 60) -> dict:
        """/data/plugin/scalars/tags once `runs` runs have loaded (or what there is after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            tags = self.get("/data/plugin/scalars/tags")
            if len(tags) >= runs or time.monotonic() > deadline:
                return tags
            time.sleep(0.5)

    def stop(self) -> None:
        """TensorBoard and its data server (one process group), asked to stop, then made to."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self) -> TensorBoardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
