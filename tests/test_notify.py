"""Run messages through any Prefect notification block, over real HTTP to a local webhook server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from conftest import Env
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.notifications import SlackWebhook as CoreSlackWebhook
from prefect_slack import SlackWebhook
from pydantic import SecretStr
from test_validation import SlackServer

from blocks import Warehouse
from blocks.loading import AmbiguousBlockError, MissingBlockError
from flows.cli import main
from tasks.insight.notify import SUMMARY_ARTIFACT_KEY, load_slack, send_slack
from tasks.insight.report import REJECTED_SHOWN


@pytest.fixture
def server() -> Iterator[SlackServer]:
    webhook = SlackServer()
    try:
        yield webhook
    finally:
        webhook.close()


def _name() -> str:
    return f"notify-{uuid.uuid4().hex[:8]}"


def _apprise_json_url(server: SlackServer) -> str:
    """The core Slack Webhook sends through Apprise, whose Slack plugin only talks to hooks.slack.com:
    its json:// scheme posts the message to the local server instead."""
    return server.url.replace("http://", "json://")


def test_a_core_slack_webhook_block_gets_the_runs_one_message(env: Env, server: SlackServer) -> None:
    name = _name()
    CoreSlackWebhook(url=SecretStr(_apprise_json_url(server))).save(name)
    summary = env.run(slack_block=name)
    [post] = server.posts
    assert post["message"].startswith(f"strava-elt run {summary['run_key']}: complete"), post


def test_a_failing_core_slack_webhook_is_a_warning(server: SlackServer, caplog: pytest.LogCaptureFixture) -> None:
    name = _name()
    CoreSlackWebhook(url=SecretStr(_apprise_json_url(server))).save(name)
    server.status = 500
    block = load_slack(name)
    assert block is not None
    assert send_slack.fn(block, "hello") is False  # Apprise only reports a failure when asked to raise
    assert len(server.posts) == 1
    assert any("Slack message not sent (NotificationError" in r.getMessage() for r in caplog.records)


class _SlackSdkFailing(CustomWebhookNotificationBlock):
    """A notification block whose send fails as prefect-slack's client does (slack_sdk's error)."""

    _block_type_slug = "strava-elt-test-slack-sdk-failing"

    def notify(self, body: str, subject: str | None = None) -> None:
        from slack_sdk.errors import SlackClientError

        raise SlackClientError("slack_sdk: connection refused")


def test_a_slack_sdk_client_error_is_a_warning_and_anything_else_is_raised(
    server: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    block = _SlackSdkFailing(name="t", url=_apprise_json_url(server), json_data={"text": "{{body}}"})
    assert send_slack.fn(block, "hello") is False  # slack_sdk imported only now, on the failure path
    assert any("Slack message not sent (SlackClientError" in r.getMessage() for r in caplog.records)

    class Broken(_SlackSdkFailing):
        _block_type_slug = "strava-elt-test-broken-notify"

        def notify(self, body: str, subject: str | None = None) -> None:
            raise KeyError("a bug, not Slack being down")

    with pytest.raises(KeyError):
        send_slack.fn(Broken(name="t", url=_apprise_json_url(server), json_data={"text": "{{body}}"}), "hello")


def test_setup_slack_creates_a_block_the_run_can_use(server: SlackServer, capsys: pytest.CaptureFixture[str]) -> None:
    name = _name()
    assert main(["setup", "slack", "--url", server.url, "--name", name]) == 0
    out = capsys.readouterr().out
    assert f"block {name!r}: Slack Incoming Webhook to 127.0.0.1" in out and server.url not in out
    block = load_slack(name)
    assert isinstance(block, SlackWebhook)
    assert send_slack.fn(block, "hello from prefect-slack") is True
    assert server.texts == ["hello from prefect-slack"]


def test_any_notification_block_type_works_and_a_typed_name_picks_one(server: SlackServer) -> None:
    name = _name()
    CustomWebhookNotificationBlock(name="local", url=server.url, json_data={"text": "{{body}}"}).save(name)
    SlackWebhook(url=SecretStr(server.url)).save(name)
    with pytest.raises(AmbiguousBlockError, match=f"'custom-webhook/{name}' and 'slack-incoming-webhook/{name}'"):
        load_slack(name)
    block = load_slack(f"custom-webhook/{name}")
    assert isinstance(block, CustomWebhookNotificationBlock)
    assert send_slack.fn(block, "from a custom webhook") is True
    assert server.texts == ["from a custom webhook"]


def test_a_missing_or_wrong_block_names_the_expected_types_and_how_to_create_one() -> None:
    with pytest.raises(MissingBlockError) as missing:
        load_slack("no-such-slack")
    message = str(missing.value)
    assert "No notification block named 'no-such-slack': expected a Slack Webhook, Slack Incoming Webhook" in message
    assert "strava-elt setup slack --url WEBHOOK_URL" in message and "Blocks > + > Slack Webhook" in message

    name = _name()
    Warehouse(url=SecretStr("duckdb:///:memory:")).save(name)
    with pytest.raises(MissingBlockError, match=f"'{name}' is a Strava Warehouse block, which cannot send messages"):
        load_slack(name)
    assert load_slack(None) is None


def test_the_message_and_the_report_name_unfit_columns_and_rejected_activities_escaped(
    env: Env, server: SlackServer
) -> None:
    from prefect.artifacts import Artifact

    name = _name()
    SlackWebhook(url=SecretStr(server.url)).save(name)
    env.run()
    newest = max(datetime.fromisoformat(a["start_date"].replace("Z", "+00:00")) for a in env.emu.activities)
    added = env.emu.add_activities(REJECTED_SHOWN + 3, start_date=newest + timedelta(hours=1))
    unfit, big, *rejected = added
    env.emu.set_raw_fields(unfit["id"], distance="1e999", max_speed="NaN")
    env.emu.modify_activity(big["id"], distance=1e20)
    hostile = '"<!channel> <http://x.test|go> *b* [l](http://x.test) &|`"'  # short: a reason quotes 60 characters
    env.emu.set_raw_fields(rejected[0]["id"], start_date=hostile)
    for activity in rejected[1:]:
        env.emu.set_raw_fields(activity["id"], start_date='"yesterday"')

    summary = env.run(slack_block=name)
    assert summary["unfit_values"] == {"distance": 2, "max_speed": 1, "start_date": len(rejected)}
    assert {r["id"] for r in summary["rejected"]} == {a["id"] for a in rejected}
    shown = [r["id"] for r in summary["rejected"][:REJECTED_SHOWN]]

    [text] = server.texts
    lines = text.splitlines()
    assert "Values loaded as NULL (they do not fit their column): distance 2, max_speed 1, start_date 6" in lines
    assert f"Activities not loaded: {len(rejected)} (kept in the raw lake pages)" in lines
    listed = [line for line in lines if line.startswith("• ")]
    assert [line.split()[2] for line in listed[:-1]] == [str(i) for i in shown]  # "• id <id> (page ...)"
    assert listed[-1] == f"• and {len(rejected) - REJECTED_SHOWN} more (all in the run's log)"
    # Strava's text cannot mention the channel, link or break the message: &, < and > are escaped.
    assert "<!channel>" not in text and "<http" not in text
    assert (
        f"• id {rejected[0]['id']} (page 1, position {summary['rejected'][0]['position']}): start_date "
        '"&lt;!channel&gt; &lt;http://x.test|go&gt; *b* [l](http://x.test) &amp;|`" does not fit its column'
    ) in lines

    report = Artifact.get(SUMMARY_ARTIFACT_KEY)
    assert report is not None and summary["run_key"] in str(report.data)
    markdown = str(report.data)
    assert (
        "**Values loaded as NULL (they do not fit their column):** distance 2, max\\_speed 1, start\\_date 6"
        in markdown
    )
    assert f"**Activities not loaded:** {len(rejected)} (kept in the raw lake pages)" in markdown
    for activity_id in shown:
        assert f"- id {activity_id} (page 1, position " in markdown
    assert f"- and {len(rejected) - REJECTED_SHOWN} more (all in the run's log)" in markdown
    assert "<!channel>" not in markdown and "](http" not in markdown  # every punctuation backslash-escaped
    assert "\\<\\!channel\\> \\<http\\:\\/\\/x\\.test\\|go\\> \\*b\\* \\[l\\]\\(http" in markdown
