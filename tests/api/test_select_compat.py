"""select/poll/epoll/selectors under activation behave like the kernel's where CPython's
test_selectors looks: names, scalability past FD_SETSIZE, the kernel's errors, maxevents."""

from __future__ import annotations

import os
import resource
import selectors
import tempfile
from collections.abc import Iterator

import pytest

import multisock
import multisock.socket as msock
from multisock import monkey
from multisock import select as mselect
from multisock.runtime import use_host


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=21)
    h = net.add_host("sel", "10.21.0.1/24")
    yield h
    net.close()


def test_patched_selector_classes_keep_the_stdlib_names() -> None:
    with monkey.patched():
        assert selectors.EpollSelector.__name__ == "EpollSelector"
        assert selectors.PollSelector.__name__ == "PollSelector"
        assert selectors.SelectSelector.__name__ == "SelectSelector"
        assert selectors.DefaultSelector is selectors.EpollSelector
        # test_selectors patches _selector_cls on the class it finds by that name
        assert selectors.EpollSelector._selector_cls is mselect.epoll


def test_epoll_refuses_a_regular_file_like_the_kernel() -> None:
    ep = mselect.epoll()
    try:
        with tempfile.TemporaryFile() as f, pytest.raises(PermissionError):
            ep.register(f.fileno(), mselect.EPOLLIN)
    finally:
        ep.close()
    with pytest.raises(ValueError):
        ep.poll(0)


def test_poll_and_epoll_take_fds_above_fd_setsize(host: multisock.Host) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} leaves no fd above FD_SETSIZE (1024)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    r, w = os.pipe()
    high_r, high_w = os.dup2(r, 1100), os.dup2(w, 1101)
    os.close(r)
    os.close(w)
    try:
        with use_host(host):
            udp = msock.socket(msock.AF_INET, msock.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            for poller in (mselect.poll(), mselect.epoll()):
                poller.register(high_r, mselect.POLLIN)
                poller.register(udp, mselect.POLLIN)
                timeout = 0.05 if isinstance(poller, mselect.epoll) else 50
                assert poller.poll(timeout) == []
                os.write(high_w, b"x")
                udp.sendto(b"y", udp.getsockname())
                assert dict(poller.poll(timeout)) == {high_r: mselect.POLLIN,
                                                      udp.fileno(): mselect.POLLIN}
                os.read(high_r, 1)
                udp.recv(1)
            udp.close()
    finally:
        os.close(high_r)
        os.close(high_w)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_epoll_returns_more_than_1023_events_when_maxevents_allows() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the 2200 fds this needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2200), hard))
    ep = mselect.epoll()
    pipes = [os.pipe() for _ in range(1030)]
    try:
        for _r, w in pipes:
            ep.register(w, mselect.EPOLLOUT)
        assert len(ep.poll(1, len(pipes))) == len(pipes)
    finally:
        ep.close()
        for r, w in pipes:
            os.close(r)
            os.close(w)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
