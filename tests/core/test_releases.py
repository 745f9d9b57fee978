import pytest

from agent.releases import IllegalTransition, Release, ReleaseState, transition

S = ReleaseState


def release(state: ReleaseState) -> Release:
    return Release(app="a", number=1, state=state, description="d", created_at=0.0)


@pytest.mark.parametrize("path", [
    [S.BUILDING, S.RELEASING, S.STARTING, S.LIVE, S.SUPERSEDED],
    [S.RELEASING, S.STARTING, S.LIVE],
    [S.BUILDING, S.FAILED],
    [S.RELEASING, S.STARTING, S.FAILED],
])
def test_legal_paths(path):
    current = release(S.PENDING)
    for state in path:
        current = transition(current, state, now=5.0)
    assert current.state is path[-1]


@pytest.mark.parametrize("start, wanted", [
    (S.FAILED, S.LIVE), (S.PENDING, S.LIVE), (S.BUILDING, S.STARTING),
    (S.SUPERSEDED, S.LIVE), (S.LIVE, S.FAILED),
])
def test_illegal_moves_are_refused(start, wanted):
    with pytest.raises(IllegalTransition):
        transition(release(start), wanted, now=1.0)


def test_finishing_records_the_time_and_error():
    failed = transition(release(S.BUILDING), S.FAILED, now=7.0, error="boom")
    assert (failed.finished_at, failed.error) == (7.0, "boom")
