"""PopularItems.top: exclusions and the servable filter (removed or unavailable items)."""

from learnrec.serving.popular import PopularItems
from learnrec.shared.config import Settings


def test_top_leaves_out_excluded_and_unservable_items():
    popular = PopularItems(Settings(), client=None)  # type: ignore[arg-type]  # top() reads no Redis
    popular._ranking = [("a", 9.0), ("b", 7.0), ("c", 5.0), ("d", 3.0)]
    assert popular.top(2) == [("a", 9.0), ("b", 7.0)]
    assert popular.top(2, exclude={"a"}) == [("b", 7.0), ("c", 5.0)]
    assert popular.top(2, servable={"a", "c", "d"}) == [("a", 9.0), ("c", 5.0)]
    assert popular.top(5, exclude={"a"}, servable={"a", "c", "d"}) == [("c", 5.0), ("d", 3.0)]
