"""The lander across an empty broker restart, and as a process stopped by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pipelines.lander import Lander
from services import bus
from services.broker import EmbeddedBroker
from services.lake import epoch_of, manifests
from services.settings import Settings
from tests.conftest import free_port
from tests.pipelines.test_lander import (
    assert_landed_once,
    assert_no_overlap,
    consume_until,
    donations,
    ids,
    landed_counts,
    settings_for,
)


def test_an_empty_restarted_broker_lands_under_a_new_epoch_without_duplicates(
    base_settings: Settings, lake: Path
) -> None:
    port = free_port()
    settings = settings_for(base_settings, lake, kafka_bootstrap=f"127.0.0.1:{port}")
    channel = f"restart-{uuid.uuid4().hex[:8]}"
    lander = Lander(settings, manual_assignment=True)
    before = donations(channel, 3)
    with EmbeddedBroker(port=port) as first:
        bus.ensure_topics(settings)
        producer = bus.make_producer(settings)
        bus.publish(producer, before)
        producer.close()
        lander.start()
        consume_until(lander, lambda: ids(before) <= lander.pending_event_ids)
        lander.flush_all()
        assert lander.epoch == epoch_of(first.cluster_id)
    after = donations(channel, 2)
    try:
        with EmbeddedBroker(port=port) as second:
            bus.ensure_topics(settings)
            producer = bus.make_producer(settings)
            bus.publish(producer, before + after)  # the outbox republishes what the broker lost
            producer.close()
            consume_until(lander, lambda: ids(after) <= lander.pending_event_ids)
            lander.flush_all()
            assert lander.rebuilds == 1 and lander.epoch == epoch_of(second.cluster_id)
            assert lander.duplicates_dropped == 3
            lander.close()
    finally:
        if lander._consumer is not None:
            lander.close(flush=False)
    assert_landed_once(lake, ids(before) | ids(after))
    assert {m.epoch for m in manifests(lake)} == {epoch_of(first.cluster_id), epoch_of(second.cluster_id)}
    assert_no_overlap(lake)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_lander_process_lands_and_exits_cleanly_on_a_signal(
    base_settings: Settings, lake: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    channel = f"proc-{uuid.uuid4().hex[:8]}"
    events = donations(channel, 3)
    producer = bus.make_producer(base_settings)
    bus.publish(producer, events)
    producer.close()
    env = {
        **os.environ,
        "EFIR_DATA_DIR": str(tmp_path / "data"),
        "EFIR_LAKE_DIR": str(lake),
        "EFIR_KAFKA_BOOTSTRAP": base_settings.kafka_bootstrap,
        "EFIR_LANDER_FLUSH_SECONDS": "0.2",
    }
    log = tmp_path / "lander.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.lander", "--manual"], env=env, stdout=out, stderr=out
        )
        try:
            for _ in range(600):
                if landed_counts(lake, ids(events)) or proc.poll() is not None:
                    break
                time.sleep(0.05)
            proc.send_signal(sig)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert f"signal {sig.name}" in text and "lander stopped" in text, text
    assert_landed_once(lake, ids(events))
    assert not list(lake.rglob("*.tmp"))
