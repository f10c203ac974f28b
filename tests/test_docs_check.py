"""The docs' commands cannot drift from the code: each fenced command is run by tools/docs_check.py or
listed there with the reason it is not."""

import importlib.util
import sys

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("docs_check", REPO / "tools/docs_check.py")
docs_check = importlib.util.module_from_spec(spec)
sys.modules["docs_check"] = docs_check  # its dataclass looks itself up there
spec.loader.exec_module(docs_check)


def test_every_fenced_command_is_run_or_listed_with_a_reason():
    found = docs_check.all_commands()
    assert len(found) > 20  # the README and every docs page were read
    assert {c.page for c in found} >= {"README.md", "docs/configuration.md", "docs/reruns-and-recovery.md"}
    assert docs_check.problems(found) == []
    assert all(reason.strip() for reason in docs_check.NOT_RUN.values())


def test_links_between_the_pages_reach_a_file_and_heading():
    assert docs_check.broken_links() == []


def test_a_broken_link_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "config").mkdir()
    (tmp_path / "README.md").write_text("# A title\n[ok](#a-title) [gone](docs/x.md) [no heading](#nope)\n")
    (tmp_path / "config/README.md").write_text("# Keys\n")
    assert docs_check.broken_links(tmp_path) == [
        "README.md: link to docs/x.md: no such file",
        "README.md: link to #nope: no such heading",
    ]


def test_a_command_with_a_placeholder_must_be_listed(tmp_path):
    page = tmp_path / "docs" / "p.md"
    page.parent.mkdir()
    page.write_text(
        "text\n```bash\nsnakemake --cores 2N --resources gpu=N   # N GPUs\n# a comment\n```\n```yaml\nx: 1\n```\n"
    )
    found = docs_check.commands(page, tmp_path)
    assert [(c.line, c.text) for c in found] == [(3, "snakemake --cores 2N --resources gpu=N")]
    assert any("placeholder" in p for p in docs_check.problems(found))


def test_a_listed_command_no_page_shows_is_reported():
    assert any("no page shows" in p for p in docs_check.problems([]))


def test_placeholders_point_into_the_scratch_folder():
    values = {"archive": "/s/data/a.tar.gz", "tmp": "/s/tmp", "project": "/s/project"}
    assert docs_check.as_run("x --archive /tmp/cifar-10-python.tar.gz --out /tmp/b", values) == (
        "x --archive /s/data/a.tar.gz --out /s/tmp/b"
    )


@pytest.mark.workflow
def test_the_docs_commands_run(tmp_path):
    found = docs_check.all_commands()
    assert docs_check.run(found, tmp_path, log=lambda line: None) == []
