//! Task transitions, round status, leases, claims and the SQLite file lock.

use super::*;

#[tokio::test]
async fn transition_complete_cancels_timers_writes_history_and_activates_waiting_task() {
    for (name, store, _g) in common::stores::stores().await {
        let round_id = round_ab(&store, "x").await;
        let a = store
            .task_by_key(round_id, "a@u1")
            .await
            .expect("a")
            .expect("a");
        let b = store
            .task_by_key(round_id, "b@u1")
            .await
            .expect("b")
            .expect("b");
        // One of a's timers is being fired by some daemon right now.
        let claimed = store
            .claim_due_timers(3_000, "d", 60_000, 10)
            .await
            .expect("claim")
            .timers;
        assert_eq!(claimed.len(), 2, "{name}: stage and reminder");

        let mut t = transition(a.id, &[TaskState::Open], TaskState::Done, 4_000, "complete");
        t.cancel_timers = true;
        t.activate = vec![Activation {
            round_id,
            task_key: "b@u1".into(),
            due_at: 8_000,
            provisional: true,
            timers: vec![timer("x/b/remind", None, 7_000)],
        }];
        let done = store.transition(t).await.expect("complete");
        assert_eq!(done.state, TaskState::Done, "{name}");
        assert_eq!(
            (done.completed_at, done.updated_at),
            (Some(4_000), 4_000),
            "{name}"
        );
        assert_eq!(
            store.task(a.id).await.expect("a"),
            Some(done.clone()),
            "{name}"
        );

        let a_timers = store.timers_with_prefix("x/a/").await.expect("a timers");
        assert!(
            a_timers.iter().all(|t| t.state == TimerState::Cancelled),
            "{name}"
        );
        assert!(a_timers.iter().all(|t| t.lease_owner.is_none()), "{name}");
        let stage = &store.timers_with_prefix("x/stage").await.expect("stage")[0];
        assert_eq!(stage.state, TimerState::Running, "{name}: not a's timer");
        let reminder = claimed
            .iter()
            .find(|t| t.key == "x/a/remind")
            .expect("claimed");
        let fired = store
            .fire_timer(reminder.id, "d", 4_001, FireEffects::default())
            .await;
        assert!(
            !fired.expect("fire"),
            "{name}: a cancelled reminder does not fire"
        );

        let history = store.task_history(a.id).await.expect("history");
        assert_eq!(history.len(), 1, "{name}");
        let h = &history[0];
        assert_eq!(
            (h.from_state.as_str(), h.to_state.as_str()),
            ("open", "done"),
            "{name}"
        );
        assert_eq!(
            (h.at, h.actor.as_str(), h.note.as_deref()),
            (4_000, "alice", Some("note"))
        );

        let b_now = store.task(b.id).await.expect("b").expect("b");
        assert_eq!((b_now.state, b_now.due_at), (TaskState::Open, Some(8_000)));
        assert!(
            b_now.provisional,
            "{name}: an activated deadline keeps its provisional mark"
        );
        let b_history = store.task_history(b.id).await.expect("history");
        assert_eq!(b_history.len(), 1, "{name}");
        assert_eq!(
            (
                b_history[0].from_state.as_str(),
                b_history[0].to_state.as_str()
            ),
            ("waiting", "open"),
            "{name}"
        );
        assert_eq!(b_history[0].actor, "alice", "{name}");
        let b_timer = &store.timers_with_prefix("x/b/").await.expect("b timers")[0];
        assert_eq!(
            (b_timer.round_id, b_timer.task_id),
            (Some(round_id), Some(b.id))
        );
        assert_eq!(b_timer.state, TimerState::Pending, "{name}");
        let entries = store.audit_after(0, 10).await.expect("audit");
        assert_eq!(
            entries.last().expect("entry").entry.action,
            "task.complete",
            "{name}"
        );

        // Reopen: completed_at cleared, new timers belong to the task.
        let mut t = transition(a.id, &[TaskState::Done], TaskState::Open, 5_000, "reopen");
        t.new_timers = vec![timer("x/a/remind2", None, 6_000)];
        let reopened = store.transition(t).await.expect("reopen");
        assert_eq!(
            (reopened.state.as_str(), reopened.completed_at),
            ("open", None),
            "{name}"
        );
        let r2 = &store
            .timers_with_prefix("x/a/remind2")
            .await
            .expect("timer")[0];
        assert_eq!(
            (r2.round_id, r2.task_id),
            (Some(round_id), Some(a.id)),
            "{name}"
        );
        assert_eq!(
            store.task_history(a.id).await.expect("history").len(),
            2,
            "{name}"
        );
    }
}

#[tokio::test]
async fn transition_from_a_wrong_state_fails_and_changes_nothing() {
    for (name, store, _g) in common::stores::stores().await {
        let round_id = round_ab(&store, "w").await;
        let a = store
            .task_by_key(round_id, "a@u1")
            .await
            .expect("a")
            .expect("a");
        let b = store
            .task_by_key(round_id, "b@u1")
            .await
            .expect("b")
            .expect("b");
        let timers_before = store.timers_with_prefix("w/").await.expect("timers");
        let audit_before = audit_count(&store).await;

        let mut t = transition(a.id, &[TaskState::Done], TaskState::Open, 4_000, "reopen");
        t.cancel_timers = true;
        t.new_timers = vec![timer("w/a/new", None, 6_000)];
        t.activate = vec![Activation {
            round_id,
            task_key: "b@u1".into(),
            due_at: 8_000,
            provisional: false,
            timers: vec![],
        }];
        match store.transition(t).await {
            Err(StoreError::WrongState {
                task,
                state,
                action,
            }) => {
                assert_eq!(
                    (task, state.as_str(), action.as_str()),
                    (a.id, "open", "reopen")
                );
            }
            other => panic!("{name}: expected WrongState, got {other:?}"),
        }
        assert_eq!(
            store.task(a.id).await.expect("a"),
            Some(a.clone()),
            "{name}"
        );
        assert_eq!(
            store.task(b.id).await.expect("b"),
            Some(b.clone()),
            "{name}"
        );
        assert!(
            store.task_history(a.id).await.expect("history").is_empty(),
            "{name}"
        );
        assert_eq!(
            store.timers_with_prefix("w/").await.expect("timers"),
            timers_before
        );
        assert_eq!(audit_count(&store).await, audit_before, "{name}");

        let missing = transition(9_999, &[TaskState::Open], TaskState::Done, 1, "complete");
        let err = store.transition(missing).await.expect_err("missing task");
        assert!(matches!(err, StoreError::NotFound(_)), "{name}: {err}");
    }
}

#[tokio::test]
async fn set_round_status_cancelled_withdraws_open_tasks_and_pending_timers() {
    for (name, store, _g) in common::stores::stores().await {
        let round_id = round_ab(&store, "c").await;
        let a = store
            .task_by_key(round_id, "a@u1")
            .await
            .expect("a")
            .expect("a");
        let b = store
            .task_by_key(round_id, "b@u1")
            .await
            .expect("b")
            .expect("b");
        store
            .transition(transition(
                a.id,
                &[TaskState::Open],
                TaskState::Done,
                1_500,
                "complete",
            ))
            .await
            .expect("complete a");
        let claimed = store
            .claim_due_timers(2_000, "d", 60_000, 1)
            .await
            .expect("claim")
            .timers;
        assert_eq!(claimed[0].key, "c/stage", "{name}");

        store
            .set_round_status(
                round_id,
                RoundStatus::Cancelled,
                audit("round.cancel", "round", 2_500),
            )
            .await
            .expect("cancel");
        let r = store.round(round_id).await.expect("round").expect("round");
        assert_eq!(r.status, RoundStatus::Cancelled, "{name}");
        let a_now = store.task(a.id).await.expect("a").expect("a");
        assert_eq!(
            a_now.state,
            TaskState::Done,
            "{name}: finished work stays done"
        );
        let b_now = store.task(b.id).await.expect("b").expect("b");
        assert_eq!(
            (b_now.state.as_str(), b_now.updated_at),
            ("cancelled", 2_500),
            "{name}"
        );
        let h = store.task_history(b.id).await.expect("history");
        assert_eq!(h.len(), 1, "{name}");
        assert_eq!(
            (h[0].from_state.as_str(), h[0].to_state.as_str()),
            ("waiting", "cancelled")
        );
        assert_eq!(h[0].actor, "tester", "{name}: the audit entry's actor");
        let timers = store.timers_with_prefix("c/").await.expect("timers");
        assert!(
            timers.iter().all(|t| t.state == TimerState::Cancelled),
            "{name}"
        );
        assert_eq!(
            store
                .pending_timers(Some(round_id), 10)
                .await
                .expect("pending"),
            vec![]
        );
        assert_eq!(store.next_due_at().await.expect("next"), None, "{name}");
        let fire = store
            .fire_timer(claimed[0].id, "d", 2_600, FireEffects::default())
            .await;
        assert!(!fire.expect("fire"), "{name}");

        let other = round_ab(&store, "f").await;
        store
            .set_round_status(
                other,
                RoundStatus::Finished,
                audit("round.finish", "round", 3_000),
            )
            .await
            .expect("finish");
        assert_eq!(
            store.round(other).await.expect("r").expect("r").status,
            RoundStatus::Finished
        );
        assert_eq!(
            store
                .pending_timers(Some(other), 10)
                .await
                .expect("pending")
                .len(),
            3
        );
        let err = store
            .set_round_status(
                9_999,
                RoundStatus::Finished,
                audit("round.finish", "round", 3_000),
            )
            .await
            .expect_err("missing round");
        assert!(matches!(err, StoreError::NotFound(_)), "{name}: {err}");
    }
}

#[tokio::test]
async fn release_timer_makes_it_claimable_again_at_once() {
    for (name, store, _g) in common::stores::stores().await {
        store
            .add_timers(vec![timer("t/r", None, 100)])
            .await
            .expect("add");
        let id = store
            .claim_due_timers(100, "a", 60_000, 10)
            .await
            .expect("claim")
            .timers[0]
            .id;
        store
            .release_timer(id, "b")
            .await
            .expect("release by a stranger");
        assert!(
            store
                .claim_due_timers(100, "c", 60_000, 10)
                .await
                .expect("claim")
                .timers
                .is_empty()
        );
        store
            .release_timer(id, "a")
            .await
            .expect("release by owner");
        let pending = store.pending_timers(None, 10).await.expect("pending");
        assert_eq!(pending.len(), 1, "{name}");
        assert_eq!(
            (pending[0].lease_owner.as_deref(), pending[0].lease_until),
            (None, None)
        );
        let again = store
            .claim_due_timers(100, "c", 60_000, 10)
            .await
            .expect("claim")
            .timers;
        assert_eq!(again.len(), 1, "{name}");
        assert_eq!(
            (again[0].attempts, again[0].lease_owner.as_deref()),
            (2, Some("c"))
        );
    }
}

#[tokio::test]
async fn next_due_at_reflects_pending_timers_and_leases() {
    for (name, store, _g) in common::stores::stores().await {
        assert_eq!(store.next_due_at().await.expect("next"), None, "{name}");
        store
            .add_timers(vec![timer("t/500", None, 500), timer("t/300", None, 300)])
            .await
            .expect("add");
        assert_eq!(
            store.next_due_at().await.expect("next"),
            Some(300),
            "{name}"
        );
        let first = store
            .claim_due_timers(300, "a", 1_000, 10)
            .await
            .expect("claim")
            .timers;
        assert_eq!(
            store.next_due_at().await.expect("next"),
            Some(500),
            "{name}: lease 1300"
        );
        let second = store
            .claim_due_timers(500, "a", 10, 10)
            .await
            .expect("claim")
            .timers;
        assert_eq!(
            store.next_due_at().await.expect("next"),
            Some(510),
            "{name}: lease 510"
        );
        assert!(
            store
                .fire_timer(second[0].id, "a", 505, FireEffects::default())
                .await
                .expect("f")
        );
        assert_eq!(
            store.next_due_at().await.expect("next"),
            Some(1_300),
            "{name}"
        );
        assert!(
            store
                .fire_timer(first[0].id, "a", 505, FireEffects::default())
                .await
                .expect("f")
        );
        assert_eq!(
            store.next_due_at().await.expect("next"),
            None,
            "{name}: all fired"
        );
    }
}

#[tokio::test]
async fn pending_timers_filter_by_round_and_prefix_is_literal() {
    for (name, store, _g) in common::stores::stores().await {
        let r1 = round_ab(&store, "p1").await;
        store
            .add_timers(vec![timer("P1/upper", None, 1), timer("p1_x", None, 2)])
            .await
            .expect("add");
        let of_round = store.pending_timers(Some(r1), 10).await.expect("pending");
        let keys: Vec<&str> = of_round.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["p1/stage", "p1/a/remind", "p1/a/deadline"], "{name}");
        assert_eq!(
            store.pending_timers(None, 2).await.expect("all").len(),
            2,
            "{name}"
        );
        assert_eq!(
            store.pending_timers(None, 10).await.expect("all").len(),
            5,
            "{name}"
        );
        let prefixed = store.timers_with_prefix("p1/").await.expect("prefix");
        assert_eq!(
            prefixed.len(),
            3,
            "{name}: case-sensitive, `_` is not a wildcard"
        );
        assert_eq!(
            store.timers_with_prefix("p1_").await.expect("prefix").len(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn audit_entries_are_appended_in_order() {
    for (name, store, _g) in common::stores::stores().await {
        for i in 0..5 {
            store
                .append_audit(audit("a", &format!("s{i}"), i))
                .await
                .expect("append");
        }
        let all = store.audit_after(0, 100).await.expect("all");
        let subjects: Vec<&str> = all.iter().map(|r| r.entry.subject.as_str()).collect();
        assert_eq!(subjects, ["s0", "s1", "s2", "s3", "s4"], "{name}");
        assert!(all.windows(2).all(|w| w[0].id < w[1].id), "{name}");
        assert_eq!(all[0].entry, audit("a", "s0", 0), "{name}");
        let rest = store.audit_after(all[2].id, 2).await.expect("rest");
        let subjects: Vec<&str> = rest.iter().map(|r| r.entry.subject.as_str()).collect();
        assert_eq!(subjects, ["s3", "s4"], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_fire_every_timer_exactly_once() {
    const TIMERS: usize = 500;
    for (name, store, _g) in common::stores::stores().await {
        let timers = (0..TIMERS)
            .map(|i| timer(&format!("c/{i:03}"), None, i as Millis))
            .collect();
        assert_eq!(
            store.add_timers(timers).await.expect("add"),
            TIMERS as u64,
            "{name}"
        );
        let now = TIMERS as Millis;
        let mut workers = Vec::new();
        for w in 0..3 {
            let store = store.clone();
            workers.push(tokio::spawn(async move {
                let owner = format!("daemon-{w}");
                let mut fired = Vec::new();
                loop {
                    let batch = store
                        .claim_due_timers(now, &owner, 60_000, 20)
                        .await?
                        .timers;
                    if batch.is_empty() {
                        return Ok::<_, StoreError>(fired);
                    }
                    for t in batch {
                        let effects = FireEffects {
                            notifications: vec![notification(&t.key, &owner)],
                            ..Default::default()
                        };
                        if store.fire_timer(t.id, &owner, now, effects).await? {
                            fired.push(t.key);
                        }
                    }
                }
            }));
        }
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.expect("join").expect("worker"));
        }
        assert_eq!(all.len(), TIMERS, "{name}: fired count");
        assert_eq!(
            all.iter().collect::<HashSet<_>>().len(),
            TIMERS,
            "{name}: no repeats"
        );
        let rows = store.timers_with_prefix("c/").await.expect("timers");
        assert!(
            rows.iter()
                .all(|t| t.state == TimerState::Fired && t.attempts == 1),
            "{name}"
        );
        let outbox = store.outbox_after(0, 10_000).await.expect("outbox");
        assert_eq!(outbox.len(), TIMERS, "{name}: outbox rows");
        assert_eq!(
            outbox.iter().map(|o| &o.key).collect::<HashSet<_>>().len(),
            TIMERS
        );
    }
}

#[tokio::test]
async fn sqlite_second_open_of_the_same_file_fails_with_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/deeper/yz.db");
    let url = format!("sqlite://{}", path.display());
    let first = SqliteStore::open(&url)
        .await
        .expect("first open creates directories");
    first.migrate().await.expect("migrate");
    assert!(dir.path().join("nested/deeper/yz.db.lock").exists());
    match SqliteStore::open(&url).await {
        Err(StoreError::Locked { path: p }) => assert_eq!(p, path.display().to_string()),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Same file through the other URL form: still locked.
    let short = format!("sqlite:{}", path.display());
    assert!(matches!(
        SqliteStore::open(&short).await,
        Err(StoreError::Locked { .. })
    ));
    // A short-lived command may still open it without the lock.
    let shared = SqliteStore::open_shared(&short).await.expect("shared open");
    assert!(shared.ready().await.expect("ready"));
    drop(shared);
    drop(first);
    let again = SqliteStore::open(&short)
        .await
        .expect("lock released with the store");
    assert!(again.ready().await.expect("ready"));
    assert!(matches!(
        SqliteStore::open("mysql://x").await,
        Err(StoreError::BadUrl(_))
    ));
}

#[tokio::test]
async fn sqlite_memory_store_works() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open("sqlite::memory:").await.expect("open"));
    assert!(!store.ready().await.expect("ready"), "not migrated yet");
    store.migrate().await.expect("migrate");
    assert!(store.ready().await.expect("ready"));
    let round_id = round_ab(&store, "mem").await;
    assert_eq!(store.tasks(round_id).await.expect("tasks").len(), 2);
    // The single connection survives idle time and keeps the data.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let claimed = store
        .claim_due_timers(10_000, "a", 1_000, 10)
        .await
        .expect("claim")
        .timers;
    assert_eq!(claimed.len(), 3);
    assert!(
        store
            .fire_timer(claimed[0].id, "a", 10_000, FireEffects::default())
            .await
            .expect("f")
    );
    let other = SqliteStore::open("sqlite::memory:")
        .await
        .expect("second memory store");
    assert!(
        !other.ready().await.expect("ready"),
        "each memory store is its own database"
    );
}

#[tokio::test]
async fn a_hand_in_is_recorded_with_its_state_change_and_a_second_decision_writes_nothing() {
    use yanzhen::store::{NewSubmission, Outcome, SubmissionChange};
    for (name, store, _g) in common::stores::stores().await {
        let round_id = round_ab(&store, "x").await;
        let a = store
            .task_by_key(round_id, "a@u1")
            .await
            .expect("a")
            .expect("a");
        let sub = NewSubmission {
            task_id: a.id,
            round_id,
            unit: "u1".into(),
            at: 4_000,
            actor: "link:u1".into(),
            fields: [("note".to_string(), "材料齐全".to_string())].into(),
            files: vec![],
        };
        let mut t = transition(
            a.id,
            &[TaskState::Open],
            TaskState::Submitted,
            4_000,
            "submit",
        );
        t.cancel_timers = true;
        t.submission = Some(SubmissionChange::Insert(
            sub,
            audit("submission.create", "", 4_000),
        ));
        let row = store.transition(t).await.expect("submit");
        assert_eq!(row.state, TaskState::Submitted, "{name}");
        let subs = store.task_submissions(a.id).await.expect("subs");
        assert_eq!(subs.len(), 1, "{name}: the submission came with the change");
        assert_eq!(
            subs[0].fields.get("note").map(String::as_str),
            Some("材料齐全")
        );

        let decide = |at| {
            let mut t = transition(
                a.id,
                &[TaskState::Submitted, TaskState::Done],
                TaskState::Done,
                at,
                "accept",
            );
            t.submission = Some(SubmissionChange::Decide {
                id: subs[0].id,
                outcome: Outcome::Accepted,
                by: "office".into(),
                reason: None,
            });
            t
        };
        let done = store.transition(decide(5_000)).await.expect("accept");
        assert_eq!(done.state, TaskState::Done, "{name}");
        let history = store.task_history(a.id).await.expect("history").len();
        // The same decision again (a second office clerk at once): refused, and neither the
        // task, its history nor the submission changes.
        let again = store.transition(decide(6_000)).await;
        assert!(again.is_err(), "{name}: an already decided submission");
        let after = store.task(a.id).await.expect("read").expect("task");
        assert_eq!(
            after.updated_at, 5_000,
            "{name}: the task is as the first left it"
        );
        assert_eq!(
            store.task_history(a.id).await.expect("history").len(),
            history,
            "{name}"
        );
        let subs = store.task_submissions(a.id).await.expect("subs");
        assert_eq!(subs[0].decided_at, Some(5_000), "{name}");
        assert_eq!(subs[0].outcome, Some(Outcome::Accepted), "{name}");
    }
}
