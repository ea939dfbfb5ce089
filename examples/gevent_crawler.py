"""A gevent crawler over many virtual web sites behind impaired links, in one process.

Run: ``python examples/gevent_crawler.py [--sites 20] [--pages 5] [--workers 50]``.

Every site is its own virtual host (``10.1.0.N``) running ``gevent.pywsgi.WSGIServer``;
each site's link to the switch has its own delay (2 ms upwards), and every other site
also loses 2 % of its packets. A crawler host starts at ``site0.test/`` and follows
links breadth-first with a ``gevent.pool.Pool`` of greenlets fetching with
``requests`` — names come from a hosts table, so ``http://site7.test/3`` goes to
the right virtual host. The stack runs on gevent's hub (gevent patched first), so
hundreds of fetches overlap while each one waits out its link's delay and losses.
It prints what was fetched per site and the crawler's TCP retransmissions.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # gevent first: the network then gets multisock's gevent backend

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

import gevent.pool  # noqa: E402
import gevent.pywsgi  # noqa: E402
import requests  # noqa: E402

import multisock  # noqa: E402
import multisock.monkey  # noqa: E402
from multisock.hosts import HostsTable  # noqa: E402
from multisock.runtime import use_host  # noqa: E402

multisock.monkey.patch_all()  # requests (urllib3) now opens multisock sockets

LINK = re.compile(rb'href="(http://[^"]+)"')


def site_app(index: int, sites: int, pages: int) -> Any:
    """Page p of site i links to the next page of this site and to page p of two others."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"].strip("/") or "0"
        if not path.isdigit() or int(path) >= pages:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        page = int(path)
        targets = [f"http://site{index}.test/{page + 1}"] if page + 1 < pages else []
        targets += [f"http://site{(index * 7 + k) % sites}.test/{page}" for k in (1, 3)]
        body = (f"<h1>site {index} page {page}</h1>" + "".join(
            f'<a href="{t}">{t}</a>' for t in targets) + "<p>" + "lorem " * 300 + "</p>").encode()
        start_response("200 OK", [("Content-Type", "text/html"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


def build(sites: int, pages: int, seed: int) -> tuple[multisock.Network, Any, list[Any]]:
    net = multisock.Network(seed=seed, mtu=1500)
    assert net.driver.backend == "gevent"
    switch = net.add_switch()
    table = HostsTable()
    crawler = net.add_host("crawler", "10.1.0.254/16")
    net.link(crawler, switch, delay="1ms")
    servers = []
    for i in range(sites):
        address = f"10.1.0.{i + 1}"
        host = net.add_host(f"site{i}", f"{address}/16")
        impairments: dict[str, Any] = {"delay": f"{2 + i % 10}ms"}
        if i % 2:
            impairments["loss"] = "2%"
        net.link(host, switch, **impairments)
        table.add(f"site{i}.test", address)
        with use_host(host):  # the server's listener lives on the site's host
            server = gevent.pywsgi.WSGIServer((address, 80), site_app(i, sites, pages),
                                              log=None)
            server.start()
        servers.append(server)
    crawler.hosts_table = table
    return net, crawler, servers


def crawl(crawler: Any, start: str, workers: int) -> tuple[dict[str, int], list[str], float]:
    seen = {start}
    fetched: Counter[str] = Counter()
    errors: list[str] = []
    pool = gevent.pool.Pool(workers)
    began = time.monotonic()

    def fetch(url: str) -> None:
        with use_host(crawler):  # greenlet-local under gevent: this fetch's sockets
            try:
                response = requests.get(url, timeout=30)
            except requests.RequestException as exc:
                errors.append(f"{url}: {exc!r}")
                return
        fetched[url.split("/")[2]] += 1
        for link in LINK.findall(response.content):
            target = link.decode()
            if target not in seen:
                seen.add(target)
                pool.spawn(fetch, target)

    pool.spawn(fetch, start)
    pool.join()
    return dict(fetched), errors, time.monotonic() - began


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python examples/gevent_crawler.py")
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    net, crawler, servers = build(args.sites, args.pages, args.seed)
    try:
        fetched, errors, elapsed = crawl(crawler, "http://site0.test/0", args.workers)
    finally:
        for server in servers:
            server.stop()
    total = sum(fetched.values())
    for site in sorted(fetched, key=lambda name: int(name[4:].split(".")[0])):
        print(f"{site:<14} {fetched[site]:3d} pages")
    retransmits = int(crawler.ip.tcp.counters.get("retransmits", 0))
    print(f"crawled {total} pages from {len(fetched)} sites in {elapsed:.2f}s "
          f"with {args.workers} greenlets; crawler retransmits: {retransmits}; "
          f"errors: {len(errors)}")
    for error in errors[:5]:
        print("  ", error)
    net.close()
    return 0 if total == args.sites * args.pages and not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
