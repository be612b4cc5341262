"""graph metadata-diff: our wheels' metadata against the upstream wheels' of the same
versions, with the differences our settings made marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bootstrapper.cli import main
from bootstrapper.metadata import parse_metadata
from bootstrapper.metadiff import compare

from .browser import Browser, find_chromium
from .support import FixtureIndex, IndexFile, Project, wheel_of


def metadata(*lines: str) -> bytes:
    return (
        "\n".join(["Metadata-Version: 2.1", "Name: lib", "Version: 1.0", *lines]) + "\n"
    ).encode()


def test_compare_names_each_difference_and_what_settings_made() -> None:
    ours = parse_metadata(
        metadata("Requires-Dist: kept>=1", "Requires-Dist: new-dep", "Provides-Extra: cli"),
        "ours",
    )
    upstream = parse_metadata(
        metadata(
            "Requires-Python: >=3.9",
            "Requires-Dist: Kept >= 1",
            "Requires-Dist: old-dep",
            'Requires-Dist: nvidia-thing; platform_system == "Linux"',
            "Provides-Extra: gpu",
        ),
        "upstream",
    )
    diff = compare(
        ours,
        upstream,
        "lib-1.0-py3-none-any.whl",
        settings_added=[Requirement("new-dep")],
        settings_removed=[canonicalize_name("Old_Dep")],
    )
    assert [(c.text, c.by_settings) for c in diff.added] == [("new-dep", True)]
    assert [(c.text, c.by_settings) for c in diff.missing] == [
        ('nvidia-thing; platform_system == "Linux"', False),
        ("old-dep", True),
    ]
    assert diff.requires_python == ("", ">=3.9")
    assert diff.extras_added == ("cli",) and diff.extras_missing == ("gpu",)
    assert diff.differs
    same = compare(ours, ours, "lib-1.0-py3-none-any.whl")
    assert not same.differs


@pytest.mark.parametrize("pep658", [True, False])
def test_a_run_compared_with_its_index(
    tmp_path: Path,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pep658: bool,
) -> None:
    """app[fast] reaches lib through an extra; lib's settings swap old-dep for new-dep;
    the index's wheel of lib also requires a Linux-only package our build does not, and
    offers its METADATA by PEP 658 or only by range requests."""
    monkeypatch.chdir(tmp_path)
    sdists = tmp_path / "sdists"
    lib = Project("lib", dependencies=["old-dep"], pkg_info_version="2.2")
    index.add_all(
        [
            Project("app", optional={"fast": ["lib"]}, pkg_info_version="2.2"),
            lib,
            Project("old-dep", pkg_info_version="2.2"),
            Project("new-dep", pkg_info_version="2.2"),
        ],
        sdists,
    )
    upstream_metadata = metadata(
        "Requires-Dist: old-dep", 'Requires-Dist: nvidia-thing; platform_system == "Windows"'
    )
    index.add_file(
        "lib",
        IndexFile(
            "lib-1.0-py3-none-any.whl",
            wheel_of(lib, metadata=upstream_metadata),
            metadata=upstream_metadata if pep658 else None,
        ),
    )
    settings = Path("overrides") / "settings"
    settings.mkdir(parents=True)
    (settings / "lib.yaml").write_text("requires:\n  remove: [old-dep]\n  add: [new-dep]\n")
    assert main(["bootstrap", "--index-url", index.url, "--jobs", "2", "app[fast]"]) == 0
    capsys.readouterr()

    # The index the run used (DIR/run.json) by default.
    assert main(["graph", "metadata-diff"]) == 0
    text = capsys.readouterr().out
    assert "lib 1.0 (against lib-1.0-py3-none-any.whl):" in text
    assert "  - old-dep (removed by its settings)" in text
    assert '  - nvidia-thing; platform_system == "Windows"\n' in text
    assert "  + new-dep (added by its settings)" in text
    assert "1 of 1 compared package(s) differ" in text
    # app and new-dep have no upstream wheel; old-dep is no longer in the tree.
    assert "2 not compared (--all lists them)" in text

    assert main(["graph", "metadata-diff", "--index-url", index.url, "--all", "app"]) == 0
    assert "app 1.0: not compared: the index has no wheel of this version" in (
        capsys.readouterr().out
    )

    assert main(["graph", "metadata-diff", "--index-url", index.url, "--json", "lib"]) == 0
    answer = json.loads(capsys.readouterr().out)
    (package,) = answer["packages"]
    assert package["name"] == "lib" and package["differs"] is True
    assert package["requirements_added"] == [{"text": "new-dep", "by_settings": True}]
    assert {c["text"]: c["by_settings"] for c in package["requirements_missing"]} == {
        "old-dep": True,
        'nvidia-thing; platform_system == "Windows"': False,
    }
    if not pep658:
        assert index.range_requests.get("lib-1.0-py3-none-any.whl")
    # Never the whole upstream wheel.
    assert "lib-1.0-py3-none-any.whl" not in index.sent_whole

    # The run kept its own comparison, which the report shows...
    out = tmp_path / "bootstrap-output"
    kept = json.loads((out / "logs" / "metadata-diff.json").read_text())
    (kept_lib,) = [p for p in kept["packages"] if p["name"] == "lib"]
    assert kept_lib["requirements_added"] == package["requirements_added"]
    page = (out / "report.html").read_text()
    assert "Metadata against upstream wheels" in page
    assert "removed by its settings" in page and "added by its settings" in page

    # ...and a re-run asks the index for no upstream METADATA it compared already.
    asked = metadata_requests(index)
    assert main(["bootstrap", "--index-url", index.url, "--jobs", "2", "app[fast]"]) == 0
    assert metadata_requests(index) == asked


def metadata_requests(index: FixtureIndex) -> int:
    """Requests for PEP 658 files and ranges of the upstream wheel so far."""
    pep658 = sum(1 for r in index.requests if r.endswith(".whl.metadata"))
    return pep658 + len(index.range_requests.get("lib-1.0-py3-none-any.whl", []))


def test_the_report_shows_the_differences_in_a_browser(
    tmp_path: Path,
    index: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium here: apt-get install chromium (.ci/run installs it)")
    monkeypatch.chdir(tmp_path)
    lib = Project("lib", dependencies=["old-dep"], pkg_info_version="2.2")
    index.add_all(
        [
            lib,
            Project("old-dep", pkg_info_version="2.2"),
            Project("new-dep", pkg_info_version="2.2"),
        ],
        tmp_path / "sdists",
    )
    upstream = metadata(
        "Requires-Python: >=3.9",
        "Requires-Dist: old-dep",
        'Requires-Dist: x; platform_machine == "<b>bold</b>"',
    )
    index.add_file("lib", IndexFile("lib-1.0-py3-none-any.whl", wheel_of(lib), metadata=upstream))
    settings = Path("overrides") / "settings"
    settings.mkdir(parents=True)
    (settings / "lib.yaml").write_text("requires:\n  remove: [old-dep]\n  add: [new-dep]\n")
    assert main(["bootstrap", "--index-url", index.url, "--jobs", "2", "lib"]) == 0
    capsys.readouterr()
    with Browser(chromium, tmp_path / "profile") as browser:
        browser.open((tmp_path / "bootstrap-output" / "report.html").as_uri())
        found = browser.evaluate(
            "(function () { var s = document.getElementById('metadata');"
            " var r = s.getBoundingClientRect();"
            " return {text: s.textContent, visible: r.width > 0 && r.height > 0,"
            " rows: document.querySelectorAll('#metadata-table tbody tr').length,"
            " bold: document.querySelectorAll('#metadata b').length}; })()"
        )
    assert found["visible"] and found["rows"] == 1
    assert "1 of 1 compared package(s) differ" in found["text"]
    assert "old-dep removed by its settings" in found["text"]
    assert "new-dep added by its settings" in found["text"]
    assert "Requires-Python: (none) here, >=3.9 upstream" in found["text"]
    # An upstream requirement that reads as markup is shown as text.
    assert found["bold"] == 0
    assert "<b>bold</b>" in found["text"]
