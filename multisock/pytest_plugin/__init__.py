"""multisock's pytest plugin: any test suite on the userspace stack, impaired, from a seed.

Loaded by every pytest run where multisock is installed (entry point ``pytest11``, name
``multisock``; ``-p no:multisock`` removes it), it does nothing until asked: no option,
marker or fixture of its own used, no import of the stack. See ``docs/pytest.md``.

* ``--multisock``: the whole suite on a userspace host built before any test module is
  imported, with ``--multisock-delay/-jitter/-loss/-reorder/-duplicate/-corrupt/-rate/-mtu``
  on its loopback (``stacks.ProcessHost``).
* ``@pytest.mark.multisock(delay="20ms", loss=0.02, seed=N)`` and the ``mshost`` fixture:
  a fresh patched host for one test (``stacks.FreshHost``); ``msnet``: a fresh seeded
  ``multisock.Network`` to build a topology on.
* Seeds: a session seed (``--multisock-seed``, else random and printed in the header, the
  same in every xdist worker); each test's seed derives from it and the node id.
  ``--multisock-seeds K`` runs each test concerned under K derived seeds (``[seed=N]`` ids).
* At teardown: sockets left open are reported (:class:`UnclosedSocketWarning`), callback
  errors the driver recorded fail the test; a failing test's report gets a "multisock"
  section (seed, the command that reruns it alone, the ``--stats`` table, the pcap path).
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from multisock.pytest_plugin.settings import MarkerSettings, SettingError, Settings, derive_seed

SEED_PARAM = "multisock_seed"
_FIXTURES = frozenset({"mshost", "msnet"})


class UnclosedSocketWarning(ResourceWarning):
    """A test left a userspace socket open (shown by default, unlike ResourceWarning)."""


class DriverCallbackError(Exception):
    """A callback run by the network's driver raised during the test (the driver records
    the error and goes on, so the program would otherwise never see it)."""


@dataclass
class Run:
    """The session's configuration and the process host of whole-suite mode."""

    settings: Settings
    seed: int
    process: Any = None  # stacks.ProcessHost


@dataclass
class TestState:
    """One test's multisock state, from setup to the end of teardown."""

    seed: int
    seed_from: str
    host: Any = None  # the host its sockets live on (fresh, or the process host)
    fresh: Any = None  # stacks.FreshHost
    nets: list[Any] = field(default_factory=list)  # networks whose sockets and errors count
    impairments: dict[str, Any] = field(default_factory=dict)
    pcap: str | None = None  # where the host's packets go (--multisock-pcap-dir)
    pcaps: list[str] = field(default_factory=list)  # every file this test wrote
    preexisting: set[int] = field(default_factory=set)  # ids of sockets open before the call
    server_ports: set[int] = field(default_factory=set)
    errors_seen: set[int] = field(default_factory=set)
    reported: bool = False
    mtu: int | None = None
    virtual: bool = False  # marker virtual_time=True: the call runs under multisock.sim


RUN = pytest.StashKey[Run]()
STATE = pytest.StashKey[TestState]()


# ------------------------------------------------------------------------ options

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("multisock", "multisock (sockets on a userspace TCP/IP stack)")
    group.addoption("--multisock", action="store_true", default=False,
                    help="run every test with its sockets on multisock's userspace stack")
    for name, metavar, text in (
        ("delay", "TIME", "one-way loopback delay, with a unit: 10ms"),
        ("jitter", "TIME", "delay variation, with a unit: 2ms"),
        ("loss", "P", "packet loss: 1%% or 0.01"),
        ("reorder", "P", "reordering probability: 1%% or 0.01"),
        ("duplicate", "P", "duplication probability: 1%% or 0.01"),
        ("corrupt", "P", "one flipped bit, probability: 0.5%% or 0.005"),
        ("rate", "RATE", "bandwidth, with a unit: 10mbit"),
    ):
        group.addoption(f"--multisock-{name}", metavar=metavar, default=None, help=text)
    group.addoption("--multisock-mtu", type=int, metavar="N", default=None,
                    help="loopback MTU (default 65535)")
    group.addoption("--multisock-seed", type=int, metavar="N", default=None,
                    help="session seed (default: random, shown in the header)")
    group.addoption("--multisock-seeds", type=int, metavar="K", default=None,
                    help="run each multisock test under K seeds derived from the session seed")
    group.addoption("--multisock-pcap-dir", metavar="DIR", default=None,
                    help="write one pcap per test into DIR")
    group.addoption("--multisock-isolated", action="store_true", default=False,
                    help="no route to real services (today's only mode: the gateway that "
                         "reaches them is not available yet)")


def _settings(option: Any) -> Settings:
    try:
        return Settings.from_options(option)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None


def _xdist_controller(option: Any) -> bool:
    """The controlling process of a pytest-xdist run: it runs no test, so no stack."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return False
    return bool(getattr(option, "numprocesses", None) or getattr(option, "tx", None))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> None:
    """``--multisock``: activate before conftest files and test modules are imported."""
    option = early_config.known_args_namespace
    if not getattr(option, "multisock", False) or _xdist_controller(option):
        return
    from multisock.pytest_plugin.stacks import ProcessHost

    early_config.stash[_PROCESS] = ProcessHost(_settings(option))


_PROCESS = pytest.StashKey[Any]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "multisock(delay=, jitter=, loss=, reorder=, duplicate=, corrupt=, rate=, mtu=, seed=): "
        "run the test on a fresh multisock host with these impairments (docs/pytest.md)",
    )
    # UnclosedSocketWarning is shown by default (a plain ResourceWarning is ignored). A
    # project's blanket "error" (urllib3's, requests'...) must not turn it into failures: the
    # kernel reports nothing for a socket a test leaves open and still references, so the
    # suite would fail only under multisock. Our line goes last unless the project's filters
    # name the warning themselves (then theirs decide); -W on the command line still wins
    filters = config.getini("filterwarnings")
    if isinstance(filters, list):
        ours = "default::multisock.pytest_plugin.UnclosedSocketWarning"
        if any("UnclosedSocketWarning" in str(line) for line in filters):
            filters.insert(0, ours)
        else:
            filters.append(ours)
    settings = _settings(config.option)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "multisock_seed" in workerinput:
        seed = int(workerinput["multisock_seed"])  # the controller's: one per run, not worker
    elif settings.seed is not None:
        seed = settings.seed
    else:
        seed = random.SystemRandom().randrange(2**32)
    run = Run(settings, seed)
    if settings.enabled and not _xdist_controller(config.option):
        run.process = config.stash.get(_PROCESS, None)
        if run.process is None:  # loaded too late for the early hook (-p from a conftest)
            from multisock.pytest_plugin.stacks import ProcessHost

            run.process = ProcessHost(settings)
    config.stash[RUN] = run


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run is None or run.process is None:
        return
    from multisock import monkey
    from multisock.runtime import set_default_host

    monkey.unpatch_all()
    set_default_host(None)
    run.process.close()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist (controller): every worker gets the run's session seed."""
    run = node.config.stash.get(RUN, None)
    if run is not None:
        node.workerinput["multisock_seed"] = run.seed


def pytest_report_header(config: pytest.Config) -> str | None:
    run = config.stash.get(RUN, None)
    if run is None or not run.settings.asked:
        return None
    mode = "every test on the userspace stack" if run.settings.enabled else \
        "marked tests and fixtures on the userspace stack"
    return (f"multisock: session seed {run.seed} (repeat: --multisock-seed {run.seed}); "
            f"{mode}; isolated (no gateway to real services yet)")


# ------------------------------------------------------------------- seeds

def _concerned(config: pytest.Config, marker: Any, fixturenames: Any) -> bool:
    run = config.stash.get(RUN, None)
    return run is not None and (run.settings.enabled or marker is not None
                                or bool(_FIXTURES & set(fixturenames)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``--multisock-seeds K``: K copies of each test concerned, ids ``seed=N``."""
    run = metafunc.config.stash.get(RUN, None)
    if run is None or not run.settings.seeds:
        return
    marker = metafunc.definition.get_closest_marker("multisock")
    if not _concerned(metafunc.config, marker, metafunc.fixturenames):
        return
    base = run.seed
    if marker is not None and isinstance(marker.kwargs.get("seed"), int):
        base = marker.kwargs["seed"]
    nodeid = metafunc.definition.nodeid
    seeds = [derive_seed(base, f"{nodeid}#{i}") for i in range(run.settings.seeds)]
    if SEED_PARAM not in metafunc.fixturenames:
        metafunc.fixturenames.append(SEED_PARAM)
    metafunc.parametrize(SEED_PARAM, seeds, ids=[f"seed={s}" for s in seeds])


def _test_seed(item: pytest.Item, run: Run, marked: MarkerSettings | None) -> tuple[int, str]:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and SEED_PARAM in callspec.params:
        return int(callspec.params[SEED_PARAM]), "--multisock-seeds sweep"
    if marked is not None and marked.seed is not None:
        return marked.seed, "marker seed="
    return derive_seed(run.seed, item.nodeid), "derived from the session seed and node id"


# ------------------------------------------------------------- per test

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    run = item.config.stash.get(RUN, None)
    marker = item.get_closest_marker("multisock")
    fixturenames = set(getattr(item, "fixturenames", ()))
    fresh = marker is not None or "mshost" in fixturenames
    if run is None or not (fresh or run.process is not None or "msnet" in fixturenames):
        return (yield)
    try:
        marked = MarkerSettings.from_marker(marker.args, marker.kwargs) if marker else None
    except SettingError as exc:
        # raised after the other setup hooks ran (before them, their teardowns would break)
        __tracebackhide__ = True
        result = yield
        raise pytest.UsageError(str(exc)) from None
    from multisock.pytest_plugin import stacks

    seed, seed_from = _test_seed(item, run, marked)
    state = TestState(seed, seed_from)
    settings = run.settings
    if settings.pcap_dir is not None:
        state.pcap = os.path.abspath(stacks.pcap_path(settings.pcap_dir, item.nodeid))
    if marked is not None and marked.virtual_time:
        if _FIXTURES & fixturenames:
            result = yield
            raise pytest.UsageError(
                "@pytest.mark.multisock(virtual_time=True) builds its own simulated network: "
                "the mshost/msnet fixtures (real time) do not go with it; reach the network "
                "with multisock.runtime.default_network() inside the test")
        state.virtual = True
        state.impairments = {**settings.impairments, **marked.impairments}
        state.mtu = marked.mtu if marked.mtu is not None else settings.mtu
        if state.pcap is not None:
            state.pcaps.append(state.pcap)
        item.stash[STATE] = state
        return (yield)
    if fresh:
        state.impairments = {**settings.impairments, **(marked.impairments if marked else {})}
        mtu = marked.mtu if marked is not None and marked.mtu is not None else settings.mtu
        state.fresh = stacks.FreshHost(seed, state.impairments, mtu, state.pcap, settings)
        if state.pcap is not None:
            state.pcaps.append(state.pcap)
        state.fresh.activate()
        state.host = state.fresh.host
        state.nets.append(state.fresh.net)
    elif run.process is not None:
        state.impairments = dict(settings.impairments)
        run.process.begin(seed, state.pcap)
        if state.pcap is not None:
            state.pcaps.append(state.pcap)
        state.host = run.process.host
        state.nets.append(state.host.net)
        state.errors_seen = {id(e) for e in state.host.driver.errors}
    item.stash[STATE] = state
    result = yield
    if state.fresh is None and state.host is not None:
        # on the shared host, what is open once fixtures are set up is not the test's
        before = stacks.open_sockets(state.nets)
        state.preexisting = {id(core) for core in before}
        state.server_ports = stacks.listening_ports(before)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """``virtual_time=True``: the test function (plain or ``async def``) runs under
    ``multisock.sim.run`` on a fresh virtual-time network seeded with the test's seed."""
    state = pyfuncitem.stash.get(STATE, None)
    if state is None or not state.virtual:
        return None
    import functools

    from multisock.net.network import Network
    from multisock.sim.runner import DEFAULT_HOST, run

    net = Network(seed=state.seed, name="test", backend="virtual")
    state.nets.append(net)
    host = state.host = net.add_host(DEFAULT_HOST)
    if state.impairments:
        host.impair_loopback(**state.impairments)
    if state.mtu is not None:
        host.loopback.mtu = state.mtu
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    try:
        run(functools.partial(pyfuncitem.obj, **arguments), net=net, pcap=state.pcap)
    finally:
        net.close()
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    state = item.stash.get(STATE, None)
    if state is None:
        return rep
    if rep.when == "call":
        errors = _new_errors(state)
        if errors and not rep.failed:
            rep.outcome = "failed"
            rep.longrepr = _errors_text(errors)
    if rep.failed and not state.reported:
        state.reported = True
        rep.sections.append(("multisock", _section(item, state)))
    return rep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    result = yield
    state = item.stash.get(STATE, None)
    if state is None:
        return result
    from multisock.pytest_plugin import stacks

    run = item.config.stash[RUN]
    try:
        leaks = [core for core in stacks.open_sockets(state.nets, state.preexisting)
                 if not stacks.accepted_by(core, state.server_ports)]
        filename, lineno = str(item.path), (item.location[1] or 0) + 1
        for core in leaks:
            warnings.warn_explicit(UnclosedSocketWarning(
                f"{item.nodeid} left a socket open: {stacks.describe(core)}"),
                UnclosedSocketWarning, filename, lineno)
        errors = _new_errors(state)
    finally:
        if state.fresh is not None:
            state.fresh.close(run.process.host if run.process is not None else None)
        elif run.process is not None and state.host is run.process.host:
            run.process.end()
    if errors:
        raise DriverCallbackError(_errors_text(errors))
    return result


def _new_errors(state: TestState) -> list[BaseException]:
    """Driver errors recorded since the test began (each reported once)."""
    new: list[BaseException] = []
    for net in state.nets:
        for exc in list(net.driver.errors):
            if id(exc) not in state.errors_seen:
                state.errors_seen.add(id(exc))
                new.append(exc)
    return new


def _errors_text(errors: list[BaseException]) -> str:
    import traceback

    parts = [f"the multisock driver recorded {len(errors)} callback error(s) during the test:"]
    for exc in errors:
        parts.append("".join(traceback.format_exception(exc)).rstrip())
    return "\n".join(parts)


def _section(item: pytest.Item, state: TestState) -> str:
    from multisock.pytest_plugin import report

    run = item.config.stash[RUN]
    config = item.config
    command = report.reproduce_command(
        item.nodeid, run.settings.command_line(run.seed), str(config.rootpath),
        str(config.invocation_params.dir))
    return report.section(seed=state.seed, session_seed=run.seed, seed_from=state.seed_from,
                          command=command, host=state.host, impairments=state.impairments,
                          pcaps=state.pcaps)


# ----------------------------------------------------------------- fixtures

@pytest.fixture
def multisock_seed(request: pytest.FixtureRequest) -> int:
    """This test's seed (what its hosts' randomness derives from)."""
    state = request.node.stash.get(STATE, None)
    if state is not None:
        return state.seed
    run = request.config.stash[RUN]
    return derive_seed(run.seed, request.node.nodeid)


@pytest.fixture
def mshost(request: pytest.FixtureRequest) -> Any:
    """A fresh host for this test, the process default: the stdlib ``socket`` module (and
    ``select``, ``selectors``, ``ssl``) work on it. Impairments: the marker's, else the
    ``--multisock-*`` options'."""
    return request.node.stash[STATE].host


@pytest.fixture
def msnet(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh ``multisock.Network`` seeded with this test's seed, closed at teardown.
    Sockets left open on its hosts are reported and its driver's errors fail the test."""
    from multisock.net.network import Network

    state = request.node.stash[STATE]
    net = Network(seed=state.seed, name="msnet")
    state.nets.append(net)
    if state.pcap is not None:
        path = state.pcap[: -len(".pcap")] + ".msnet.pcap"
        net.capture(path)
        state.pcaps.append(path)
    yield net
    net.close()
