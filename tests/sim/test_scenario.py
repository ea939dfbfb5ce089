"""Scenario files: parsing, building, errors that say where, the ``sim`` command."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest

from multisock.__main__ import main
from multisock.sim import load, loads
from multisock.sim.metrics import jain_index, mathis_bps
from multisock.sim.scenario import ScenarioError, parse_route, parse_rule

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "scenarios"

TINY = """
[network]
seed = 9
until = "600ms"
sample = "50ms"

[[host]]
name = "a"
routes = ["default via 10.0.1.1"]

[[router]]
name = "r"
rules = ["from 10.0.1.0/24 lookup 100 pref 10"]
routes = ["10.0.2.0/24 dev eth1 table 100"]

[[host]]
name = "b"
routes = ["default via 10.0.2.1 metric 5"]

[[link]]
name = "ab"
a = "a"
b = "r"
a_addr = "10.0.1.2/24"
b_addr = "10.0.1.1/24"
delay = "1ms"
rate = "50mbit"
b_to_a = { loss = "0%", queue = 20 }

[[link]]
a = "r"
b = "b"
a_addr = "10.0.2.1/24"
b_addr = "10.0.2.2/24"

[[traffic]]
type = "ping"
from = "a"
to = "b"
interval = "100ms"

[[traffic]]
type = "cbr"
from = "a"
to = "b"
rate = "400kbit"
size = 500
duration = "400ms"

[[event]]
at = "300ms"
link = "ab"
delay = "5ms"
"""


def test_route_and_rule_syntax_is_iproute2s() -> None:
    assert parse_route("default via 10.0.0.1 metric 5 table 7") == {
        "cidr": "0.0.0.0/0", "via": "10.0.0.1", "metric": 5, "table": 7}
    assert parse_rule("from 10.1.0.0/16 fwmark 0x10/0xf0 lookup main pref 9") == {
        "src": "10.1.0.0/16", "fwmark": 16, "mask": 0xF0, "table": 254, "priority": 9}
    with pytest.raises(ScenarioError, match="unknown option 'gw'"):
        parse_route("default gw 10.0.0.1")
    with pytest.raises(ScenarioError, match="needs lookup"):
        parse_rule("from all")


def test_load_builds_the_network_ready_to_script() -> None:
    with loads(TINY) as sc:
        assert sorted(sc.hosts) == ["a", "b", "r"] and sc.routers == {"r"}
        assert sc.net.seed == 9 and set(sc.links) == {"ab", "r-b"}
        assert sc.hosts["a"].ping("10.0.2.2") >= 0.002  # the 1 ms link, both ways
        r = sc.hosts["r"].ip
        assert r.forwarding and [x.describe() for x in r.rules or []][0] == \
            "10: from 10.0.1.0/24 lookup 100"
        assert sc.links["ab"].b_to_a.impairment.queue == 20
        assert sc.routes("b")[0] == "0.0.0.0/0 via 10.0.2.1 dev eth0 metric 5"


@pytest.mark.parametrize(("text", "message"), [
    ("[[host]]\nname='a'\n[[host]]\nname='a'", "used twice"),
    ("[[host]]\nname='a'\ncolour='red'", "a: unknown key"),
    ("[[host]]\nname='a'\n[[link]]\na='a'\nb='zz'", "no host, router or switch named 'zz'"),
    ("[[host]]\nname='a'\n[[host]]\nname='b'\n[[link]]\na='a'\nb='b'\ndelay='5'",
     "a time needs a unit"),
    ("[[host]]\nname='a'\n[[event]]\nat='1s'\nlink='x'", "no link named 'x'"),
    ("[[router]]\nname='r'\nrouting='bgp'", "routing = 'bgp'"),
    ("[hosts]\n", "unknown section"),
])
def test_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        loads(text)


def test_run_reports_traffic_events_links_and_writes_json_csv(tmp_path: Path) -> None:
    with loads(TINY) as sc:
        results = sc.run(out=str(tmp_path))
    ping = results.traffic("ping0")
    assert ping["transmitted"] >= 3 and ping["received"] == ping["transmitted"]
    cbr = results.traffic("cbr1")
    assert cbr["sent"] > 10 and cbr["received"] == cbr["sent"] and cbr["lost"] == 0
    assert [e["event"] for e in results.data["events"]] == ["0.3s link ab set delay=5ms"]
    assert ping["rtt_ms"]["max"] >= 10  # after the event: 5 ms each way
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["seed"] == 9 and data["links"]["ab:a:eth0->r:eth0"]["delivered"] > 0
    with open(tmp_path / "links.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["link"] for r in rows} == {"ab", "r-b"} and float(rows[-1]["t"]) >= 0.5


def test_sim_command_runs_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    assert main(["sim", str(path), "--until", "300ms", "--seed", "3", "--out",
                 str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "tiny: 3 hosts, 2 links, 2 traffic, 1 events, seed 3" in out
    assert "packets transmitted" in out and "wrote " in out
    assert main(["sim", str(tmp_path / "missing.toml")]) == 2


def test_example_files_all_build() -> None:
    files = sorted(EXAMPLES.glob("*.toml"))
    assert len(files) >= 5
    for path in files:
        sc = load(str(path), start_routing=False)
        sc.close()


def test_jain_and_mathis() -> None:
    assert jain_index([3, 3, 3]) == pytest.approx(1.0)
    assert jain_index([1, 0]) == pytest.approx(0.5)
    # 1460-byte segments, 100 ms, 1% loss: 1.42 Mbit/s
    assert mathis_bps(1460, 0.1, 0.01) == pytest.approx(1460 * 8 / 0.1 * 12.2)


def test_udp_generator_reports_loss_like_iperf() -> None:
    text = TINY.replace('b_to_a = { loss = "0%", queue = 20 }', 'a_to_b = { loss = "50%" }')
    with loads(text) as sc:
        results = sc.run(until=0.6)
    cbr = results.traffic("cbr1")
    assert 0 < cbr["lost"] < cbr["sent"] and cbr["loss"] == cbr["lost"] / cbr["sent"]
    assert socket.inet_aton(sc.address_of("b"))
