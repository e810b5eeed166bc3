"""One loader for what users write: experiments in JSON or YAML are found, described and checked alike, and a
file that does not parse is named with its line, whichever format it is."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaoslab import documents
from chaoslab.chaos import experiments
from chaoslab.errors import USAGE, DocumentError

pytestmark = pytest.mark.quick


def test_a_yaml_experiment_is_checked_like_its_json_twin(tmp_path: Path) -> None:
    source = experiments.resolve("kill-payments-replica")
    twin = tmp_path / "kill-payments-replica.yml"
    twin.write_text(yaml.safe_dump(documents.load(source), sort_keys=False))
    assert experiments.lint(twin) == experiments.lint(source) == []
    assert experiments.describe(twin).title == experiments.describe(source).title
    assert experiments.resolve(str(twin)) == twin.resolve()
    broken = documents.load(source)
    del broken["rollbacks"]
    twin.write_text(yaml.safe_dump(broken))
    assert experiments.lint(twin) == ["no rollbacks: a fault must always be undone"]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("e.json", '{"title": "x",\n  "method": [,]}', "e.json:2:14: not valid JSON: Expecting value"),
    ("e.yaml", "title: x\nmethod:\n  - name: a\n   type: action\n", "e.yaml:4:"),
    ("e.yaml", "- just\n- a list\n", "e.yaml: an experiment is a mapping (keys and values), not a list"),
    ("e.txt", "{}", "e.txt: not a JSON or YAML file"),
])
def test_what_does_not_parse_is_named_with_its_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(DocumentError) as caught:
        documents.load_mapping(tmp_path / name, "an experiment")
    assert caught.value.message.startswith(str(tmp_path / message)), caught.value.message
    assert caught.value.exit_code == USAGE
    assert experiments.lint(tmp_path / name) == [caught.value.message]
