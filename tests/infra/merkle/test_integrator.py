"""The integrator keeps the RFC 6962 tree of the sealed log on both backends: its root and
proofs are the reference's over the events' leaf bytes, it resumes where it stopped (also
after kill -9 mid-batch), and it refuses to grow over a chain that does not continue."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from infra.bootstrap import Container, bootstrap
from infra.merkle import proofs
from infra.merkle.integrator import ALARM_COMPONENT, ChainGapError, Integrator
from infra.merkle.leaves import leaf_bytes
from infra.merkle.tree_store import TreeStore
from infra.settings import Settings
from tests.infra.merkle import rfc6962
from tests.support.logs import append_in_commits, rehash_from, synthetic_lines


def log_leaves(container: Container) -> tuple[bytes, ...]:
    return tuple(leaf_bytes(entry) for entry in container.store.iter_entries())


def test_the_tree_of_the_log_is_the_reference_tree_of_its_leaf_bytes(container):
    append_in_commits(container, synthetic_lines(300))
    integrator = Integrator(container, page=64)  # pages end inside commits
    assert integrator.catch_up() == 300
    leaves = log_leaves(container)
    tree = TreeStore(container.store.dialect)
    state = tree.state()
    assert state.edge.root() == rfc6962.mth(leaves)
    assert state.chain_hash == container.store.head().hash
    reader = tree.reader(state)
    rng = random.Random(15)
    for _ in range(40):
        size = rng.randint(1, 300)
        index = rng.randrange(size)
        assert proofs.inclusion_proof(reader, index, size) == rfc6962.path(index, leaves[:size])
        first = rng.randint(1, size)
        assert proofs.consistency_proof(reader, first, size) == \
            rfc6962.proof(first, leaves[:size])
        assert proofs.root_at(reader, size) == rfc6962.mth(leaves[:size])


def test_integrating_again_goes_on_from_the_stored_state(container):
    written = synthetic_lines(700)
    append_in_commits(container, written[:290])
    assert Integrator(container, page=50).catch_up() == 290
    append_in_commits(container, written[290:])
    again = Integrator(container, page=1000)
    assert again.step() == 410
    assert again.step() == 0
    assert TreeStore(container.store.dialect).state().edge.root() == \
        rfc6962.mth(log_leaves(container))


def test_a_log_rewritten_under_the_tree_stops_it_with_an_integrity_alarm(container):
    append_in_commits(container, synthetic_lines(60))
    integrator = Integrator(container)
    integrator.catch_up()
    first = container.store.entries(after=9, limit=1)[0]
    append_in_commits(container, synthetic_lines(65)[60:])
    rehash_from(container, 10, first.state, first.state.replace(b"{", b"{ ", 1))
    with pytest.raises(ChainGapError):
        integrator.step()
    assert integrator._step_logged() is False
    alarms = container.alarms.active(ALARM_COMPONENT)
    assert [alarm.key for alarm in alarms] == ["merkle"]
    assert TreeStore(container.store.dialect).state().size == 60


KILLED_INTEGRATOR = textwrap.dedent("""
    import sys
    from infra.bootstrap import bootstrap
    from infra.merkle.integrator import Integrator
    from infra.settings import Settings
    container = bootstrap(Settings(database_url=sys.argv[1]))
    print("started", flush=True)
    Integrator(container, page=7).catch_up()
""")


def test_an_integrator_killed_mid_batch_resumes_to_the_from_scratch_root(container, settings):
    append_in_commits(container, synthetic_lines(4000), sizes=(500,))
    process = subprocess.Popen([sys.executable, "-c", KILLED_INTEGRATOR, settings.database_url],
                               stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert process.stdout is not None
    assert process.stdout.readline() == "started\n"
    tree = TreeStore(container.store.dialect)
    deadline = time.monotonic() + 60
    while tree.state().size < 700 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    reached = tree.state().size
    assert 0 < reached < 4000, "killed mid-way"
    assert Integrator(container).catch_up() == 4000
    assert tree.state().edge.root() == rfc6962.mth(log_leaves(container))
    fresh = bootstrap(Settings(database_url=settings.database_url))
    try:
        assert TreeStore(fresh.store.dialect).state().edge.root() == tree.state().edge.root()
    finally:
        fresh.close()
