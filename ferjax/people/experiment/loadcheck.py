"""Load check: simulated participants click concurrently against one server on 127.0.0.1.

``python -m ferjax.people.experiment.loadcheck [--participants 50]`` writes a tiny
stimulus set and a fresh database in a temporary folder, starts ``ferjax
experiment serve`` as a subprocess on a free loopback port with a public study
link, and runs one thread per participant (stdlib HTTP, keep-alive): agree to
the consent form with its own platform id, record its browser, start a trial, click
``--clicks`` times ``--interval`` seconds apart (a fast human clicks about
once a second), choose, for ``--trials`` trials. It stops by itself (fixed
counts and a ``--deadline``), then checks against the database export that
every acknowledged click and choice is there, and prints the acknowledgement
latencies. Exit status 1 if anything was lost or the median latency is 50 ms
or more. Also gives the tests their server helpers.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ADMIN = "load-check-admin-token"
STUDY = "load"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(stimuli, trials, db, port, *args, admin=ADMIN, timeout=60.0, cafile=None) -> subprocess.Popen:
    """``python -m ferjax experiment serve`` on 127.0.0.1:port; returns once it answers (over HTTPS, trusting
    the certificate ``cafile``, when one is given)."""
    cmd = [sys.executable, "-m", "ferjax", "experiment", "serve", "--stimuli", str(stimuli), "--trials", str(trials),
           "--db", str(db), "--host", "127.0.0.1", "--port", str(port), "--admin-token", admin, *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            tls = ssl.create_default_context(cafile=str(cafile)) if cafile else None
            with urllib.request.urlopen(f"http{'s' if cafile else ''}://127.0.0.1:{port}/admin", timeout=1,
                                        context=tls):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start in time")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Client:
    """One participant's keep-alive connection; ``call`` returns (status, json) and records the latency.
    Paths are the participant's own (``/click``) unless they start with ``/api/``."""

    def __init__(self, port, token=None):
        self.conn, self.latencies = http.client.HTTPConnection("127.0.0.1", port, timeout=30), []
        self.base = f"/api/p/{token}"

    def call(self, method, path, body=None):
        t0 = time.perf_counter()
        self.conn.request(method, path if path.startswith("/api/") else self.base + path, body=json.dumps(body) if body is not None else None,
                          headers={"Content-Type": "application/json"})
        res = self.conn.getresponse()
        data = json.loads(res.read())
        if method == "POST":
            self.latencies.append(time.perf_counter() - t0)
        return res.status, data


def enrol(c: Client, pid: str) -> str:
    """Consent on the study link as platform id ``pid``, and record a browser -> the participant's token."""
    status, r = c.call("POST", f"/api/s/{STUDY}/consent", {"decision": "agree", "pid": pid})
    assert status == 200, r
    c.base = f"/api/p/{r['token']}"
    status, r = c.call("POST", "/environment", {"user_agent": "loadcheck", "screen_w": 1920, "screen_h": 1080,
                                                "viewport_w": 1200, "viewport_h": 800, "dpr": 1.0, "touch": False})
    assert status == 200, r
    return c.base.rsplit("/", 1)[1]


def participant(port, pid, n_trials, n_clicks, interval, deadline, seed, out):
    rng, c, acked, errors = random.Random(seed), Client(port), [], []
    token = enrol(c, pid)
    for _ in range(n_trials):
        if time.monotonic() > deadline:
            break
        _, s = c.call("GET", "/state")
        if s["phase"] == "done":
            break
        status, ack = c.call("POST", "/start", {"event": f"s{rng.getrandbits(64):016x}", "trial": s["trial"]["idx"]})
        t = 1.0
        for _ in range(n_clicks):
            x, y = rng.randrange(256), rng.randrange(256)
            t += interval
            body = {"event": f"c{rng.getrandbits(64):016x}", "trial": ack["trial"], "attempt": ack["attempt"],
                    "x": x, "y": y, "t": t}
            status, r = c.call("POST", "/click", body)
            (acked if status == 200 else errors).append(("click", ack["trial"], x, y) if status == 200 else r)
            time.sleep(interval)
        status, r = c.call("POST", "/choice", {"event": f"h{rng.getrandbits(64):016x}", "trial": ack["trial"],
                                               "attempt": ack["attempt"], "label": rng.choice(ack["buttons"]), "t": t + 0.5})
        (acked if status == 200 else errors).append(("choice", ack["trial"]) if status == 200 else r)
    out.append((token, acked, errors, c.latencies))


def run(participants=50, trials=5, clicks=6, interval=0.25, deadline=60.0) -> dict:
    from ferjax.people.experiment.db import Store
    from ferjax.people.experiment.demo import make_stimuli
    from ferjax.people.experiment.export import frames

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        tpath, db = make_stimuli(d / "stim", per_class=2), d / "load.sqlite"
        (d / "consent.md").write_text("A load check: no person takes part.\n")
        port = free_port()
        proc = start_server(d / "stim", tpath, db, port, "--study", STUDY, "--consent", d / "consent.md",
                            "--practice", 0, "--sessions", 1, "--seed", 0)
        out, t0 = [], time.monotonic()
        try:
            threads = [threading.Thread(target=participant, args=(port, f"load{k:03d}", trials, clicks, interval,
                                                                  t0 + deadline, k, out)) for k in range(participants)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(deadline + 30)
        finally:
            stop(proc)
        wall = time.monotonic() - t0
        tr, ck, _ = frames(db)
        store = Store(db)
        names = {r["token"]: r["name"] for r in store.progress()}
        store.close()
    lat = sorted(x for *_, l in out for x in l)
    acked_clicks = sum(sum(a[0] == "click" for a in acked) for _, acked, _, _ in out)
    acked_choices = sum(sum(a[0] == "choice" for a in acked) for _, acked, _, _ in out)
    lost = 0
    for tok, acked, _, _ in out:  # every acknowledged click is in the export, at its place
        got = ck[ck["participant"] == names[tok]][["x", "y"]].astype(int).values.tolist()
        lost += sum(1 for a in acked if a[0] == "click") - len(got)
        lost += sum(1 for a, g in zip([a for a in acked if a[0] == "click"], got) if [a[2], a[3]] != g)
    return {"participants": len(out), "wall_s": round(wall, 2), "requests": len(lat),
            "acked_clicks": acked_clicks, "exported_clicks": len(ck), "acked_choices": acked_choices,
            "exported_trials": len(tr), "refused": sum(len(e) for _, _, e, _ in out), "lost": lost,
            "throughput_per_s": round(len(lat) / wall, 1),
            "latency_ms": {"median": round(1000 * statistics.median(lat), 2),
                           "p95": round(1000 * lat[int(0.95 * (len(lat) - 1))], 2), "max": round(1000 * lat[-1], 2)}}


def passed(r: dict, participants: int) -> bool:
    """Every participant ran, nothing acknowledged was lost or refused, and the median acknowledgement took
    under 50 ms."""
    return (r["participants"] == participants and r["lost"] == 0 and r["refused"] == 0
            and r["exported_clicks"] == r["acked_clicks"] and r["exported_trials"] == r["acked_choices"]
            and r["latency_ms"]["median"] < 50)


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--participants", type=int, default=50)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--clicks", type=int, default=6)
    p.add_argument("--interval", type=float, default=0.25, help="seconds between a participant's clicks")
    p.add_argument("--deadline", type=float, default=60.0, help="stop starting trials after this many seconds")
    a = p.parse_args(argv)
    r = run(a.participants, a.trials, a.clicks, a.interval, a.deadline)
    print(json.dumps(r, indent=2))
    print("OK" if passed(r, a.participants) else "FAILED")
    return 0 if passed(r, a.participants) else 1


if __name__ == "__main__":
    sys.exit(main())
