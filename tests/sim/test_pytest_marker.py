"""``@pytest.mark.multisock(virtual_time=True)``: a test under the simulator (issue 19)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_marker_runs_sync_and_async_tests_on_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import asyncio, socket, time
        import pytest

        @pytest.fixture
        def payload():
            return b"ping"

        @pytest.mark.multisock(virtual_time=True, delay="250ms", seed=4)
        async def test_async(payload):
            loop = asyncio.get_running_loop()
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rx.bind(("127.0.0.1", 9))
            rx.setblocking(False)
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tx.sendto(payload, ("127.0.0.1", 9))
            assert await loop.sock_recv(rx, 10) == payload
            assert loop.time() == 0.25
            await asyncio.sleep(3600)
            assert time.monotonic() == 3600.25
            rx.close(); tx.close()

        @pytest.mark.multisock(virtual_time=True)
        def test_sync():
            time.sleep(86400)
            assert time.monotonic() == 86400.0

        @pytest.mark.multisock(virtual_time=True)
        async def test_failure_is_reported():
            await asyncio.sleep(5)
            assert asyncio.get_running_loop().time() == 4
    ''')
    result = pytester.runpytest_inprocess("-q", "-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*assert 5.0 == 4*"])
