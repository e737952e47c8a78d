"""VersionHolder: pinning, atomic swap, retirement once the last in-flight request ends."""

from pathlib import Path

import pytest

from learnrec.serving.index import ItemIndex
from learnrec.serving.versions import NotReady, ServingVersion, VersionHolder
from learnrec.versions.towers import VersionInfo


class _Towers:
    def __init__(self, version: str) -> None:
        self.info = VersionInfo(version, Path("."), "test", 4, 2, 5, "now", "test")


def _version(name: str) -> ServingVersion:
    return ServingVersion(_Towers(name), ItemIndex(2))  # type: ignore[arg-type]


def test_not_ready_without_a_version() -> None:
    with pytest.raises(NotReady), VersionHolder().pin_current():
        pass


def test_a_pinned_version_outlives_the_swap_then_retires() -> None:
    holder = VersionHolder()
    a, b = _version("a"), _version("b")
    holder.swap(a)
    with holder.pin_current() as pinned:
        assert holder.swap(b) is a
        assert pinned is a and a.retired and a.in_flight == 1
        assert a._towers is not None  # still usable by the request that pinned it
        with holder.pin_current() as newer:
            assert newer is b
    assert a.in_flight == 0 and a._towers is None  # closed when its last request ended
    assert b.in_flight == 0 and not b.retired


def test_an_idle_version_is_closed_at_the_swap() -> None:
    holder = VersionHolder()
    a = _version("a")
    holder.swap(a)
    holder.swap(_version("b"))
    assert a._towers is None


def test_loading_versions_are_live_for_updates_until_dropped() -> None:
    holder = VersionHolder()
    loading = _version("next")
    holder.add_loading(loading)
    with holder.pin_live("next") as live:
        assert live is loading and loading.in_flight == 1
    with holder.pin_live("other") as missing:
        assert missing is None
    holder.drop_loading(loading)
    with holder.pin_live("next") as gone:
        assert gone is None
