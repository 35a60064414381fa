"""The chain decision: done / waiting / failed over listed runs, without Airflow."""

from soilclay.stack.chain import chain_runs, decide, summarize

T0 = "2026-01-01T10:00:00Z"


def run(run_id, state, run_type="asset_triggered", run_after="2026-01-01T10:05:00Z"):
    return {"dag_run_id": run_id, "state": state, "run_type": run_type, "run_after": run_after,
            "start_date": run_after, "end_date": None}


FIRST_OK = run("manual_1", "success", "manual", T0)
CHAIN = ("composites", "retrain", "predict")


def poll_until_verdict(first, downstream, expected=CHAIN, polls=10, min_quiet=3):
    quiet, verdicts = 0, []
    for _ in range(polls):
        decision = decide("watch", first, downstream, expected, quiet, min_quiet)
        quiet = decision.quiet_polls
        verdicts.append(decision.verdict)
        if decision.verdict != "waiting":
            break
    return verdicts, decision


def test_waits_while_the_first_run_runs():
    decision = decide("watch", run("manual_1", "running", "manual", T0), {d: [] for d in CHAIN}, CHAIN)
    assert decision.verdict == "waiting" and decision.active == {"watch": ["manual_1"]}
    assert "running: watch" in decision.reason


def test_waits_for_expected_dags_the_scheduler_has_not_created_yet():
    decision = decide("watch", FIRST_OK, {"composites": [run("a1", "success")], "retrain": [], "predict": []},
                      CHAIN)
    assert decision.verdict == "waiting" and "retrain, predict" in decision.reason


def test_done_only_after_enough_consecutive_quiet_polls():
    downstream = {d: [run(f"{d}_1", "success")] for d in CHAIN}
    verdicts, decision = poll_until_verdict(FIRST_OK, downstream)
    assert verdicts == ["waiting", "waiting", "done"] and decision.quiet_polls == 3


def test_activity_resets_the_quiet_count():
    downstream = {d: [run(f"{d}_1", "success")] for d in CHAIN}
    quiet = decide("watch", FIRST_OK, downstream, CHAIN, 0, 3).quiet_polls
    assert quiet == 1
    busy = {**downstream, "predict": [run("predict_2", "queued"), *downstream["predict"]]}
    decision = decide("watch", FIRST_OK, busy, CHAIN, quiet, 3)
    assert decision.verdict == "waiting" and decision.quiet_polls == 0
    assert decision.active == {"predict": ["predict_2"]}


def test_a_failed_chain_run_fails_at_once_even_while_others_run():
    downstream = {"composites": [run("c1", "success")], "retrain": [run("r1", "running")],
                  "predict": [run("p1", "failed")]}
    decision = decide("watch", FIRST_OK, downstream, CHAIN, 2, 3)
    assert decision.verdict == "failed"
    assert [(d, r["dag_run_id"]) for d, r in decision.failed] == [("predict", "p1")]


def test_a_failed_first_run_fails():
    decision = decide("watch", run("manual_1", "failed", "manual", T0), {d: [] for d in CHAIN}, CHAIN)
    assert decision.verdict == "failed" and decision.failed[0][0] == "watch"


def test_old_and_non_asset_runs_are_not_part_of_the_chain_but_still_block_quiet():
    old_failure = run("scheduled_old", "failed", "scheduled", "2026-01-01T03:00:00Z")
    assert chain_runs(FIRST_OK, [old_failure]) == []
    downstream = {"composites": [run("c1", "success")], "retrain": [run("r1", "success"), old_failure],
                  "predict": [run("p1", "success")]}
    assert decide("watch", FIRST_OK, downstream, CHAIN, 5, 3).verdict == "done"
    running_old = run("scheduled_old", "running", "scheduled", "2026-01-01T03:00:00Z")
    blocked = decide("watch", FIRST_OK, {**downstream, "retrain": [running_old]}, CHAIN, 5, 3)
    assert blocked.verdict == "waiting" and blocked.active == {"retrain": ["scheduled_old"]}


def test_optional_dags_may_not_run():
    downstream = {"composites": [], "retrain": [], "predict": []}
    verdicts, _ = poll_until_verdict(FIRST_OK, downstream, expected=())
    assert verdicts[-1] == "done"


def test_an_expected_dag_that_never_runs_fails_after_the_grace_polls():
    downstream = {"composites": [], "retrain": [], "predict": []}
    quiet = 0
    for _ in range(4):
        decision = decide("watch", FIRST_OK, downstream, ["composites"], quiet, 3, missing_polls=5)
        quiet = decision.quiet_polls
        assert decision.verdict == "waiting"
    decision = decide("watch", FIRST_OK, downstream, ["composites"], quiet, 3, missing_polls=5)
    assert decision.verdict == "failed" and decision.failed == []
    assert "no run of composites" in decision.reason


def test_summary_lists_chain_runs_per_dag():
    downstream = {"composites": [run("c1", "success")], "retrain": [],
                  "predict": [run("p2", "success", run_after="2026-01-01T10:09:00Z"), run("p1", "success")]}
    summary = summarize("watch", FIRST_OK, downstream)
    assert summary["watch"][0]["run_id"] == "manual_1"
    assert [r["run_id"] for r in summary["predict"]] == ["p1", "p2"] and summary["retrain"] == []
