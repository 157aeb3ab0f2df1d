"""deploy/cluster/ as a server runs it: Debian's caddy with deploy/cluster/Caddyfile (its internal
CA, loopback ports) in front of two hubs started by callpop-hub@.service's command line and
environment (the instance is the port), the recorder by callpop-recorder.service's, and Redis with
deploy/cluster/redis.conf; their settings file is deploy/callpop.env.example followed by
deploy/cluster/callpop-cluster.env.example, as the install step writes it. Through TLS: an agent's
pop over wss://; then the hub holding that socket killed with SIGKILL: GETs go to the other hub, a
POST that meets the dead one is a 502 at worst (Caddy 2.6 cannot resend a body) and the PBX's retry
a 202, Caddy soon sends nothing more to it, the agent's reconnect lands on the other hub and gets
the call still ringing again, and every 202 is in the recorder's database once.

Under CI=true caddy and redis-server must be there: missing, the test fails; elsewhere it is
skipped."""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dotenv import dotenv_values
from websockets.exceptions import ConnectionClosed

from tests.cluster.conftest import RECORDER_TOKEN, recorder_reads
from tests.deploy.running import DEPLOY, exec_start, start_caddy, stop, trusting, unit_environment, wait_serving
from tests.support import INGEST, ROOT, free_port, wait_until
from tests.support.hub import TOKENS, Agent
from tests.support.procs import Proc
from tests.support.redis import CLI, RedisServer

HUB_UNIT, RECORDER_UNIT = "cluster/callpop-hub@.service", "cluster/callpop-recorder.service"
REDIS_CONF = DEPLOY / "cluster" / "redis.conf"
RING = dict(caller="0722776772", callee="035550100", extension="201")  # John Doe, calling Noa


@dataclass
class Site:
    """The hubs' site on Caddy, where the extension and the PBX reach them."""
    url: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("https://", "wss://") + "/ws"


def requirepass(conf: Path) -> str:
    return next(line.split()[1] for line in conf.read_text().splitlines() if line.startswith("requirepass "))


@pytest.fixture(scope="module")
def cluster(caddy_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    elsewhere = tmp / "cwd"  # the units' WorkingDirectory=/ : nothing is found relative to it
    elsewhere.mkdir()
    settings = tmp / "callpop.env"  # /etc/callpop/callpop.env as the install step writes it
    settings.write_text((DEPLOY / "callpop.env.example").read_text() + "\n"
                        + (DEPLOY / "cluster" / "callpop-cluster.env.example").read_text())
    site = Site(f"https://127.0.0.1:{free_port()}")
    shutil.copy(ROOT / "data" / "contacts.csv", tmp / "contacts.csv")
    (tmp / "agents.csv").write_text("id,name,token,extension,mobile,home,role\n"
                                    f"noa,Noa Levi,{TOKENS['noa']},201,,,agent\n"
                                    f"dana,Dana Cohen,{TOKENS['dana']},209,,,supervisor\n")
    with RedisServer(tmp / "redis", config=REDIS_CONF, password=requirepass(REDIS_CONF)) as redis:
        # The settings file's Redis URL carries redis.conf's password; only the port is this machine's.
        url = dotenv_values(settings)["CALLPOP_REDIS_URL"]
        assert url.replace(":6379/", f":{redis.port}/") == redis.url, "CALLPOP_REDIS_URL and requirepass disagree"
        # The environment wins over the settings file: only what a test machine must change.
        env = {"PYTHONPATH": str(ROOT), "PYTHONASYNCIODEBUG": "", "CALLPOP_REDIS_URL": redis.url,
               "CALLPOP_DB_PATH": str(tmp / "callpop.duckdb"), "CALLPOP_PARQUET_DIR": str(tmp / "parquet"),
               "CALLPOP_RECORDER_TOKEN": RECORDER_TOKEN, "CALLPOP_PUBLIC_URL": site.url,
               "CALLPOP_AGENTS_CSV": str(tmp / "agents.csv"), "CALLPOP_CONTACTS_CSV": str(tmp / "contacts.csv"),
               "CALLPOP_EXTENSION_DIR": str(tmp / "extension"), "CALLPOP_PROVIDER": "sim",
               "CALLPOP_SIM_CALLS_PER_MINUTE": "0", "CALLPOP_INGEST_TOKEN": INGEST, "CALLPOP_SAMPLE_CRM": "true"}
        procs: list = []
        try:
            recorder_port, ports = free_port(), [free_port(), free_port()]
            env["CALLPOP_RECORDER_URL"] = f"http://127.0.0.1:{recorder_port}"

            def start(port: int) -> Proc:  # the recorder and the hubs at once
                if port == recorder_port:
                    proc = Proc(exec_start(RECORDER_UNIT, settings), name="recorder", cwd=elsewhere,
                                env={**env, **unit_environment(RECORDER_UNIT), "CALLPOP_PORT": str(port)})
                else:  # each hub looks callers up in its own sample CRM
                    proc = Proc(exec_start(HUB_UNIT, settings), name=f"hub {port}", cwd=elsewhere,
                                env={**env, **unit_environment(HUB_UNIT, str(port)),
                                     "CALLPOP_CRM_URL": f"http://127.0.0.1:{port}/crm/lookup"})
                procs.append(proc)  # stopped at the end even if another one fails to start
                return proc
            with ThreadPoolExecutor(3) as starting:
                recorder, *started = starting.map(start, [recorder_port, *ports])
            hubs = dict(zip(ports, started))
            access_log = tmp / "access.log"
            caddy, root = start_caddy(tmp, "cluster/Caddyfile", elsewhere, {
                "CALLPOP_HUB_SITE": site.url, "CALLPOP_HUB_UPSTREAMS": " ".join(h.url.split("//")[1] for h in hubs.values()),
                "CALLPOP_CONSOLE_SITE": f"https://127.0.0.1:{free_port()}",
                "CALLPOP_CONSOLE_UPSTREAM": f"127.0.0.1:{free_port()}", "CALLPOP_ACCESS_LOG": str(access_log)})
            procs.append(caddy)
            wait_serving(caddy, site.url, root, "/healthz", tmp / "caddy.log", 30)
            yield {"site": site, "root": root, "hubs": hubs, "recorder": recorder, "redis": redis,
                   "access_log": access_log}
        finally:
            stop(procs)


def sockets(hub: Proc) -> int:
    """The sockets a hub holds, from its own /api/status (a supervisor's view of one hub)."""
    status = httpx.get(hub.url + "/api/status", headers={"Authorization": f"Bearer {TOKENS['dana']}"}, timeout=5)
    return status.json()["sockets"]


def test_every_part_answers_what_the_readme_says_to_monitor(cluster):
    site, root, redis = cluster["site"], cluster["root"], cluster["redis"]
    health = httpx.get(site.url + "/healthz", verify=trusting(root), timeout=10)
    assert health.status_code == 200 and health.json()["redis"] == "ok", health.text
    for hub in cluster["hubs"].values():
        assert httpx.get(hub.url + "/healthz", timeout=5).json() == {"status": "ok", "store": "ok", "redis": "ok"}
    recorder = httpx.get(cluster["recorder"].url + "/healthz", timeout=5)
    assert recorder.status_code == 200, recorder.text
    assert recorder.json()["holding_lease"] is True and recorder.json()["store"] == "ok"
    # Redis runs redis.conf: a password, the append-only file, nothing evicted.
    anonymous = subprocess.run([CLI, "-p", str(redis.port), "PING"], capture_output=True, text=True, timeout=10)
    assert anonymous.stdout.startswith("NOAUTH"), anonymous.stdout
    persistence = redis.cli("INFO", "persistence")
    assert "aof_enabled:1" in persistence and "aof_last_write_status:ok" in persistence
    assert redis.cli("CONFIG", "GET", "maxmemory-policy").split() == ["maxmemory-policy", "noeviction"]


def test_a_killed_hubs_agent_reconnects_to_the_other_through_caddy_and_every_202_is_recorded_once(cluster):
    site, root, hubs = cluster["site"], cluster["root"], cluster["hubs"]
    accepted: list[str] = []

    def pbx(http: httpx.Client, event_id: str) -> int:
        """A PBX posting a ringing: the first answer's status; anything but a 202 is sent again
        (the same id) until it is one."""
        first = None
        for _ in range(40):
            r = http.post("/api/events", headers={"Authorization": f"Bearer {INGEST}"},
                          json={"id": event_id, "call_id": event_id, "type": "ringing", **RING})
            first = first or r.status_code
            if r.status_code == 202:
                accepted.append(event_id)
                return first
            time.sleep(0.25)
        raise AssertionError(f"{event_id}: no 202 in 10 s (first {first}, last {r.status_code} {r.text})")

    with httpx.Client(base_url=site.url, verify=trusting(root), timeout=10) as http:
        noa = Agent(site, TOKENS["noa"], client="deploy-test", tls=trusting(root))
        # Which hub Caddy gave the socket to: the one whose own status counts it.
        holder = wait_until(lambda: next((p for p, h in hubs.items() if sockets(h) == 1), None), 10,
                            what="a hub to hold the socket")
        other = next(p for p in hubs if p != holder)
        assert pbx(http, "lb-1") == 202
        pop = noa.recv("pop", timeout=10)
        assert pop["call_id"] == "lb-1" and pop["name"] == "John Doe", pop
        assert pop["url"].startswith(f"{site.url}/crm/contacts/"), pop  # the hubs' public address: Caddy's

        hubs[holder].kill()  # SIGKILL: nothing said to anyone
        with pytest.raises(ConnectionClosed):  # Caddy closes the socket of the dead hub
            noa.recv(where=lambda m: False, timeout=10)
        # Right after: a GET that meets the dead hub is sent to the other one.
        assert [http.get("/healthz").status_code for _ in range(5)] == [200] * 5
        # A POST that meets it is answered 502 (Caddy 2.6 cannot send its body twice), never a
        # 503 of Caddy's own: the other hub stays in; the PBX's retry gets the 202.
        firsts = [pbx(http, f"lb-after-{i}") for i in range(5)]
        assert set(firsts) <= {202, 502}, firsts
        # Once the health check has seen the dead hub, every event is a 202 at the first try.
        batch = iter(range(1000))
        wait_until(lambda: [pbx(http, f"lb-later-{next(batch)}") for _ in range(3)] == [202] * 3, 10,
                   what="Caddy to send nothing more to the dead hub")

        # The extension reconnects through Caddy, lands on the other hub and gets the call still ringing.
        again = Agent(site, TOKENS["noa"], client="deploy-test", tls=trusting(root))
        assert again.recv("pop", where=lambda m: m["call_id"] == "lb-1", timeout=10)["name"] == "John Doe"
        assert sockets(hubs[other]) == 1
        again.close()

    reads = recorder_reads(cluster["recorder"])
    query = "SELECT event_id, count(*) AS n FROM events WHERE event_id LIKE 'lb-%' GROUP BY event_id"
    wait_until(lambda: len(reads.query(query)) >= len(accepted), 20, what="the recorder to record every 202")
    rows = reads.query(query)
    assert sorted(rows.event_id) == sorted(accepted) and rows.n.max() == 1
    log = cluster["access_log"].read_text()
    assert '"uri":"/api/events"' in log and INGEST not in log  # the access log, without the PBX's token
