"""Serving a model trained at another site: its weights go only where its train sites allow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import testbed.cli.audit  # noqa: F401  (registers the commands; with one, typer
import testbed.cli.serve  # noqa: F401  would make it the whole app)
from testbed.cli import app
from testbed.errors import UsageError
from testbed.governance.gate import GOVERNANCE_DIR_ENV
from testbed.governance.models import gate_model
from testbed.governance.records import EgressRequest

runner = CliRunner()
SHIPPED = Path(__file__).resolve().parents[3] / "models" / "ppo_touch_kr"


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(GOVERNANCE_DIR_ENV, raising=False)
    folder = tmp_path / "ppo_touch_kr"
    folder.mkdir()
    for name in ("model.zip", "model.json"):
        shutil.copy(SHIPPED / name, folder / name)
    return folder / "model.zip"


def test_serving_weights_to_another_site_is_refused_before_anything_loads(model: Path) -> None:
    args = ["serve", f"sb3:{model}", "--address", "127.0.0.1:0", "--to", "jp-nagoya"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "egress refused: 'ppo_touch_kr/model.zip' (model_weights of site kr-changwon" in (
        result.output
    )
    assert "governance.egress.model_weights = stays" in result.output
    audit = runner.invoke(app, ["audit", "show", str(model.parent), "--refused"])
    assert "model_weights ppo_touch_kr/model.zip -> jp-nagoya" in audit.output


def test_a_clearance_or_the_train_site_itself_allows_them(model: Path) -> None:
    folder = model.parent / ".governance" / "kr-changwon" / "clearances"
    folder.mkdir(parents=True)
    (folder / "w.yaml").write_text(
        "id: w-1\nclass: model_weights\nto: jp-nagoya\nbasis: licence 9\ngranted_by: ops\n"
    )
    cleared = gate_model(model, EgressRequest("jp-nagoya", "alice"))
    assert [d.clearance for d in cleared] == ["w-1"]
    assert gate_model(model, EgressRequest("kr-changwon", "alice"))[0].rule == "local"


def test_a_model_without_metadata_cannot_be_tagged(model: Path) -> None:
    model.with_suffix(".json").unlink()
    with pytest.raises(UsageError, match="train_sites"):
        gate_model(model, EgressRequest("jp-nagoya", "alice"))
