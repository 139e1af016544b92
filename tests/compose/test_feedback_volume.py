"""The feedback store in compose: one volume, one URL, seen the same by the web UI and trainer."""

from __future__ import annotations

import pytest

from tests.compose import composefile, dockerfiles
from tests.support.servers import ROOT
from training.config import Settings
from webui import load_config

pytestmark = pytest.mark.compose


def test_the_web_ui_and_the_trainer_share_the_store_in_a_volume():
    compose = composefile.load()
    services = compose["services"]
    webui_env = load_config(environ=composefile.environment(services["webui"]))
    trainer_env = Settings.from_env(composefile.environment(services["trainer"]))
    url = webui_env["FEEDBACK_DB_URL"]
    assert url == trainer_env.feedback_db_url == "sqlite:////feedback/feedback.db"
    for name in ("webui", "trainer"):
        assert composefile.mounts(services[name]).get("/feedback") == "feedback"
    assert "feedback" in compose["volumes"]


@pytest.mark.parametrize("dockerfile", ["webui.Dockerfile", "trainer.Dockerfile"])
def test_the_images_make_the_store_folder_for_their_user(dockerfile):
    runs = " ".join(i.value for i in dockerfiles.instructions(ROOT / "docker" / dockerfile)
                    if i.keyword == "RUN")
    assert "/feedback" in runs and "chown" in runs
