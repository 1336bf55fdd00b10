//! The store contract on every backend: a SQLite file always, PostgreSQL when
//! `YANZHEN_TEST_POSTGRES_URL` is set (each test gets fresh databases, see `common::stores`).

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use yanzhen::core::state::{
    AssigneeKind, MessageKind, OutboxChannel, OutboxState, RoundStatus, TaskState, TimerKind,
    TimerState,
};
use yanzhen::store::{
    Activation, AuditEntry, FireEffects, Millis, NewNotification, NewRound, NewTask, NewTimer,
    SqliteStore, Store, StoreError, TimerPayload, Transition,
};

// ---------- fixtures ----------

fn audit(action: &str, subject: &str, at: Millis) -> AuditEntry {
    AuditEntry {
        at,
        actor: "tester".into(),
        action: action.into(),
        subject: subject.into(),
        detail_json: "{}".into(),
    }
}

fn round(tag: &str, version_id: i64, kickoff: Option<&str>) -> NewRound {
    NewRound {
        tag: tag.into(),
        workflow_id: "wf".into(),
        version_id,
        start_date: "2026-03-01".into(),
        params: [("year".to_string(), "2026".to_string())].into(),
        units: Some(vec!["u1".into(), "u2".into()]),
        kickoff_key: kickoff.map(str::to_string),
        created_at: 1_000,
    }
}

fn task(key: &str, state: &str, due_at: Option<Millis>) -> NewTask {
    NewTask {
        key: key.into(),
        task: key.split('@').next().unwrap_or(key).into(),
        stage: "s1".into(),
        title: format!("Title of {key}"),
        assignee_kind: AssigneeKind::Unit,
        assignee_id: "u1".into(),
        assignee_name: "Unit one".into(),
        due_at,
        state: state.parse().expect("a task state"),
        provisional: false,
    }
}

fn timer(key: &str, task_key: Option<&str>, due_at: Millis) -> NewTimer {
    NewTimer {
        key: key.into(),
        round_id: None,
        task_key: task_key.map(str::to_string),
        kind: TimerKind::Reminder,
        due_at,
        payload: TimerPayload {
            stage: Some("s1".into()),
            ..TimerPayload::default()
        },
    }
}

fn notification(key: &str, subject: &str) -> NewNotification {
    NewNotification {
        key: key.into(),
        round_id: None,
        task_id: None,
        kind: MessageKind::Reminder,
        channel: OutboxChannel::Log,
        address: "office".into(),
        recipient_json: r#"{"name":"office"}"#.into(),
        subject: subject.into(),
        body: "body".into(),
        html: "<p>body</p>".into(),
        item_json: "{}".into(),
        not_before: 5,
        created_at: 5,
    }
}

fn transition(
    task_id: i64,
    from: &[TaskState],
    to: TaskState,
    at: Millis,
    action: &str,
) -> Transition {
    Transition {
        task_id,
        from: from.to_vec(),
        to,
        at,
        actor: "alice".into(),
        note: Some("note".into()),
        action: action.into(),
        cancel_timers: false,
        new_timers: vec![],
        activate: vec![],
        set_due: None,
        audit: audit(&format!("task.{action}"), &format!("task:{task_id}"), at),
    }
}

async fn version(store: &Arc<dyn Store>) -> i64 {
    store
        .put_workflow_version("wf", "hash-1", "id: wf", 1)
        .await
        .expect("put version")
        .id
}

/// A round `tag` with task `a` (open, two timers) and task `b` (waiting), plus a round timer.
async fn round_ab(store: &Arc<dyn Store>, tag: &str) -> i64 {
    let v = version(store).await;
    store
        .create_round(
            round(tag, v, None),
            vec![
                task("a@u1", "open", Some(9_000)),
                task("b@u1", "waiting", None),
            ],
            vec![
                timer(&format!("{tag}/stage"), None, 2_000),
                timer(&format!("{tag}/a/remind"), Some("a@u1"), 3_000),
                timer(&format!("{tag}/a/deadline"), Some("a@u1"), 9_000),
            ],
            audit("round.start", "workflow:wf", 1_000),
        )
        .await
        .expect("create round")
        .expect("new round")
}

async fn audit_count(store: &Arc<dyn Store>) -> usize {
    store.audit_after(0, 10_000).await.expect("audit").len()
}

// ---------- tests ----------

#[tokio::test]
async fn migrate_is_idempotent_and_ready_is_true() {
    for (name, store, _g) in common::stores::stores().await {
        assert_eq!(store.backend(), name);
        assert!(store.ready().await.expect("ready"), "{name}");
        store.migrate().await.expect("second migrate");
        store.migrate().await.expect("third migrate");
        assert!(store.ready().await.expect("ready"), "{name}");
    }
}

#[tokio::test]
async fn versions_dedupe_by_hash_and_number_upward() {
    for (name, store, _g) in common::stores::stores().await {
        let v1 = store
            .put_workflow_version("wf", "h1", "one", 10)
            .await
            .expect("v1");
        assert_eq!(
            (v1.version, v1.hash.as_str(), v1.created_at),
            (1, "h1", 10),
            "{name}"
        );
        let again = store
            .put_workflow_version("wf", "h1", "one", 20)
            .await
            .expect("again");
        assert_eq!(
            again, v1,
            "{name}: a known hash returns the stored row unchanged"
        );
        let v2 = store
            .put_workflow_version("wf", "h2", "two", 30)
            .await
            .expect("v2");
        assert_eq!(v2.version, 2, "{name}");
        let other = store
            .put_workflow_version("other", "h1", "x", 40)
            .await
            .expect("other");
        assert_eq!(other.version, 1, "{name}: numbering is per workflow");
        let back = store
            .put_workflow_version("wf", "h1", "one", 50)
            .await
            .expect("back");
        assert_eq!(
            back.id, v1.id,
            "{name}: going back to an old text reuses its version"
        );

        let all = store.workflow_versions("wf").await.expect("list");
        assert_eq!(all, vec![v1.clone(), v2.clone()], "{name}");
        assert_eq!(
            store.workflow_version(v2.id).await.expect("one"),
            Some(v2),
            "{name}"
        );
        assert_eq!(
            store.workflow_version(9_999).await.expect("none"),
            None,
            "{name}"
        );
    }
}

#[tokio::test]
async fn concurrent_version_puts_agree_on_numbers() {
    for (name, store, _g) in common::stores::stores().await {
        let mut joins = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            joins.push(tokio::spawn(async move {
                let hash = format!("h{}", i % 4);
                store.put_workflow_version("race", &hash, "src", i).await
            }));
        }
        for j in joins {
            j.await.expect("join").expect("put");
        }
        let all = store.workflow_versions("race").await.expect("list");
        let numbers: Vec<i64> = all.iter().map(|v| v.version).collect();
        assert_eq!(
            numbers,
            vec![1, 2, 3, 4],
            "{name}: one row per hash, numbered 1..4"
        );
    }
}

#[tokio::test]
async fn create_round_materialises_tasks_and_timers_and_a_used_kickoff_key_adds_nothing() {
    for (name, store, _g) in common::stores::stores().await {
        let v = version(&store).await;
        let id = store
            .create_round(
                round("k1", v, Some("kickoff:wf:1")),
                vec![
                    task("a@u1", "open", Some(9_000)),
                    task("b@u1", "waiting", None),
                ],
                vec![
                    timer("k1/stage", None, 2_000),
                    timer("k1/a", Some("a@u1"), 3_000),
                ],
                audit("round.start", "workflow:wf", 1_000),
            )
            .await
            .expect("create")
            .expect("new round");

        let r = store.round(id).await.expect("round").expect("exists");
        assert_eq!(
            (r.tag.as_str(), r.status.as_str(), r.kickoff_key.as_deref()),
            ("k1", "running", Some("kickoff:wf:1")),
            "{name}"
        );
        assert_eq!(
            r.units,
            Some(vec!["u1".to_string(), "u2".to_string()]),
            "{name}"
        );
        assert_eq!(r.params.get("year").map(String::as_str), Some("2026"));
        let tasks = store.tasks(id).await.expect("tasks");
        let keys: Vec<&str> = tasks.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["a@u1", "b@u1"], "{name}: creation order");
        assert_eq!(tasks[0].state, TaskState::Open, "{name}");
        assert_eq!(
            (tasks[0].due_at, tasks[0].updated_at),
            (Some(9_000), 1_000),
            "{name}"
        );
        assert_eq!(tasks[1].state, TaskState::Waiting, "{name}");
        let a = store
            .task_by_key(id, "a@u1")
            .await
            .expect("by key")
            .expect("a");
        assert_eq!(a, tasks[0], "{name}");
        assert_eq!(
            store.task(a.id).await.expect("task"),
            Some(a.clone()),
            "{name}"
        );

        let timers = store.timers_with_prefix("k1/").await.expect("timers");
        assert_eq!(timers.len(), 2, "{name}");
        assert_eq!(
            (timers[0].round_id, timers[0].task_id),
            (Some(id), None),
            "{name}"
        );
        assert_eq!(
            (timers[1].round_id, timers[1].task_id),
            (Some(id), Some(a.id)),
            "{name}"
        );
        assert!(
            timers
                .iter()
                .all(|t| t.state == TimerState::Pending && t.attempts == 0)
        );
        assert_eq!(audit_count(&store).await, 1, "{name}");

        let dup = store
            .create_round(
                round("k2", v, Some("kickoff:wf:1")),
                vec![task("c@u1", "open", None)],
                vec![timer("k2/stage", None, 2_000)],
                audit("round.start", "workflow:wf", 1_000),
            )
            .await
            .expect("duplicate kickoff");
        assert_eq!(dup, None, "{name}");
        assert_eq!(store.rounds().await.expect("rounds").len(), 1, "{name}");
        assert!(
            store
                .timers_with_prefix("k2/")
                .await
                .expect("timers")
                .is_empty()
        );
        assert_eq!(
            audit_count(&store).await,
            1,
            "{name}: no audit for a duplicate"
        );

        // Rounds without a kickoff key never collide; newest first.
        let manual = store
            .create_round(round("m1", v, None), vec![], vec![], audit("x", "y", 1))
            .await
            .expect("manual")
            .expect("new");
        let ids: Vec<i64> = store
            .rounds()
            .await
            .expect("rounds")
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec![manual, id], "{name}");
    }
}

#[tokio::test]
async fn tasks_by_ids_reads_the_known_ids_and_skips_the_missing() {
    for (name, store, _g) in common::stores::stores().await {
        let r = round_ab(&store, "r").await;
        let tasks = store.tasks(r).await.expect("tasks");
        let ids: Vec<i64> = tasks.iter().map(|t| t.id).chain([i64::MAX]).collect();
        let mut got = store.tasks_by_ids(&ids).await.expect("by ids");
        got.sort_by_key(|t| t.id);
        assert_eq!(got, tasks, "{name}");
        assert!(
            store.tasks_by_ids(&[]).await.expect("none").is_empty(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn create_round_is_atomic_when_a_timer_names_an_unknown_task() {
    for (name, store, _g) in common::stores::stores().await {
        let v = version(&store).await;
        let err = store
            .create_round(
                round("bad", v, Some("kickoff:wf:9")),
                vec![task("a@u1", "open", None)],
                vec![
                    timer("bad/ok", Some("a@u1"), 1),
                    timer("bad/x", Some("nope"), 1),
                ],
                audit("round.start", "workflow:wf", 1),
            )
            .await
            .expect_err("unknown task key");
        assert!(matches!(err, StoreError::NotFound(_)), "{name}: {err}");
        assert!(store.rounds().await.expect("rounds").is_empty(), "{name}");
        assert!(
            store
                .timers_with_prefix("bad/")
                .await
                .expect("timers")
                .is_empty()
        );
        assert_eq!(audit_count(&store).await, 0, "{name}");
    }
}

#[tokio::test]
async fn claim_returns_due_timers_once() {
    for (name, store, _g) in common::stores::stores().await {
        let added = store
            .add_timers(vec![
                timer("t/3", None, 300),
                timer("t/1", None, 100),
                timer("t/2", None, 200),
                timer("t/1", None, 999),
            ])
            .await
            .expect("add");
        assert_eq!(added, 3, "{name}: an existing key is skipped");
        assert_eq!(
            store
                .add_timers(vec![timer("t/1", None, 5)])
                .await
                .expect("add"),
            0
        );

        let claimed = store
            .claim_due_timers(250, "a", 1_000, 10)
            .await
            .expect("claim")
            .timers;
        let keys: Vec<&str> = claimed.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys,
            ["t/1", "t/2"],
            "{name}: due ones only, earliest first"
        );
        for t in &claimed {
            assert_eq!(t.state, TimerState::Running, "{name}");
            assert_eq!(t.attempts, 1, "{name}");
            assert_eq!(t.lease_owner.as_deref(), Some("a"), "{name}");
            assert_eq!(t.lease_until, Some(1_250), "{name}");
        }
        assert!(
            store
                .claim_due_timers(250, "b", 1_000, 10)
                .await
                .expect("claim")
                .timers
                .is_empty()
        );
        assert!(
            store
                .claim_due_timers(250, "a", 1_000, 10)
                .await
                .expect("claim")
                .timers
                .is_empty()
        );

        let limited = store
            .claim_due_timers(300, "b", 1_000, 0)
            .await
            .expect("claim")
            .timers;
        assert!(limited.is_empty(), "{name}: limit 0 claims nothing");
        let last = store
            .claim_due_timers(300, "b", 1_000, 5)
            .await
            .expect("claim")
            .timers;
        assert_eq!(last.len(), 1, "{name}");
        assert_eq!(last[0].key, "t/3", "{name}");
    }
}

#[tokio::test]
async fn a_fired_batch_writes_the_effects_of_only_the_timers_still_leased_to_the_owner() {
    for (name, store, _g) in common::stores::stores().await {
        store
            .add_timers(vec![
                timer("b/1", None, 100),
                timer("b/2", None, 100),
                timer("b/3", None, 300),
            ])
            .await
            .expect("add");
        let a = store
            .claim_due_timers(100, "a", 50, 10)
            .await
            .expect("claim a")
            .timers;
        assert_eq!(a.len(), 2, "{name}");
        // b/3 is claimed by another daemon: "a" must not fire it.
        let b = store
            .claim_due_timers(300, "b", 1_000, 10)
            .await
            .expect("claim b")
            .timers;
        let stolen: Vec<&str> = b.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            stolen,
            ["b/1", "b/2", "b/3"],
            "{name}: a's lease ended at 150"
        );
        let fx = |n: &str| FireEffects {
            notifications: vec![
                notification(&format!("n/{n}"), n),
                notification("n/shared", n),
            ],
            audit: vec![audit("timer.fire", n, 310)],
            ..Default::default()
        };
        let by_key = |k: &str| {
            b.iter()
                .find(|t| t.key == k)
                .map(|t| t.id)
                .expect("claimed")
        };
        let batch = vec![(by_key("b/1"), fx("1")), (by_key("b/3"), fx("3"))];
        assert_eq!(
            store.fire_timers("a", 310, &batch).await.expect("fire a"),
            [false, false],
            "{name}: leases held by b"
        );
        assert!(
            store.outbox_after(0, 10).await.expect("outbox").is_empty(),
            "{name}"
        );
        assert_eq!(audit_count(&store).await, 0, "{name}");

        let mut batch = batch;
        batch.push((i64::MAX, fx("gone")));
        assert_eq!(
            store.fire_timers("b", 320, &batch).await.expect("fire b"),
            [true, true, false],
            "{name}: an unknown id is not fired"
        );
        let keys: HashSet<String> = store
            .outbox_after(0, 10)
            .await
            .expect("outbox")
            .into_iter()
            .map(|n| n.key)
            .collect();
        let want: HashSet<String> = ["n/1", "n/3", "n/shared"].map(String::from).into();
        assert_eq!(keys, want, "{name}: one row per key, none for the unfired");
        assert_eq!(audit_count(&store).await, 2, "{name}");
        let left = store.timers_with_prefix("b/").await.expect("timers");
        let states: Vec<(&str, &str)> = left
            .iter()
            .map(|t| (t.key.as_str(), t.state.as_str()))
            .collect();
        assert!(states.contains(&("b/2", "running")), "{name}: {states:?}");
        assert!(states.contains(&("b/1", "fired")), "{name}: {states:?}");
        assert!(states.contains(&("b/3", "fired")), "{name}: {states:?}");
        assert!(
            store
                .fire_timers("b", 330, &[])
                .await
                .expect("empty")
                .is_empty()
        );
    }
}

#[tokio::test]
async fn expired_lease_is_reclaimed_and_the_first_owner_can_no_longer_fire() {
    for (name, store, _g) in common::stores::stores().await {
        store
            .add_timers(vec![timer("t/x", None, 100)])
            .await
            .expect("add");
        let first = store
            .claim_due_timers(100, "a", 50, 10)
            .await
            .expect("claim")
            .timers;
        assert_eq!(first.len(), 1, "{name}");
        let id = first[0].id;
        assert!(
            store
                .claim_due_timers(150, "b", 50, 10)
                .await
                .expect("claim")
                .timers
                .is_empty()
        );
        let second = store
            .claim_due_timers(151, "b", 50, 10)
            .await
            .expect("reclaim")
            .timers;
        assert_eq!(second.len(), 1, "{name}: the lease ended at 150");
        assert_eq!((second[0].id, second[0].attempts), (id, 2), "{name}");
        assert_eq!(second[0].lease_owner.as_deref(), Some("b"), "{name}");

        let effects = FireEffects {
            notifications: vec![notification("n/x", "from a")],
            audit: vec![audit("timer.fire", "t/x", 160)],
            ..Default::default()
        };
        assert!(
            !store
                .fire_timer(id, "a", 160, effects.clone())
                .await
                .expect("fire a")
        );
        assert!(
            store.outbox_after(0, 10).await.expect("outbox").is_empty(),
            "{name}"
        );
        assert_eq!(audit_count(&store).await, 0, "{name}");

        assert!(
            store
                .fire_timer(id, "b", 170, effects.clone())
                .await
                .expect("fire b")
        );
        let t = &store.timers_with_prefix("t/x").await.expect("timer")[0];
        assert_eq!(t.state, TimerState::Fired, "{name}");
        assert_eq!(
            (t.fired_at, t.lease_owner.as_deref(), t.lease_until),
            (Some(170), None, None)
        );
        assert!(
            !store
                .fire_timer(id, "b", 180, effects)
                .await
                .expect("fire twice"),
            "{name}"
        );
        assert_eq!(
            store.outbox_after(0, 10).await.expect("outbox").len(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn fire_timer_applies_notifications_timers_and_round_atomically() {
    for (name, store, _g) in common::stores::stores().await {
        let v = version(&store).await;
        store
            .add_timers(vec![
                timer("kickoff:wf:1", None, 10),
                timer("kickoff:wf:2", None, 20),
                timer("kickoff:wf:3", None, 30),
                timer("kickoff:wf:4", None, 40),
            ])
            .await
            .expect("add");
        let claimed = store
            .claim_due_timers(40, "d", 60_000, 10)
            .await
            .expect("claim")
            .timers;
        let ids: Vec<i64> = claimed.iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), 4, "{name}");

        // A pending (unclaimed) timer cannot be fired.
        store
            .add_timers(vec![timer("later", None, 1_000)])
            .await
            .expect("add");
        let later = store.timers_with_prefix("later").await.expect("later")[0].id;
        assert!(
            !store
                .fire_timer(later, "d", 40, FireEffects::default())
                .await
                .expect("fire")
        );

        let first = FireEffects {
            notifications: vec![notification("n/1", "original")],
            ..Default::default()
        };
        assert!(
            store
                .fire_timer(ids[0], "d", 41, first)
                .await
                .expect("fire 1")
        );

        let kickoff = FireEffects {
            notifications: vec![notification("n/1", "duplicate"), notification("n/2", "new")],
            timers: vec![timer("kickoff:wf:5", None, 50)],
            round: Some((
                round("r2", v, Some("kickoff:wf:2")),
                vec![task("a@u1", "open", Some(500))],
                vec![timer("r2/a", Some("a@u1"), 400)],
            )),
            audit: vec![
                audit("timer.fire", "kickoff:wf:2", 42),
                audit("round.start", "wf", 42),
            ],
        };
        assert!(
            store
                .fire_timer(ids[1], "d", 42, kickoff)
                .await
                .expect("fire 2")
        );
        let outbox = store.outbox_after(0, 10).await.expect("outbox");
        let subjects: Vec<(&str, &str)> = outbox
            .iter()
            .map(|o| (o.key.as_str(), o.subject.as_str()))
            .collect();
        assert_eq!(subjects, [("n/1", "original"), ("n/2", "new")], "{name}");
        assert!(
            outbox
                .iter()
                .all(|o| o.state == OutboxState::Pending && o.attempts == 0),
            "{name}"
        );
        assert_eq!(
            store
                .outbox_after(outbox[0].id, 10)
                .await
                .expect("after")
                .len(),
            1
        );
        assert_eq!(
            store
                .timers_with_prefix("kickoff:wf:5")
                .await
                .expect("next")
                .len(),
            1
        );
        let rounds = store.rounds().await.expect("rounds");
        assert_eq!(rounds.len(), 1, "{name}");
        let round_id = rounds[0].id;
        let a = store
            .task_by_key(round_id, "a@u1")
            .await
            .expect("task")
            .expect("a");
        let r2 = &store.timers_with_prefix("r2/").await.expect("timers")[0];
        assert_eq!(
            (r2.round_id, r2.task_id),
            (Some(round_id), Some(a.id)),
            "{name}"
        );
        assert_eq!(audit_count(&store).await, 2, "{name}");

        // The same kickoff again: the timer fires, no second round.
        let again = FireEffects {
            round: Some((round("r3", v, Some("kickoff:wf:2")), vec![], vec![])),
            audit: vec![audit("timer.fire", "kickoff:wf:3", 43)],
            ..Default::default()
        };
        assert!(
            store
                .fire_timer(ids[2], "d", 43, again)
                .await
                .expect("fire 3")
        );
        assert_eq!(store.rounds().await.expect("rounds").len(), 1, "{name}");
        assert_eq!(audit_count(&store).await, 3, "{name}");

        // Effects that fail leave the timer claimed and nothing written.
        let broken = FireEffects {
            notifications: vec![notification("n/3", "never")],
            timers: vec![NewTimer {
                round_id: Some(round_id),
                ..timer("bad", Some("missing"), 60)
            }],
            ..Default::default()
        };
        let err = store
            .fire_timer(ids[3], "d", 44, broken)
            .await
            .expect_err("broken");
        assert!(matches!(err, StoreError::NotFound(_)), "{name}: {err}");
        let t = &store
            .timers_with_prefix("kickoff:wf:4")
            .await
            .expect("timer")[0];
        assert_eq!((t.state, t.fired_at), (TimerState::Running, None), "{name}");
        assert_eq!(
            store.outbox_after(0, 10).await.expect("outbox").len(),
            2,
            "{name}"
        );
    }
}

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

/// A claim at `now` by `owner`: whole messages, no digest wait, no budget.
fn claim(now: Millis, owner: &str) -> yanzhen::store::OutboxClaim {
    yanzhen::store::OutboxClaim {
        now,
        owner: owner.into(),
        lease_ms: 1000,
        hold: yanzhen::store::DigestHold::new(0, 0),
        max_messages: 10,
        per_minute: Default::default(),
    }
}

/// Enqueue notifications through a fired timer, as the engine does.
async fn enqueue(store: &Arc<dyn Store>, key: &str, notifications: Vec<NewNotification>) {
    store.add_timers(vec![timer(key, None, 1)]).await.unwrap();
    let claimed = store
        .claim_due_timers(10, "d", 1000, 10)
        .await
        .unwrap()
        .timers;
    let effects = yanzhen::store::FireEffects {
        notifications,
        ..Default::default()
    };
    assert!(
        store
            .fire_timer(claimed[0].id, "d", 10, effects)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn outbox_rows_are_claimed_once_retried_after_their_backoff_and_dead_letters_add_notices() {
    use yanzhen::store::Delivery;
    for (name, store, _g) in common::stores::stores().await {
        let (mut a, mut b) = (notification("n1", "一"), notification("n2", "二"));
        b.kind = MessageKind::Kickoff; // not merged with the reminder
        a.address = "office-a".into();
        enqueue(&store, "t/outbox", vec![a, b]).await;

        let claimed = store.claim_outbox(&claim(10, "s1")).await.unwrap();
        assert_eq!(claimed.messages.len(), 2, "{name}");
        let rows: Vec<_> = claimed.messages.into_iter().flatten().collect();
        assert!(
            rows.iter()
                .all(|r| r.state == OutboxState::Sending && r.attempts == 0),
            "{name}: a claim is not an attempt"
        );
        assert!(
            store
                .claim_outbox(&claim(10, "s2"))
                .await
                .unwrap()
                .messages
                .is_empty(),
            "{name}: claimed once"
        );
        assert!(
            store
                .begin_attempt(&[rows[0].id, rows[1].id], "s1", 1010, "m@yanzhen")
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !store
                .begin_attempt(&[rows[0].id], "s2", 1010, "other@yanzhen")
                .await
                .unwrap(),
            "{name}: not s2's claim"
        );
        let n = store
            .settle_outbox(
                &[rows[0].id],
                "s1",
                Delivery::Retry {
                    at: 500,
                    error: "transient failure: 451".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(n, 1, "{name}");
        let hold = yanzhen::store::DigestHold::new(0, 0);
        assert_eq!(
            store.next_outbox_at(hold).await.unwrap(),
            Some(500),
            "{name}: the retry comes before the other row's lease expiry"
        );
        assert!(
            store
                .claim_outbox(&claim(499, "s2"))
                .await
                .unwrap()
                .messages
                .is_empty(),
            "{name}: not before its backoff"
        );
        let again = store
            .claim_outbox(&claim(500, "s2"))
            .await
            .unwrap()
            .messages;
        assert_eq!(again.len(), 1, "{name}");
        assert_eq!(
            (again[0][0].attempts, again[0][0].message_id.as_deref()),
            (1, Some("m@yanzhen")),
            "{name}: one attempt so far, the Message-ID fixed at it"
        );
        let again = &again[0];
        // s1 lost its claim on nothing else; a settle by the wrong owner changes nothing.
        assert_eq!(
            store
                .settle_outbox(&[again[0].id], "s1", Delivery::Sent { at: 600 })
                .await
                .unwrap(),
            0,
            "{name}"
        );
        let notice = notification("dead:n1", "【投递失败】");
        let moved = store
            .settle_outbox(
                &[again[0].id],
                "s2",
                Delivery::Dead {
                    error: "permanent failure: 550".into(),
                    notices: vec![notice],
                },
            )
            .await
            .unwrap();
        assert_eq!(moved, 1, "{name}");
        assert_eq!(
            store
                .settle_outbox(&[rows[1].id], "s1", Delivery::Sent { at: 600 })
                .await
                .unwrap(),
            1,
            "{name}"
        );
        let all = store.outbox_after(0, 10).await.unwrap();
        let states: Vec<(&str, &str)> = all
            .iter()
            .map(|r| (r.key.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [("n1", "dead"), ("n2", "sent"), ("dead:n1", "pending")],
            "{name}"
        );
    }
}

#[tokio::test]
async fn claiming_and_handing_back_count_no_attempt_only_a_started_send_does() {
    for (name, store, _g) in common::stores::stores().await {
        enqueue(&store, "t/attempts", vec![notification("n1", "一")]).await;
        let first = store.claim_outbox(&claim(10, "s1")).await.unwrap().messages;
        let ids: Vec<i64> = first[0].iter().map(|r| r.id).collect();
        assert_eq!(store.release_outbox(&ids, "s1").await.unwrap(), 1, "{name}");
        // Claimed again, and this time the lease runs out unsent (a sender that died
        // between claim and send).
        let second = store.claim_outbox(&claim(20, "s2")).await.unwrap().messages;
        assert_eq!(second.len(), 1, "{name}");
        let third = store
            .claim_outbox(&claim(2000, "s3"))
            .await
            .unwrap()
            .messages;
        assert_eq!(third.len(), 1, "{name}: the expired lease is claimable");
        assert_eq!(third[0][0].attempts, 0, "{name}: three claims, no attempt");
        assert!(
            store
                .begin_attempt(&ids, "s3", 3000, "m@yanzhen")
                .await
                .unwrap()
        );
        let row = &store.outbox_after(0, 10).await.unwrap()[0];
        assert_eq!(row.attempts, 1, "{name}: one send begun");
    }
}

#[tokio::test]
async fn one_rate_budget_is_shared_by_every_claimer_and_refunds_come_back() {
    for (name, store, _g) in common::stores::stores().await {
        let notes = (0..10)
            .map(|i| {
                let mut n = notification(&format!("k{i}"), "提醒");
                n.kind = MessageKind::Kickoff;
                n.channel = OutboxChannel::Email;
                n.address = format!("b{i}@example.gov.cn");
                n
            })
            .collect();
        enqueue(&store, "t/budget", notes).await;
        let limited = |owner: &str, now: Millis| {
            let mut c = claim(now, owner);
            c.per_minute.insert("email".into(), 3);
            c
        };
        let a = store.claim_outbox(&limited("a", 10)).await.unwrap();
        assert_eq!(a.messages.len(), 3, "{name}: the burst of 3");
        let b = store.claim_outbox(&limited("b", 10)).await.unwrap();
        assert!(b.messages.is_empty(), "{name}: b draws on the same budget");
        assert_eq!(
            b.throttled_until,
            Some(20_010),
            "{name}: one message every 20 s from now"
        );
        store.refund_budget("email", 3, 1).await.unwrap();
        let b = store.claim_outbox(&limited("b", 10)).await.unwrap();
        assert_eq!(b.messages.len(), 1, "{name}: the refunded message");
        let later = store.claim_outbox(&limited("b", 20_010)).await.unwrap();
        assert_eq!(later.messages.len(), 1, "{name}: one more after 20 s");
    }
}

#[tokio::test]
async fn a_second_name_for_a_locked_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.db");
    let first = yanzhen::store::SqliteStore::open(&format!("sqlite://{}", real.display()))
        .await
        .expect("first open");
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let dotted = dir.path().join(".").join("real.db");
    for other in [&link, &dotted] {
        let err = yanzhen::store::SqliteStore::open(&format!("sqlite://{}", other.display()))
            .await
            .expect_err("a second daemon on the same file");
        assert!(
            matches!(err, yanzhen::store::StoreError::Locked { .. }),
            "{}: {err}",
            other.display()
        );
    }
    drop(first);
    yanzhen::store::SqliteStore::open(&format!("sqlite://{}", link.display()))
        .await
        .expect("free once the first store is gone");
}

// ---------- stored data that does not parse ----------

/// The `Corrupt` inside an error, or a panic saying what came instead.
fn corrupt(e: StoreError) -> yanzhen::store::Corrupt {
    match e {
        StoreError::Corrupt(c) => c,
        other => panic!("expected a corrupt row, got {other}"),
    }
}

#[tokio::test]
async fn a_row_that_does_not_parse_fails_the_read_naming_table_row_column_and_value() {
    for (name, store, g) in common::stores::stores().await {
        let round_id = round_ab(&store, "c").await;
        let a = store.task_by_key(round_id, "a@u1").await.unwrap().unwrap();
        common::stores::write_raw(&g, "tasks", "state", a.id, "'opne'").await;
        let e = corrupt(store.task(a.id).await.expect_err("a state that is none"));
        assert_eq!(
            e.to_string(),
            format!(
                "row {} of table `tasks` has state `opne`, which is not a task state",
                a.id
            ),
            "{name}"
        );
        let e = corrupt(store.tasks(round_id).await.expect_err("the round's tasks"));
        assert_eq!(
            (e.table, e.column, e.value.as_str()),
            ("tasks", "state", "opne"),
            "{name}"
        );

        let b = store.task_by_key(round_id, "b@u1").await.unwrap().unwrap();
        common::stores::write_raw(&g, "tasks", "due_at", b.id, &i64::MAX.to_string()).await;
        let e = corrupt(store.task(b.id).await.expect_err("an instant out of range"));
        assert_eq!(
            (e.table, e.id.clone(), e.column, e.value.clone()),
            ("tasks", b.id.to_string(), "due_at", i64::MAX.to_string()),
            "{name}: not 1970"
        );

        let stage = store.timers_with_prefix("c/stage").await.unwrap()[0].id;
        common::stores::write_raw(&g, "timers", "kind", stage, "'stage_opne'").await;
        let e = corrupt(
            store
                .timers_with_prefix("c/")
                .await
                .expect_err("a kind that is none"),
        );
        assert_eq!(
            (e.table, e.id.clone(), e.column, e.value.as_str()),
            ("timers", stage.to_string(), "kind", "stage_opne"),
            "{name}"
        );

        common::stores::write_raw(&g, "rounds", "params_json", round_id, "'{\"year\": 2026'").await;
        let e = corrupt(
            store
                .round(round_id)
                .await
                .expect_err("params that do not parse"),
        );
        assert_eq!((e.table, e.column), ("rounds", "params_json"), "{name}");
        assert!(e.problem.starts_with("does not parse"), "{name}: {e}");
    }
}

#[tokio::test]
async fn a_claimed_timer_that_does_not_parse_is_returned_apart_and_the_claim_goes_on() {
    for (name, store, g) in common::stores::stores().await {
        store
            .add_timers(vec![timer("p/good", None, 10), timer("p/bad", None, 20)])
            .await
            .unwrap();
        let bad = store.timers_with_prefix("p/bad").await.unwrap()[0].id;
        common::stores::write_raw(
            &g,
            "timers",
            "payload_json",
            bad,
            "'{\"provisional\": \"yes\"}'",
        )
        .await;
        let claimed = store.claim_due_timers(100, "d", 60_000, 10).await.unwrap();
        let keys: Vec<&str> = claimed.timers.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["p/good"], "{name}");
        assert_eq!(claimed.corrupt.len(), 1, "{name}");
        let c = &claimed.corrupt[0];
        assert_eq!((c.id, c.key.as_str()), (bad, "p/bad"), "{name}");
        assert_eq!(
            (c.error.table, c.error.column, c.error.value.as_str()),
            ("timers", "payload_json", "{\"provisional\": \"yes\"}"),
            "{name}"
        );
        // Still claimed by us: the caller fires it (with an error entry).
        let fired = store
            .fire_timers("d", 100, &[(bad, FireEffects::default())])
            .await
            .unwrap();
        assert_eq!(fired, [true], "{name}");
        assert!(
            store
                .claim_due_timers(200_000, "e", 60_000, 10)
                .await
                .unwrap()
                .corrupt
                .is_empty(),
            "{name}: fired, it does not come back"
        );
    }
}

#[tokio::test]
async fn a_claimed_outbox_row_that_does_not_parse_leaves_the_queue_as_dead_with_the_reason() {
    for (name, store, g) in common::stores::stores().await {
        let (mut a, b) = (notification("q1", "一"), notification("q2", "二"));
        a.address = "office-a".into();
        enqueue(&store, "t/q", vec![a, b]).await;
        let ids: Vec<i64> = store
            .outbox_after(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        common::stores::write_raw(&g, "outbox", "channel", ids[0], "'emial'").await;
        let claimed = store.claim_outbox(&claim(10, "s1")).await.unwrap();
        let sent: Vec<i64> = claimed.messages.iter().flatten().map(|r| r.id).collect();
        assert_eq!(sent, [ids[1]], "{name}: the other row goes out");
        assert_eq!(claimed.corrupt.len(), 1, "{name}");
        assert_eq!(
            claimed.corrupt[0].to_string(),
            format!(
                "row {} of table `outbox` has channel `emial`, which is not an outbox channel",
                ids[0]
            ),
            "{name}"
        );
        assert!(
            store
                .claim_outbox(&claim(100_000, "s2"))
                .await
                .unwrap()
                .corrupt
                .is_empty(),
            "{name}: dead, it is not claimed again"
        );
        assert_eq!(store.counts(10).await.unwrap().outbox_dead, 1, "{name}");
    }
}
