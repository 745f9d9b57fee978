"""How one operation's roll-out tells the rest of the operation where it has come.

A roll-out starts and checks new instances, swaps the route and drains the old ones;
the operation around it needs to act at three points, which a `Progress` names instead
of callbacks threaded through every signature:

- `gate`: work that must succeed beside the start and check of the new instances (an
  early start's build, agent.deploy.earlystart); none unless `gated`;
- `committing`: nothing short of the swap itself can fail any more (a push lets git
  update its branch there, and stops honouring cancellation);
- `swapped`: the old instances are drained, not yet stopped (the release goes live and
  the pusher is answered).
"""

from __future__ import annotations

from collections.abc import Callable

from agent.releases import Release


def _nothing() -> None:
    return None


class Progress:
    """An operation's three points; `live` is the release its swap made live."""

    gated = False

    def __init__(
        self, *, committed: Callable[[], None] = _nothing,
        went_live: Callable[[], Release] | None = None,
    ) -> None:
        self._committed = committed
        self._went_live = went_live
        self.live: Release | None = None

    async def gate(self) -> None:
        """Nothing to wait for (see `gated`)."""

    def committing(self) -> None:
        self._committed()

    def swapped(self) -> None:
        if self._went_live is not None:
            self.live = self._went_live()

    def released(self) -> Release:
        """The release the swap made live (the roll-out has returned)."""
        if self.live is None:
            raise RuntimeError("the roll-out returned without swapping")
        return self.live
