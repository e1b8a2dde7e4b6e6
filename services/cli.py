"""`efir`: the operator's command line — run one part, or the whole product with `efir up`.

Each part runs as its own process, started by module name (`python -m ingest_node`, ...), so this
module never imports the node, the pipelines, the assets or the dashboards: the import boundaries of
DESIGN.md hold, and a part that crashes takes only itself down. `efir up` composes the single-part
commands under a `Supervisor` and owns the run's wiring (ports, URLs, admin token, data folder).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
from pydantic import SecretStr

from services.accounts_cli import FIRST_ACCOUNT, accounts, ensure_first_account
from services.dashboard_accounts import AccountStore
from services.secret_files import write_secret
from services.settings import Settings, get_settings
from services.sponsorships_cli import sponsorships
from services.supervisor import AliveFor, Cancelled, HttpReady, PartFailed, PortReady, Readiness, Supervisor

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = REPO_ROOT / "workspace.yaml"
STREAMLIT_APP = REPO_ROOT / "dashboards" / "app.py"
CONFIG_TABLE_START = "<!-- efir config --markdown: start -->"
CONFIG_TABLE_END = "<!-- efir config --markdown: end -->"

DAGSTER_YAML = """\
# Written by `efir dagster` when missing; Efir never overwrites it, so edit freely.
# Run storage, event logs and schedules live in SQLite files beside this file.
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2  # the reference machine has 2 cores
"""


def local_host(host: str) -> str:
    """Where to connect to a server that listens on `host` (a wildcard address means this machine)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def node_url(settings: Settings) -> str:
    return f"http://{local_host(settings.node_host)}:{settings.node_port}"


def _settings(data_dir: Path | None = None) -> Settings:
    """Settings from the environment, with DATA_DIR made absolute: child processes may run elsewhere."""
    base = get_settings() if data_dir is None else Settings(data_dir=data_dir)
    return base.model_copy(update={"data_dir": base.data_dir.expanduser().resolve()})


def _exec_module(module: str, *args: str, env: dict[str, str] | None = None) -> NoReturn:
    """Replace this process by `python -m module`: signals then reach the part itself, not a wrapper."""
    argv = [sys.executable, "-m", module, *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env if env is not None else dict(os.environ))


def _exported(settings: Settings) -> dict[str, str]:
    """Environment for a child part: the absolute data folder, everything else as inherited."""
    return {**os.environ, "EFIR_DATA_DIR": str(settings.data_dir)}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "terminal_width": 100})
def main() -> None:
    """Efir: live streaming with donations, a Kafka event bus, a Parquet lake and Dagster analytics.

    `efir up` runs everything on this machine; the other commands run one part in the foreground.
    Every setting is an EFIR_* environment variable (see `efir config`).
    """


@main.command(short_help="Run the embedded Kafka-protocol broker (in memory).")
@click.option("--log-file", type=click.Path(path_type=Path), help="Append the broker's own output here.")
def broker(log_file: Path | None) -> None:
    """Run the embedded Kafka-protocol broker on EFIR_BROKER_PORT until Ctrl-C, with Efir's topics.

    The broker keeps everything in memory: a restart starts empty (the node's outbox republishes).
    """
    from services.broker import BrokerError, EmbeddedBroker
    from services.bus import ensure_topics
    from services.events import TOPICS

    settings = _settings()
    _raise_on_sigterm()
    embedded = EmbeddedBroker(port=settings.broker_port, log_file=log_file)
    try:
        embedded.start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        ensure_topics(settings.model_copy(update={"kafka_bootstrap": embedded.bootstrap}))
        click.echo(
            f"broker ready on {embedded.bootstrap} (cluster {embedded.cluster_id}); topics: "
            f"{', '.join(TOPICS)}. Ctrl-C stops it.",
        )
        code = embedded.wait()
        raise click.ClickException(f"the broker process exited with code {code}")
    except KeyboardInterrupt:
        click.echo("broker stopping")
    finally:
        embedded.stop()


@main.command(short_help="Run the ingest node (HTTP API).")
def node() -> None:
    """Run the ingest node (migrations, then the HTTP API on EFIR_NODE_HOST:EFIR_NODE_PORT)."""
    _exec_module("ingest_node", env=_exported(_settings()))


@main.command(short_help="Run the sandbox Payment Service.")
def sandbox() -> None:
    """Run the sandbox Payment Service (the provider's test double) on EFIR_PAYMENTS_PORT."""
    _exec_module("ingest_node.payments_sandbox", env=_exported(_settings()))


@main.command(short_help="Run the Kafka-to-Parquet lander.")
def lander() -> None:
    """Run the lander: Kafka topics to the Parquet lake under EFIR_LAKE_DIR (default DATA_DIR/lake)."""
    _exec_module("pipelines.lander", env=_exported(_settings()))


@main.command(short_help="Run Dagster (webserver and daemon).")
def dagster() -> None:
    """Run `dagster dev` (webserver and daemon) on EFIR_DAGSTER_PORT, instance in DATA_DIR/dagster."""
    settings = _settings()
    home = dagster_home(settings)
    env = {**_exported(settings), "DAGSTER_HOME": str(home)}
    os.chdir(REPO_ROOT)
    _exec_module(
        "dagster", "dev", "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(settings.dagster_port), env=env
    )


def dagster_home(settings: Settings) -> Path:
    """DATA_DIR/dagster with a dagster.yaml (written only when missing)."""
    home = settings.data_dir / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


@main.command(short_help="Run the Streamlit dashboards.")
def dashboards() -> None:
    """Run the Streamlit dashboards on EFIR_STREAMLIT_PORT."""
    settings = _settings()
    os.chdir(REPO_ROOT)
    _exec_module(
        "streamlit",
        "run",
        str(STREAMLIT_APP),
        "--server.port",
        str(settings.streamlit_port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        env=_exported(settings),
    )


@main.command(short_help="Send demo donations to a running node.")
@click.option("--rate", type=float, help="Donations per second [default: EFIR_DEMO_RATE].")
@click.option("--channels", type=int, help="Demo channels to create [default: EFIR_DEMO_CHANNELS].")
@click.option("--count", type=int, help="Stop after this many donations.")
@click.option("--duration", type=float, help="Stop after this many seconds.")
@click.option("--node-url", "url", help="Base URL of the node [default: from EFIR_NODE_HOST/EFIR_NODE_PORT].")
@click.option(
    "--admin-token",
    envvar="EFIR_ADMIN_TOKEN",
    show_envvar=True,
    help="Admin token of the node, to create the channels (prefer the variable: argv is public).",
)
@click.option("--seed", type=int, help="Seed for reproducible amounts, donors and tokens.")
@click.option("--progress-every", type=int, default=50, show_default=True, help="Print a line every N.")
def demo(
    rate: float | None,
    channels: int | None,
    count: int | None,
    duration: float | None,
    url: str | None,
    admin_token: str | None,
    seed: int | None,
    progress_every: int,
) -> None:
    """Send demo donations to a running node through its public API (Ctrl-C stops).

    Amounts are log-normal around 450 RUB (10 to 50,000), mostly RUB with some USD and EUR; most
    payments succeed, a few percent fail, get refunded or charged back.
    """
    from services.demo import DemoError, run_demo

    settings = _settings()
    stop = threading.Event()
    _set_on_signals(stop)
    try:
        run_demo(
            url or node_url(settings),
            admin_token or "",
            rate=rate if rate is not None else settings.demo_rate,
            channels=channels if channels is not None else settings.demo_channels,
            count=count,
            duration=duration,
            seed=seed,
            progress_every=progress_every,
            min_minor=settings.donation_min_minor,
            max_minor=settings.donation_max_minor,
            stop=stop,
            echo=click.echo,
        )
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc


main.add_command(accounts)
main.add_command(sponsorships)  # finance's sponsored-content payments, over the node's admin API


@main.group(short_help="Payout batches: build, review, approve, publish.")
def payouts() -> None:
    """Finance's payout batches (PERIOD is an ISO week like 2026-W48 or a month like 2026-11).

    `run` builds the period's draft batch with the Dagster job; `approve` makes it final (audit-logged)
    and publishes its payout.scheduled events; `publish` retries the events of an approved batch.
    """


def _period(text: str) -> Any:
    from services.payouts import Period, PeriodError

    try:
        return Period.parse(text)
    except PeriodError as exc:
        raise click.BadParameter(str(exc), param_hint="PERIOD") from exc


@payouts.command("run", short_help="Build a period's draft batch (the Dagster job).")
@click.argument("period")
def payouts_run(period: str) -> None:
    """Run the period's payout job in a child process (`python -m pipelines.payouts run PERIOD`)."""
    import subprocess

    parsed = _period(period)
    settings = _settings()
    home = dagster_home(settings)
    env = {**_exported(settings), "DAGSTER_HOME": str(home)}
    # The run's full log is in the Dagster instance (and its UI); the operator sees the outcome.
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.payouts", "run", parsed.name],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    click.echo(done.stdout, nl=False)
    if done.returncode != 0:
        reasons = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        raise click.ClickException(
            f"the payout job for {parsed} failed: " + ("; ".join(reasons) or done.stderr[-2000:])
        )


@payouts.command("instant", short_help="Pay a verified streamer's balance now.")
@click.argument("channel")
@click.option("--by", "by", required=True, help="Who asks for it (recorded in the audit log).")
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), help="Pay the balance up to this day [yesterday].")
@click.option("--no-publish", is_flag=True, help="Only pay; publish later with `efir payouts publish`.")
def payouts_instant(channel: str, by: str, day: datetime | None, no_publish: bool) -> None:
    """Build and approve CHANNEL's instant payout (`python -m pipelines.payouts instant`), then publish
    its payout.scheduled event. Only verified streamers (streamer_profiles.yaml) may be paid instantly."""
    import subprocess

    from services.payouts import Period

    upto = day.date() if day else datetime.now(UTC).date() - timedelta(days=1)
    settings = _settings()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.payouts",
            "instant",
            channel,
            "--by",
            by,
            "--day",
            upto.isoformat(),
        ],
        env=_exported(settings),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    click.echo(done.stdout, nl=False)
    if done.returncode != 0:
        reasons = [
            line.removeprefix("error: ") for line in done.stderr.splitlines() if line.startswith("error: ")
        ]
        raise click.ClickException("; ".join(reasons) or done.stderr[-2000:])
    if not no_publish:
        _publish(settings, Period.instant(upto, channel), by)


@payouts.command("list", short_help="List the batches and where each stands.")
def payouts_list() -> None:
    from services.money import SETTLEMENT_CURRENCY, format_minor
    from services.payout_store import batch_info, batch_periods, batch_totals, read_batch

    marts = _settings().marts_root
    periods = batch_periods(marts)
    if not periods:
        click.echo("no payout batches yet")
    for period in periods:
        info = batch_info(marts, period)
        totals = batch_totals(read_batch(marts, period))
        click.echo(
            f"{period.name}\t{info.status}{' published' if info.published else ''}\t"
            f"{totals['payouts']} payouts\tnet {format_minor(totals['net_minor'], SETTLEMENT_CURRENCY)}"
        )


@payouts.command("approve", short_help="Approve a draft batch and publish its events.")
@click.argument("period")
@click.option("--by", "by", required=True, help="Who approves (recorded in the audit log).")
@click.option("--no-publish", is_flag=True, help="Only approve; publish later with `efir payouts publish`.")
def payouts_approve(period: str, by: str, no_publish: bool) -> None:
    from services.payout_store import PayoutBatchError, approve

    parsed = _period(period)
    settings = _settings()
    try:
        approval = approve(settings.marts_root, parsed, by)
    except PayoutBatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{parsed}: approved by {approval.by} at {approval.at.isoformat()}")
    if not no_publish:
        _publish(settings, parsed, by)


@payouts.command("publish", short_help="Publish an approved batch's payout.scheduled events.")
@click.argument("period")
@click.option("--by", "by", required=True, help="Who publishes (recorded in the audit log).")
def payouts_publish(period: str, by: str) -> None:
    _publish(_settings(), _period(period), by)


def _publish(settings: Settings, period: Any, by: str) -> None:
    from kafka.errors import KafkaError

    from services.bus import PublishError
    from services.payout_store import PayoutBatchError, publish_scheduled

    try:
        count = publish_scheduled(settings, settings.marts_root, period, actor=by)
    except PayoutBatchError as exc:
        raise click.ClickException(str(exc)) from exc
    except (KafkaError, PublishError) as exc:
        raise click.ClickException(
            f"events of {period} not published to {settings.kafka_bootstrap} ({exc!r}); the batch stays "
            "approved: retry with "
            f"`efir payouts publish {period} --by NAME`"
        ) from exc
    click.echo(f"{period}: {count} payout.scheduled event(s) published")


@main.group(short_help="Channels and their stream keys (through the node's admin API).")
def channels() -> None:
    """Create channels and manage their RTMP stream keys on a running node.

    These commands call the node's admin API over HTTP (they never open its database): the admin token
    comes from EFIR_ADMIN_TOKEN or DATA_DIR/admin_token (written by `efir up`). A stream key is shown
    once, when it is made; the node keeps only its hash.
    """


def _admin_client(url: str | None) -> Any:
    import httpx

    settings = Settings()  # read now, not the cached copy: the token file may have just been written
    token = settings.admin_token.get_secret_value()
    if not token:
        path = settings.data_dir / "admin_token"
        token = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    if not token:
        raise click.ClickException(
            "no admin token: set EFIR_ADMIN_TOKEN or run `efir up`, which writes DATA_DIR/admin_token"
        )
    return httpx.Client(
        base_url=url or node_url(settings), headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    )


def refusal_detail(answer: Any) -> str:
    """The node's `detail`: a sentence, or FastAPI's list of field errors made readable."""
    try:
        detail = answer.json().get("detail", answer.text)
    except ValueError:
        return str(answer.text)
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg', e)}" for e in detail
        )
    return str(detail)


def admin_request(url: str | None, method: str, path: str, **kw: Any) -> Any:
    """The node's answer (an httpx.Response) to an admin call; no answer or a refusal becomes a
    ClickException that says why."""
    import httpx

    with _admin_client(url) as http:
        try:
            answer = http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"the node at {http.base_url} did not answer: {exc}") from exc
    if answer.status_code >= 400:
        raise click.ClickException(f"{answer.status_code}: {refusal_detail(answer)}")
    return answer


def _call(url: str | None, method: str, path: str, **kw: Any) -> Any:
    answer = admin_request(url, method, path, **kw)
    return answer.json() if answer.content else None


def _slug(name: str) -> str:
    import re
    import unicodedata

    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48]
    return slug if len(slug) >= 2 else f"ch-{secrets.token_hex(4)}"


def _print_key(answer: dict[str, Any]) -> None:
    click.echo(f"RTMP server:   {answer['rtmp_server']}")
    click.echo(f"Stream key:    {answer['stream_key']}")
    click.echo(f"RTMP URL:      {answer['rtmp_url']}")
    click.echo(f"Playback URL:  {answer['playback_url']}")
    click.echo("The stream key is shown only now; rotate it if it leaks.")


_node_url_option = click.option(
    "--node-url", "url", help="Base URL of the node [default: from EFIR_NODE_HOST/EFIR_NODE_PORT]."
)


@channels.command("create", short_help="Create a channel and its stream key.")
@click.argument("name")
@click.option("--id", "channel_id", help="Channel id (a lowercase slug) [default: made from NAME].")
@_node_url_option
def channels_create(name: str, channel_id: str | None, url: str | None) -> None:
    """Create channel NAME, print its RTMP ingest URL, stream key and HLS playback URL."""
    channel_id = channel_id or _slug(name)
    _call(url, "POST", "/api/v1/channels", json={"channel_id": channel_id, "name": name})
    click.echo(f"Channel:       {channel_id}")
    _print_key(_call(url, "POST", f"/api/v1/channels/{channel_id}/stream-key"))


@channels.command("rotate-key", short_help="Replace a channel's stream key.")
@click.argument("channel_id")
@_node_url_option
def channels_rotate_key(channel_id: str, url: str | None) -> None:
    """Make a new stream key for CHANNEL_ID; the old one stops working (a live publisher is cut)."""
    _print_key(_call(url, "POST", f"/api/v1/channels/{channel_id}/stream-key"))


@channels.command("revoke-key", short_help="Revoke a channel's stream key.")
@click.argument("channel_id")
@_node_url_option
def channels_revoke_key(channel_id: str, url: str | None) -> None:
    """Revoke CHANNEL_ID's stream key: publishing is refused until `rotate-key` makes a new one."""
    _call(url, "DELETE", f"/api/v1/channels/{channel_id}/stream-key")
    click.echo(f"Stream key of {channel_id} revoked.")


@channels.command("media", short_help="Show or set a channel's latency level and quality preset.")
@click.argument("channel_id")
@click.option(
    "--latency-level", type=click.IntRange(1, 6), help="1 = 1 s low-latency segments ... 6 = 6 s segments."
)
@click.option(
    "--quality", "quality_preset", type=click.Choice(["low", "medium", "high"]), help="Ladder preset."
)
@click.option("--codec", type=click.Choice(["h264", "hevc", "av1"]), help="Codec of the encoded renditions.")
@click.option(
    "--segment-format",
    type=click.Choice(["ts", "fmp4", "auto"]),
    help="MPEG-TS or fMP4 (CMAF) segments; auto = fMP4 for H.265/AV1, else TS.",
)
@_node_url_option
def channels_media(
    channel_id: str,
    latency_level: int | None,
    quality_preset: str | None,
    codec: str | None,
    segment_format: str | None,
    url: str | None,
) -> None:
    """Show CHANNEL_ID's media settings, or change those given; they apply when its next stream starts."""
    fields = {
        "latency_level": latency_level,
        "quality_preset": quality_preset,
        "codec": codec,
        "segment_format": segment_format,
    }
    body = {k: v for k, v in fields.items() if v is not None}
    path = f"/api/v1/channels/{channel_id}/media"
    answer = _call(url, "PUT", path, json=body) if body else _call(url, "GET", path)
    level = answer["latency_level"]
    click.echo(f"Channel:        {channel_id}")
    click.echo(f"Latency level:  {level if level is not None else 'node default'}")
    click.echo(f"Segment length: {answer['segment_seconds']:g} s")
    click.echo(f"Quality preset: {answer['quality_preset']}")
    click.echo(f"Codec:          {answer['codec']}")
    click.echo(f"Segments:       {answer['effective_segment_format']}")
    if body:
        click.echo("Applies when the channel's next stream starts.")


@channels.command("set-game", short_help='Set (or clear, with "") the game a channel is playing.')
@click.argument("channel_id")
@click.argument("game")
@_node_url_option
def channels_set_game(channel_id: str, game: str, url: str | None) -> None:
    """Set CHANNEL_ID's game to GAME (free text; known names such as "cs2" map to the catalogue's game).
    An empty GAME clears it. While the channel is live the change is a `stream.game_changed` event."""
    answer = _call(url, "PUT", f"/api/v1/channels/{channel_id}/game", json={"game": game})
    click.echo(f"Channel: {channel_id}")
    click.echo(f"Game:    {answer['game']} ({answer['game_slug']})" if answer["game"] else "Game:    none")


@main.command(short_help="Show the configuration, or document it (--markdown).")
@click.option("--markdown", is_flag=True, help="Print the table of every EFIR_ variable (the README's).")
def config(markdown: bool) -> None:
    """Show the effective configuration (secrets masked), or document every variable with --markdown."""
    if markdown:
        click.echo(config_markdown(), nl=False)
        return
    settings = get_settings()
    for name in Settings.model_fields:
        value = getattr(settings, name)
        shown = ("***" if value.get_secret_value() else "") if isinstance(value, SecretStr) else value
        click.echo(f"EFIR_{name.upper()}={'' if shown is None else shown}")


def config_markdown() -> str:
    """A Markdown table of every setting, generated from Settings so the docs cannot drift."""
    lines = ["| Variable | Default | Description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        desc = (field.description or "").replace("|", "\\|")
        lines.append(f"| `EFIR_{name.upper()}` | {_default_cell(field.default)} | {desc} |")
    return "\n".join(lines) + "\n"


def _default_cell(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "*(empty)*" if not value.get_secret_value() else "*(sandbox value)*"
    if value is None or value == "":
        return "*(empty)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


# --- efir up -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartSpec:
    """How `efir up` starts one part and tells that it is ready."""

    name: str
    argv: list[str]
    ready: Readiness
    timeout: float
    port: tuple[str, int] | None = None  # checked free before anything starts
    port_setting: str = ""


def _efir(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", *args]


def _is_local(address: str, port: int) -> bool:
    return address.rstrip("/") in {f"127.0.0.1:{port}", f"localhost:{port}"} | {
        f"http://127.0.0.1:{port}",
        f"http://localhost:{port}",
    }


def settings_env(settings: Settings) -> dict[str, str]:
    """The explicitly set settings as EFIR_* variables, so child processes see what this one sees."""
    env = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = str(value).lower()
        env[f"EFIR_{name.upper()}"] = str(value)
    return env


@dataclass(frozen=True)
class UpPlan:
    """The wiring of one `efir up` run: environment of every part and the parts in start order."""

    settings: Settings
    env: dict[str, str]
    parts: list[PartSpec]
    admin_token_generated: bool


def plan_up(settings: Settings, *, demo: bool = True) -> UpPlan:
    """Decide what runs, on which ports, with which environment.

    The embedded broker and the payment sandbox start unless EFIR_KAFKA_BOOTSTRAP / EFIR_PAYMENTS_URL
    point somewhere else (a real Kafka, a real provider); URLs left unset follow the ports.
    """
    explicit = settings.model_fields_set
    token = settings.admin_token.get_secret_value()
    generated = not token
    if generated:
        token = secrets.token_urlsafe(32)
    embedded_broker = "kafka_bootstrap" not in explicit or _is_local(
        settings.kafka_bootstrap, settings.broker_port
    )
    sandbox = "payments_url" not in explicit or _is_local(settings.payments_url, settings.payments_port)
    node = node_url(settings)
    env = {
        **os.environ,
        **settings_env(settings),
        "EFIR_DATA_DIR": str(settings.data_dir),
        "EFIR_ADMIN_TOKEN": token,
        "PYTHONUNBUFFERED": "1",
    }
    if embedded_broker:
        env["EFIR_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{settings.broker_port}"
    if sandbox and "payments_url" not in explicit:
        env["EFIR_PAYMENTS_URL"] = f"http://127.0.0.1:{settings.payments_port}"
    if "public_url" not in explicit:
        env["EFIR_PUBLIC_URL"] = node
    if "rtmp_enabled" not in explicit:
        env["EFIR_RTMP_ENABLED"] = "true"  # `efir up` is a whole product: OBS can publish to it
    logs = settings.data_dir / "logs"

    parts: list[PartSpec] = []
    if embedded_broker:
        port = settings.broker_port
        parts.append(
            PartSpec(
                "broker",
                _efir("broker", "--log-file", str(logs / "broker.log")),
                PortReady("127.0.0.1", port),
                30,
                ("127.0.0.1", port),
                "EFIR_BROKER_PORT",
            )
        )
    if sandbox:
        port = settings.payments_port
        parts.append(
            PartSpec(
                "sandbox",
                _efir("sandbox"),
                PortReady("127.0.0.1", port),
                60,
                ("127.0.0.1", port),
                "EFIR_PAYMENTS_PORT",
            )
        )
    host = local_host(settings.node_host)
    parts += [
        PartSpec(
            "node",
            _efir("node"),
            HttpReady(f"{node}/readyz"),
            120,
            (host, settings.node_port),
            "EFIR_NODE_PORT",
        ),
        PartSpec("lander", _efir("lander"), AliveFor(3.0), 30),
        PartSpec(
            "dagster",
            _efir("dagster"),
            HttpReady(f"http://127.0.0.1:{settings.dagster_port}/server_info"),
            300,
            ("127.0.0.1", settings.dagster_port),
            "EFIR_DAGSTER_PORT",
        ),
        PartSpec(
            "dashboards",
            _efir("dashboards"),
            HttpReady(f"http://127.0.0.1:{settings.streamlit_port}/_stcore/health"),
            120,
            ("127.0.0.1", settings.streamlit_port),
            "EFIR_STREAMLIT_PORT",
        ),
    ]
    if demo:
        parts.append(PartSpec("demo", _efir("demo", "--node-url", node), AliveFor(2.0), 30))
    return UpPlan(settings, env, parts, generated)


@main.command(short_help="Run everything on this machine until Ctrl-C.")
@click.option("--no-demo", is_flag=True, help="Do not send demo donations.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for every file of this run [default: EFIR_DATA_DIR or ./data].",
)
def up(no_demo: bool, data_dir: Path | None) -> None:
    """Run everything: broker, payment sandbox, node, lander, Dagster, dashboards and demo traffic.

    Waits until each part answers, prints where to click, and runs until Ctrl-C (or SIGTERM), which
    stops every part in reverse order. Logs go to DATA_DIR/logs/<part>.log. A random admin token is
    made for the run unless EFIR_ADMIN_TOKEN is set.
    """
    plan = plan_up(_settings(data_dir), demo=not no_demo)
    settings = plan.settings
    _check_ports(plan.parts)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if plan.admin_token_generated:
        write_secret(settings.data_dir / "admin_token", plan.env["EFIR_ADMIN_TOKEN"])
    first_password = ensure_first_account(AccountStore(settings.dashboard_accounts_path), settings.data_dir)

    stop = threading.Event()
    _set_on_signals(stop)
    click.echo(f"Efir is starting: data in {settings.data_dir}, logs in {logs}")
    code = 0
    with Supervisor(logs, stop_timeout=15.0) as sup:
        try:
            _start_parts(sup, plan, stop)
        except Cancelled:
            click.echo("Interrupted while starting.")
        except PartFailed as exc:
            click.secho(f"efir up: {exc}", fg="red", err=True)
            code = 1
        else:
            _print_urls(plan)
            if first_password is not None:
                click.echo(f"Dashboards sign-in: {FIRST_ACCOUNT}, password in {first_password}\n")
            dead = sup.watch(stop)
            if dead is not None:
                failure = PartFailed(dead, f"exited unexpectedly with code {dead.exit_code()}")
                click.secho(f"efir up: {failure}", fg="red", err=True)
                code = 1
        click.echo("Stopping Efir...")
        sup.stop_all(on_stop=lambda part: click.echo(f"  stopping {part.name}"))
    click.echo("Efir stopped.")
    sys.exit(code)


def _check_ports(parts: Sequence[PartSpec]) -> None:
    from services.broker import port_in_use

    taken = [p for p in parts if p.port is not None and port_in_use(*p.port)]
    if taken:
        lines = [f"  {p.name}: port {p.port[1]} is taken (set {p.port_setting})" for p in taken if p.port]
        raise click.ClickException(
            "cannot start, ports already in use (is another `efir up` running?):\n" + "\n".join(lines)
        )


def _start_parts(sup: Supervisor, plan: UpPlan, stop: threading.Event) -> None:
    from kafka.errors import KafkaError

    from services.bus import ensure_topics

    for spec in plan.parts:
        click.echo(f"  {spec.name:<11}starting... ", nl=False)
        sup.start(spec.name, spec.argv, ready=spec.ready, env=plan.env, cwd=REPO_ROOT)
        try:
            seconds = sup.wait_ready(spec.name, spec.timeout, cancel=stop)
        except (PartFailed, Cancelled):
            click.echo("failed" if not stop.is_set() else "interrupted")
            raise
        click.echo(f"ready ({spec.ready}) after {seconds:.1f}s")
        if spec.name == "broker":
            bootstrap = plan.env["EFIR_KAFKA_BOOTSTRAP"]
            try:
                ensure_topics(plan.settings.model_copy(update={"kafka_bootstrap": bootstrap}))
            except KafkaError as exc:
                raise PartFailed(
                    sup.part("broker"), f"answered, but creating topics failed: {exc!r}"
                ) from exc


def _print_urls(plan: UpPlan) -> None:
    s = plan.settings
    node = node_url(s)
    names = [p.name for p in plan.parts]
    rows = [
        ("Dashboards (Streamlit)", f"http://127.0.0.1:{s.streamlit_port}"),
        ("Dagster", f"http://127.0.0.1:{s.dagster_port}"),
        ("Node API", node),
        ("API docs", f"{node}/docs"),
    ]
    if "sandbox" in names:
        rows.append(("Payment sandbox", plan.env["EFIR_PAYMENTS_URL"]))
    rows.append(("Kafka bootstrap", plan.env.get("EFIR_KAFKA_BOOTSTRAP", s.kafka_bootstrap)))
    click.secho("\nEfir is up. Open:", bold=True)
    for label, url in rows:
        click.echo(f"  {label:<24}{url}")
    click.echo(f"Logs: {s.data_dir / 'logs'}/<part>.log")
    if plan.admin_token_generated:
        click.echo(f"Admin token of this run: {s.data_dir / 'admin_token'}")
    if "demo" in names:
        click.echo(
            f"Demo donations: {s.demo_rate:g}/s over {s.demo_channels} channels; revenue appears in the "
            "dashboards once Dagster has materialised the marts."
        )
    click.echo("Press Ctrl-C to stop everything.\n")


def _set_on_signals(stop: threading.Event) -> None:
    """Ctrl-C, SIGTERM and a closed terminal all mean: stop cleanly."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks run (the supervisor stops with SIGTERM)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    main()
