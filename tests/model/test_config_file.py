"""A model config file that is missing, not JSON or not a config is one clear line, before any work."""

import pytest
from click.testing import CliRunner

from soilclay.cli import main
from soilclay.errors import BadInputError
from soilclay.model.config import ModelConfig


@pytest.mark.parametrize(("content", "expected"), [
    (None, "does not exist"),
    (b"{\"cnn\": {\"epochs\": 3,}", "is not valid JSON: Expecting property name enclosed in double quotes at line 1"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "cannot be read as UTF-8 text"),
    (b"[1, 2]", "must hold a JSON object of fields, found a list"),
    (b"{\"cnn\": {\"epochs\": -1}}", "invalid model config: cnn.epochs"),
    (b"{\"nonsense\": 1}", "invalid model config: nonsense"),
])
def test_bad_config_files_are_one_line_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "model.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInputError, match=expected) as caught:
        ModelConfig.from_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    # the CLI refuses before it opens the database or trains anything
    result = CliRunner().invoke(main, ["model", "retrain", "--aoi", "nowhere", "--config", str(path)],
                                env={"SOILCLAY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected.split(":")[0] in lines[0] and "Traceback" not in result.output


def test_no_file_means_the_defaults_and_a_good_file_is_read(tmp_path):
    assert ModelConfig.from_file(None) == ModelConfig.from_file("") == ModelConfig.parse({})
    path = tmp_path / "ok.json"
    path.write_text('{"cnn": {"epochs": 7}}')
    assert ModelConfig.from_file(path).cnn.epochs == 7
