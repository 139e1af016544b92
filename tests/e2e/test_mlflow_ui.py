"""MLflow as a newcomer meets it: every link we print opens on the runs, in a fresh browser.

MLflow 3 opens an experiment on its GenAI pages (traces, a pop-up, an assistant) unless the
link asks for model training; the links come from contract.py and must land on our runs.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from contract import mlflow_model_url, mlflow_run_url, mlflow_runs_url

pytestmark = pytest.mark.e2e


@pytest.fixture
def fresh_page(browser):
    """A new browser profile: no remembered MLflow view."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def test_the_runs_link_opens_the_runs_table(fresh_page, mlflow_url, stack):
    from playwright.sync_api import expect

    run = MlflowClient(stack.tracking_uri).get_run(stack.run_id)
    fresh_page.goto(mlflow_runs_url(mlflow_url, run.info.experiment_id))
    expect(fresh_page.get_by_text(run.info.run_name).first).to_be_visible(timeout=30_000)
    assert "workflowType=machine_learning" in fresh_page.url and "/overview" not in fresh_page.url
    assert fresh_page.get_by_text("Detect issues", exact=False).count() == 0


def test_the_run_link_opens_the_run_with_its_description(fresh_page, mlflow_url, stack):
    from playwright.sync_api import expect

    run = MlflowClient(stack.tracking_uri).get_run(stack.run_id)
    fresh_page.goto(mlflow_run_url(mlflow_url, run.info.experiment_id, stack.run_id))
    expect(fresh_page.get_by_text("MNIST test", exact=False).first).to_be_visible(timeout=30_000)
    expect(fresh_page.get_by_text(run.info.run_name).first).to_be_visible()


def test_the_registry_link_shows_the_versions(fresh_page, mlflow_url, stack):
    from playwright.sync_api import expect

    fresh_page.goto(mlflow_model_url(mlflow_url))
    expect(fresh_page.get_by_text(f"Version {stack.version}").first).to_be_visible(
        timeout=30_000)
