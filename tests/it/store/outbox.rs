//! The outbox queue, the shared rate budget, and rows that do not parse.

use super::*;

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
