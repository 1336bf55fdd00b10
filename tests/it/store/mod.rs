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

mod outbox;
mod tasks;

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
        person: None,
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
        submission: None,
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
