//! Timers whose data does not parse, and reminders due together.

use super::*;

/// A round of the shipped workflow and two of its reminders due at the same instant (for
/// different assignees), the first instant at which two are.
async fn two_reminders_due_together(
    e: &Engine,
    store: &Arc<dyn Store>,
) -> (i64, yanzhen::store::TimerRow, yanzhen::store::TimerRow) {
    let id = e
        .start_round(start("community-reserve-selection", date(2019, 7, 1), None))
        .await
        .expect("start");
    let pending = store
        .pending_timers(Some(id), 10_000)
        .await
        .expect("timers");
    let mut by_due: BTreeMap<i64, Vec<yanzhen::store::TimerRow>> = BTreeMap::new();
    for t in pending
        .into_iter()
        .filter(|t| t.kind == yanzhen::core::state::TimerKind::Reminder)
    {
        by_due.entry(t.due_at).or_default().push(t);
    }
    let mut pair = by_due
        .into_values()
        .find(|ts| ts.len() >= 2)
        .expect("two reminders due together");
    let second = pair.swap_remove(1);
    (id, pair.swap_remove(0), second)
}

/// The `timer.error` entries, by subject (the timer key), with their error text.
async fn timer_errors(store: &Arc<dyn Store>) -> Vec<(String, String)> {
    store
        .audit_after(0, i64::MAX)
        .await
        .expect("audit")
        .into_iter()
        .filter(|a| a.entry.action == "timer.error")
        .map(|a| {
            let d: serde_json::Value = serde_json::from_str(&a.entry.detail_json).expect("json");
            (
                a.entry.subject,
                d["error"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Whether a timer's notifications were enqueued.
async fn told(store: &Arc<dyn Store>, timer_key: &str) -> bool {
    outbox(store)
        .await
        .iter()
        .any(|o| o.key.starts_with(&format!("{timer_key}#")))
}

#[tokio::test]
async fn a_timer_whose_payload_does_not_parse_fires_with_an_error_naming_the_row_and_the_rest_fire()
{
    for (name, store, g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let (_, bad, good) = two_reminders_due_together(&e, &store).await;
        common::stores::write_raw(&g, "timers", "payload_json", bad.id, "'{\"recipient\": 5}'")
            .await;
        clock.set(yanzhen::engine::from_ms(bad.due_at));
        e.fire_due().await.expect("the batch fires");
        assert!(
            told(&store, &good.key).await,
            "{name}: the other reminder goes out"
        );
        assert!(
            !told(&store, &bad.key).await,
            "{name}: nothing is guessed for the bad one"
        );
        let errors = timer_errors(&store).await;
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert_eq!(errors[0].0, bad.key, "{name}");
        let want = format!(
            "row {} of table `timers` has payload_json `{{\"recipient\": 5}}`",
            bad.id
        );
        assert!(errors[0].1.starts_with(&want), "{name}: {}", errors[0].1);
        assert!(
            e.fire_due().await.expect("again").is_empty(),
            "{name}: fired once, not retried"
        );
    }
}

#[tokio::test]
async fn a_timer_whose_task_row_does_not_parse_fails_alone_with_an_error_naming_the_row() {
    for (name, store, g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let (_, bad, good) = two_reminders_due_together(&e, &store).await;
        let task = bad.task_id.expect("a task timer");
        common::stores::write_raw(&g, "tasks", "assignee_kind", task, "'unti'").await;
        clock.set(yanzhen::engine::from_ms(bad.due_at));
        e.fire_due().await.expect("the batch fires");
        assert!(
            told(&store, &good.key).await,
            "{name}: the other reminder goes out"
        );
        assert!(!told(&store, &bad.key).await, "{name}");
        let errors = timer_errors(&store).await;
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert_eq!(
            errors[0],
            (
                bad.key.clone(),
                format!(
                    "row {task} of table `tasks` has assignee_kind `unti`, which is not an assignee kind"
                )
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_round_whose_parameters_do_not_parse_is_reported_not_planned_with_none() {
    for (name, store, g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let (id, bad, good) = two_reminders_due_together(&e, &store).await;
        common::stores::write_raw(&g, "rounds", "params_json", id, "'{\"year\": 2019'").await;
        let err = e
            .status(id)
            .await
            .expect_err("status re-plans the round")
            .to_string();
        assert!(
            err.starts_with(&format!("row {id} of table `rounds` has params_json `{{\"year\": 2019`, which does not parse")),
            "{name}: {err}"
        );
        let err = e
            .reproject(id, None, &[], true, "test", "dry run")
            .await
            .expect_err("re-projection re-plans it too")
            .to_string();
        assert!(
            err.contains("table `rounds` has params_json"),
            "{name}: {err}"
        );
        // Its timers need the round (templates, parameters): they fire with the error.
        clock.set(yanzhen::engine::from_ms(bad.due_at));
        e.fire_due().await.expect("the batch fires");
        assert!(
            outbox(&store).await.is_empty(),
            "{name}: nothing planned with no parameters"
        );
        let errors = timer_errors(&store).await;
        let keys: HashSet<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            keys.contains(bad.key.as_str()) && keys.contains(good.key.as_str()),
            "{name}: {keys:?}"
        );
        assert!(
            errors
                .iter()
                .all(|(_, err)| err.contains("table `rounds` has params_json")),
            "{name}: {errors:?}"
        );
    }
}
