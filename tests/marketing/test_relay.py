"""The relay's budget in a worker: an hour's budget used up makes the org wait, and raising
or removing the limit lets it go on at once (the wait it had worked out is for the old
limits). The limits measured with three worker processes: tests/reliability/."""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import update

from herald.db import unit_of_work
from herald.mailconfig.models import EmailConfig
from tests.marketing.engine import (
    InProcessWorker,
    arrange,
    fast_runtime,
    status_counts,
    wait_for_status,
    wait_until,
)


def test_a_used_up_hour_waits_until_the_limit_is_raised(runtime, smtp_server):
    engine = fast_runtime(runtime)
    arranged = arrange(engine, smtp_server, 8, max_per_hour=3)
    with InProcessWorker(engine):
        wait_until(lambda: len(smtp_server.messages) == 3)
        time.sleep(1.0)
        assert status_counts(engine, arranged.campaign_id) == Counter(DELIVERED=3, QUEUED=5)
        with unit_of_work(engine.sessions) as session:
            session.execute(
                update(EmailConfig)
                .where(EmailConfig.org_id == arranged.org_id)
                .values(max_per_hour=None)
            )
        wait_for_status(engine, arranged.campaign_id, "SENT", timeout=15)
    assert len(smtp_server.messages) == 8
