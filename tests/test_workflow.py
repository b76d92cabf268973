""".github/workflows/site.yml: the hosted site's workflow lints clean and does what README says.

actionlint (the dev extra) checks the workflow's syntax, expressions and actions; the rest of the
tests read the YAML: triggers, verified and cached weights and data, a strict build with
``--require-real``, a Pages deployment that never runs for pull requests, the classroom artifact.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "site.yml"
DEPLOY_REFS = ("refs/heads/main", "refs/tags/v")


def actionlint() -> str:
    """The actionlint executable (beside this Python, else on PATH); fail, never skip, without it."""
    beside = Path(sys.executable).with_name("actionlint")
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    if not found:
        pytest.fail(
            "actionlint is not installed, so the site workflow cannot be checked. Install the dev "
            "extra: pip install -e '.[dev]' (it brings the actionlint binary)."
        )
    return found


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def step_running(workflow: dict, job: str, pattern: str) -> tuple[int, dict]:
    found = [(i, s) for i, s in enumerate(steps(workflow, job)) if re.search(pattern, s.get("run", ""))]
    assert len(found) == 1, f"expected one step of job {job!r} running {pattern!r}, found {len(found)}"
    return found[0]


def step_using(workflow: dict, job: str, action: str) -> list[tuple[int, dict]]:
    return [(i, s) for i, s in enumerate(steps(workflow, job)) if s.get("uses", "").startswith(action + "@")]


def test_missing_actionlint_fails_with_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"pip install -e '\.\[dev\]'"):
        actionlint()


def test_actionlint_reports_nothing():
    result = subprocess.run(
        [actionlint(), "-no-color", "-oneline", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow():
    broken = (
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.nope }}\n"
    )
    result = subprocess.run([actionlint(), "-no-color", "-"], input=broken, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode != 0 and "nope" in result.stdout


def test_triggers_on_main_release_tags_and_by_hand(workflow):
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert on["push"]["branches"] == ["main"]
    assert on["push"]["tags"] == ["v*"]
    assert "workflow_dispatch" in on


def test_actions_pinned_to_major_versions_and_pages_concurrency(workflow):
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), (name, step["uses"])
    assert "pages" in workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_weights_and_data_are_verified_and_cached_by_hash(workflow):
    from circuitscope.core.models.weights import DATA_HUB

    assert workflow["env"]["CIRCUITSCOPE_CACHE"] == "${{ github.workspace }}/.cache/circuitscope"
    assert DATA_HUB["inception5h.pth"].git_blob_sha1 == "119f77db85c8352960933e025312b507d9a96ed7"
    build = steps(workflow, "build")
    ((i_hash, hash_step),) = [(i, s) for i, s in enumerate(build) if s.get("id") == "weights"]
    (code,) = re.findall(r'python -c "([^"]+)"', hash_step["run"])  # the key comes from DATA_HUB
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == DATA_HUB["inception5h.pth"].git_blob_sha1
    assert ">> \"$GITHUB_OUTPUT\"" in hash_step["run"]
    cache_steps = step_using(workflow, "build", "actions/cache")
    caches = {s["with"]["path"]: (i, s["with"]["key"]) for i, s in cache_steps}
    i_wcache, wkey = caches["${{ env.CIRCUITSCOPE_CACHE }}/inception5h.pth"]
    assert "${{ steps.weights.outputs.sha1 }}" in wkey and i_hash < i_wcache
    i_dcache, dkey = caches["${{ env.CIRCUITSCOPE_CACHE }}/published"]
    assert "${{ hashFiles('src/circuitscope/data/registry.json') }}" in dkey
    i_weights, _ = step_running(workflow, "build", r"^circuitscope weights download\b")
    i_data, _ = step_running(workflow, "build", r"^circuitscope data fetch\b")
    i_site, _ = step_running(workflow, "build", r"circuitscope\.tools\.book build --require-real\s*$")
    assert i_wcache < i_weights < i_site and i_dcache < i_data < i_site


def test_site_built_with_require_real_and_deployed_to_pages(workflow):
    i_site, _ = step_running(workflow, "build", r"^python -m circuitscope\.tools\.book build --require-real\s*$")
    (i_upload, upload), = step_using(workflow, "build", "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "_build/html" and i_site < i_upload
    assert step_using(workflow, "build", "actions/configure-pages")

    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert workflow["permissions"] == {"contents": "read"}  # nothing else may write
    # Deploy only from main or a release tag, never for a pull request.
    pages_steps = step_using(workflow, "build", "actions/configure-pages") + step_using(
        workflow, "build", "actions/upload-pages-artifact"
    )
    for condition in [deploy["if"]] + [s["if"] for _, s in pages_steps]:
        assert "github.event_name != 'pull_request'" in condition
        assert all(ref in condition for ref in DEPLOY_REFS), condition


def test_classroom_copy_uploaded_as_an_artifact(workflow):
    i_build, build = step_running(workflow, "build", r"circuitscope\.tools\.book build --classroom")
    assert "--output _classroom" in build["run"] and "--require-real" in build["run"]
    uploads = step_using(workflow, "build", "actions/upload-artifact")
    (i_upload, upload), = [(i, s) for i, s in uploads if s["with"]["path"] == "_classroom/_build/html"]
    assert i_build < i_upload and upload["with"]["if-no-files-found"] == "error"
    assert "if" not in upload  # every run offers it, whatever it deploys
