"""The index page: an application's athletes with freshness and links to their dashboards, escaped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from prefect.filesystems import LocalFileSystem

from tasks.insight import IndexEntry, publish_index
from tasks.insight.index import render_index
from tasks.lake import Lake
from tasks.strava import roster
from tests.roster_support import Roster, make_roster

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quoted"'


class _Page(HTMLParser):
    """The page's links, script elements and rows (by data-athlete-id), as a browser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0
        self.images = 0
        self.rows: dict[int, list[str]] = {}
        self._row: int | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        self.scripts += tag == "script"
        self.images += tag == "img"
        if tag == "tr" and values.get("data-athlete-id"):
            self._row = int(str(values["data-athlete-id"]))
            self.rows[self._row] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and data.strip():
            self.rows[self._row].append(data.strip())

    def cells(self, athlete: int) -> list[str]:
        """A row's texts after the athlete's name (and after the id, shown only beside a real name)."""
        row = self.rows[athlete]
        return row[2:] if len(row) > 1 and row[1] == f"({athlete})" else row[1:]


def _entries() -> list[IndexEntry]:
    return [
        IndexEntry(
            3,
            "app-athlete-3",
            name=HOSTILE,
            watermark=NOW - timedelta(days=1),
            last_loaded=NOW - timedelta(hours=5),
            last_run="Completed",
            last_run_at=NOW - timedelta(hours=5),
        ),  # fmt: skip
        IndexEntry(
            1,
            "app-athlete-1",
            name="Ann Old",
            watermark=NOW - timedelta(days=30),
            last_loaded=NOW - timedelta(days=9),
            last_run="Failed",
            last_run_at=NOW - timedelta(days=2),
        ),  # fmt: skip
        IndexEntry(
            2,
            "app-athlete-2",
            status="revoked",
            name="Bo",
            revoked_at="2026-11-02T06:30:00+00:00",
            revoked_reason='Strava said <b>"invalid"</b>',
        ),  # fmt: skip
        IndexEntry(4, "app-athlete-4"),
    ]


def test_every_value_is_escaped_and_no_script_runs() -> None:
    html = render_index(_entries(), NOW)
    page = _Page(html)
    assert page.scripts == 0 and page.images == 0  # the hostile name is text, not markup
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;b&gt;&#34;invalid&#34;&lt;/b&gt;" in html
    assert HOSTILE in page.rows[3]  # what the reader sees is the name as Strava sent it
    assert "default-src 'none'" in html  # a Content-Security-Policy forbids scripts anyway


def test_rows_link_each_dashboard_relatively_with_freshness() -> None:
    page = _Page(render_index(_entries(), NOW))
    assert list(page.rows) == [1, 2, 3, 4]  # sorted by athlete id
    assert page.links == [f"dashboards/athlete_id={i}/dashboard.html" for i in (1, 2, 3, 4)]
    assert page.cells(3)[0:3] == ["fresh", "2026-11-03T07:00:00Z", "(5 h ago)"]
    assert page.cells(1)[0:4] == ["stale", "2026-10-25T12:00:00Z", "(9 days ago)", "2026-10-04T12:00:00Z"]
    assert page.cells(1)[4] == "Failed 2026-11-01T12:00:00Z"
    assert page.cells(2)[0] == "revoked" and "revoked: 2026-11-02T06:30:00+00:00" in page.cells(2)[-1]
    assert page.cells(4) == ["never", "never", "(never)", "none", "none", "active"]
    assert page.rows[4][0] == "athlete 4" and "(4)" not in page.rows[4]  # no name: the id once, not "athlete 4 (4)"
    assert page.rows[2][:2] == ["Bo", "(2)"]  # a name, and the id beside it


def test_no_athletes_says_how_to_add_one() -> None:
    assert "strava-elt auth --application NAME" in render_index([], NOW)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Roster]:
    yield from make_roster(tmp_path, athletes=2, activities=40)


def test_the_index_in_the_lake_links_the_dashboards_the_runs_published(
    app: Roster, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    loaded, idle = app.athlete_ids
    app.run(loaded)
    args = ["dashboard", "--index", "--application", app.application_block]
    assert main([*args, "--lake-block", app.lake_block, "--warehouse-block", app.warehouse_block]) == 0
    assert "index page written to" in capsys.readouterr().out
    lake_dir = Path(LocalFileSystem.load(app.lake_block).basepath)
    html = (lake_dir / "index.html").read_text(encoding="utf-8")
    page = _Page(html)
    link = f"dashboards/athlete_id={loaded}/dashboard.html"
    assert link in page.links and (lake_dir / link).is_file()  # the link resolves in the lake
    assert page.cells(loaded)[0] == "fresh" and "Completed" in page.cells(loaded)[-2]
    assert page.cells(idle)[0] == "never"

    # publish_index (what the round calls) with a revoked athlete.
    roster.mark_revoked(app.athlete_blocks[idle], "deauthorised", NOW)
    entries = [
        IndexEntry(int(e.athlete_id or 0), e.block_name, e.status, revoked_reason=e.revoked_reason)
        for e in roster.list_roster(app.application_block)
    ]
    published = publish_index(Lake(LocalFileSystem.load(app.lake_block)), entries, NOW)
    assert published["path"] == "index.html" and published["url"].endswith("index.html")
    assert _Page((lake_dir / "index.html").read_text(encoding="utf-8")).cells(idle)[0] == "revoked"
    assert main(["dashboard", "--index"]) == 1  # --application is required with --index
    assert "--index needs --application" in capsys.readouterr().err
