"""Claims: one holder at a time, a waiting claimant told who holds it, a killed holder's claim freed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import text

from soilclay.db.claims import claim
from soilclay.db.runs import recorded_run
from soilclay.errors import TransientExternalError
from soilclay.model.config import ModelConfig
from soilclay.model.pipeline import RETRAIN_CLAIM, RetrainRequest, retrain


def test_a_second_claimant_waits_then_is_told_who_holds_it(engine):
    with recorded_run(engine, "claimtest", params={"aoi": "somewhere"}) as run:
        with claim(engine, "test.claim.a", stage="claimtest", what="the test claim", own_run=run.run_id):
            started = time.monotonic()
            with pytest.raises(TransientExternalError) as caught:
                with claim(engine, "test.claim.a", stage="claimtest", what="the test claim", wait_s=0.3,
                           poll_s=0.05):
                    pytest.fail("claimed twice")
            assert 0.3 <= time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(f"the test claim: run {run.run_id} of AOI somewhere, started ")
    assert "nothing was done here, retry when it has finished" in message
    with claim(engine, "test.claim.a", stage="claimtest", what="the test claim", wait_s=0):
        pass  # released by the first holder


def test_a_waiting_claimant_gets_the_claim_when_the_holder_finishes(engine):
    order: list[str] = []
    held = threading.Event()

    def first():
        with claim(engine, "test.claim.b", stage="claimtest", what="b"):
            held.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    with claim(engine, "test.claim.b", stage="claimtest", what="b", wait_s=10, poll_s=0.05):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


def test_a_sigkilled_holder_frees_its_claim(engine, migrated_url):
    script = ("import sys, time; from soilclay.db.engine import make_engine; from soilclay.db.claims import claim\n"
              "with claim(make_engine(sys.argv[1]), 'test.claim.c', stage='x', what='c'):\n"
              "    print('held', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, migrated_url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(TransientExternalError):
            with claim(engine, "test.claim.c", stage="x", what="c", wait_s=0):
                pass
    finally:
        proc.kill()
        proc.wait(10)
    with claim(engine, "test.claim.c", stage="x", what="c", wait_s=10, poll_s=0.05):
        pass  # the server noticed the closed connection and dropped its lock


def test_a_retrain_while_another_runs_refuses_before_any_work(engine, tmp_path):
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT count(*) FROM soilclay.model_versions")).scalar_one()
    with claim(engine, RETRAIN_CLAIM, stage="train", what="the retrain claim"):
        request = RetrainRequest("no-such-aoi", ModelConfig.parse({}), str(tmp_path / "s"), str(tmp_path / "m"),
                                 claim_wait_s=0.2)
        with pytest.raises(TransientExternalError, match="the retrain claim .*still holds it after 0.2 s"):
            retrain(engine, request)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM soilclay.model_versions")).scalar_one() == versions
    assert not (tmp_path / "m").exists()
