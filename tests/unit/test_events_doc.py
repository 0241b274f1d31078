"""docs/events.md documents every event name, resource label and payload field."""

from pathlib import Path

from prefect_stacks import events

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_every_event_label_and_field_is_documented():
    text = DOC.read_text()
    for name, spec in events.VOCABULARY.items():
        assert f"`{name}`" in text, name
        section = text[text.index(f"`{name}`") :]
        for label in spec.labels:
            assert f"`{label}`" in section, (name, label)
        for field in spec.payload:
            assert f"`{field}`" in section, (name, field)
