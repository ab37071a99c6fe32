"""Writable copies of fixture hosts (tests/fixtures/hosts) for hotplug and health tests, and a
watch on the apiserver's ResourceSlices that timestamps every event as it arrives."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

from conftest import SOURCE_DIR

HOSTS = SOURCE_DIR / "tests" / "fixtures" / "hosts"
PCI_IDS = HOSTS / "pci.ids"


class HostCopy:
    """A copy of tests/fixtures/hosts/<name> under `dest`, changed the way sysfs and /dev change
    on a real host (each change is one atomic filesystem operation)."""

    def __init__(self, name: str, dest: Path):
        self.root = dest
        shutil.copytree(HOSTS / name, dest, symlinks=True)

    def pci_link(self, bdf: str) -> Path:
        return self.root / "sys/bus/pci/devices" / bdf

    def device_dir(self, bdf: str) -> Path:
        link = self.pci_link(bdf)
        return Path(os.path.normpath(link.parent / os.readlink(link)))

    def add_device_like(self, like: str, bdf: str) -> None:
        """Hot-adds `bdf` as a copy of `like`: its directory complete first, then the link in
        sys/bus/pci/devices that makes it visible."""
        src = self.device_dir(like)
        shutil.copytree(src, src.parent / bdf, symlinks=True)
        proc = self.root / "proc/driver/nvidia/gpus"
        if (proc / like).exists():
            shutil.copytree(proc / like, proc / bdf)
        os.symlink(Path(os.readlink(self.pci_link(like))).parent / bdf, self.pci_link(bdf))

    def remove_device(self, bdf: str) -> None:
        self.pci_link(bdf).unlink()

    def hide(self, rel: str) -> None:
        """Moves <root>/<rel> aside (e.g. a /dev node); show() puts it back."""
        p = self.root / rel
        p.rename(p.with_name(p.name + ".hidden"))

    def show(self, rel: str) -> None:
        p = self.root / rel
        p.with_name(p.name + ".hidden").rename(p)


class SliceWatch:
    """Watches the ResourceSlices of one node through the apiserver (raw HTTPS watch) in a thread;
    `events` is a list of (time.monotonic(), event type, slice object)."""

    def __init__(self, cluster, node: str):
        self.events: list[tuple[float, str, dict]] = []
        self._cond = threading.Condition()
        path = ("/apis/resource.k8s.io/v1/resourceslices?watch=1&allowWatchBookmarks=false"
                f"&fieldSelector=spec.nodeName%3D{node}&timeoutSeconds=300")
        ctx = ssl.create_default_context(cafile=cluster.ca_cert)
        req = urllib.request.Request(cluster.apiserver_url + path)
        req.add_header("Authorization", f"Bearer {cluster.admin_token}")
        self._resp = urllib.request.urlopen(req, context=ctx, timeout=600)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._resp:
                ev = json.loads(line)
                with self._cond:
                    self.events.append((time.monotonic(), ev["type"], ev["object"]))
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass

    def wait(self, pred: Callable[[dict], bool], after: float, timeout: float,
             what: str) -> float:
        """The arrival time of the first event after `after` whose slice satisfies `pred`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, typ, obj in self.events:
                    if t >= after and typ in ("ADDED", "MODIFIED") and pred(obj):
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(round(t - after, 3), typ, len(o["spec"].get("devices", [])))
                            for t, typ, o in self.events if t >= after]
                    raise AssertionError(f"no ResourceSlice event with {what} within {timeout}s "
                                         f"(events since the change: {seen})")
                self._cond.wait(left)

    def close(self) -> None:
        # HTTPResponse.close() would wait for the reader thread; shut the socket down instead
        # (best effort: the thread is a daemon and the server ends the watch after 300 s anyway).
        try:
            self._resp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass


def slice_devices(obj: dict) -> list[dict]:
    return obj["spec"].get("devices", [])


def attr(device: dict, name: str) -> Optional[Any]:
    v = device.get("attributes", {}).get(name)
    return next(iter(v.values())) if v else None
