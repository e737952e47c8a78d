from learnrec.shared.model.item_text import item_text


def test_full_template():
    assert item_text("Roll", "ACME", "Tools") == "Title: Roll. Brand: ACME. Category: Tools"


def test_optional_parts_left_out_and_cleaned():
    assert item_text("  Sanding   roll. ", None, "") == "Title: Sanding roll"
    assert item_text("A", category="B") == "Title: A. Category: B"


def test_attributes_and_description_last():
    text = item_text("A", brand="B", description="Long text.", attributes={"color": "red"})
    assert text == "Title: A. Brand: B. Color: red. Description: Long text"
