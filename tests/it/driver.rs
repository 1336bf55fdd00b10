//! The one driver of time: `serve`'s app under a virtual clock and `simulate` send the same
//! messages at the same instants for the same scenario — completions included, digests
//! merged — and `simulate` lists what was sent, not the rows queued.

use crate::common;
use crate::common::{at, date};

use chrono::{TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use common::smtp::{TestSmtp, deliver_to};
use std::collections::BTreeMap;
use std::sync::Arc;
use yanzhen::core::state::Rights;
use yanzhen::engine::StartRound;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::VirtualClock;
use yanzhen::runtime::simulate::{self, Completion, Effect, Scenario};
use yanzhen::store::Store;

fn completion(task: &str, assignee: &str, at: &str) -> Completion {
    Completion {
        task: task.into(),
        assignee: assignee.into(),
        at: at.into(),
    }
}

/// Seed 000's round for three communities: two hold their meeting, dongguan nominates on
/// time, xiguan late (after its deadline, before its first escalation), nanmen never.
fn scenario() -> Scenario {
    Scenario {
        workflow: "community-reserve-selection".into(),
        start: date(2019, 7, 1),
        until: date(2019, 7, 25),
        params: BTreeMap::new(),
        branches: Some(vec!["dongguan".into(), "xiguan".into(), "nanmen".into()]),
        completions: vec![
            completion("deployment_meeting", "dongguan", "2019-07-03T10:00"),
            completion("deployment_meeting", "xiguan", "2019-07-04T16:00"),
            completion("nomination", "dongguan", "2019-07-11T09:30"),
            completion("nomination", "xiguan", "2019-07-15T11:00"),
        ],
    }
}

/// The scenario through `serve`'s path: the app `serve` builds over `store`, the real HTTP
/// server (completions are POSTs to the JSON API, as an office would make them), messages
/// delivered to a real SMTP server, time moved by the app's driver under a virtual clock.
/// Returns the effects, in `simulate`'s terms, and what the SMTP server received as
/// (recipient, subject).
async fn serve_path(
    store: Arc<dyn Store>,
    sc: &Scenario,
    cat: yanzhen::catalog::Catalog,
) -> (Vec<Effect>, Vec<(String, String)>, usize) {
    let smtp = TestSmtp::start();
    let mut cat = cat;
    cat.config.notify = deliver_to(smtp.port());
    let titles: BTreeMap<String, String> = cat.workflows[&sc.workflow]
        .workflow
        .stages
        .iter()
        .map(|s| (s.id.value.clone(), s.title.clone()))
        .collect();
    let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
    let (tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
    let app = App::build(
        cat,
        store.clone(),
        clock.clone(),
        AppOptions {
            observer: Some(tx),
            ..AppOptions::new("serve")
        },
    )
    .await
    .expect("app");
    let server = common::http::serve(app.http.clone()).await;
    let base = server.base.clone();
    let token = common::http::token(store.as_ref(), "zzb", Rights::Admin).await;
    let round = app
        .engine
        .start_round(StartRound {
            workflow: sc.workflow.clone(),
            start: sc.start,
            params: sc.params.clone(),
            units: sc.branches.clone(),
            actor: "test".into(),
        })
        .await
        .expect("start");
    let http = reqwest::Client::new();
    let mut effects = Vec::new();
    let mut fired = Vec::new();
    for c in &sc.completions {
        let t = Shanghai
            .from_local_datetime(
                &chrono::NaiveDateTime::parse_from_str(&c.at, "%Y-%m-%dT%H:%M").expect("at"),
            )
            .unwrap()
            .with_timezone(&Utc);
        fired.extend(app.driver.run_before(&clock, t).await.expect("run"));
        let task = store
            .task_by_key(round, &format!("{}@{}", c.task, c.assignee))
            .await
            .expect("task")
            .expect("exists");
        let resp = http
            .post(format!("{base}/api/tasks/{}/complete", task.id))
            .bearer_auth(&token)
            .send()
            .await
            .expect("POST complete");
        assert!(resp.status().is_success(), "{}", resp.status());
        let done: serde_json::Value = resp.json().await.expect("json");
        effects.push(Effect {
            at: t,
            what: "complete".into(),
            kind: done["key"].as_str().expect("key").into(),
            channel: String::new(),
            recipient: done["assignee"]["name"].as_str().expect("name").into(),
            text: done["title"].as_str().expect("title").into(),
        });
    }
    let end = at(2019, 7, 25, 23, 59) + chrono::Duration::seconds(59);
    fired.extend(app.driver.run_until(&clock, end).await.expect("run"));
    server.stop().await;
    effects.extend(simulate::stage_effects(&fired, &titles));
    let mut messages = Vec::new();
    while let Ok(m) = sent.try_recv() {
        messages.push(m);
    }
    effects.extend(simulate::notifications(&messages));
    simulate::sort_effects(&mut effects);
    let mut received: Vec<(String, String)> = smtp
        .messages()
        .iter()
        .map(|m| {
            let mail = mailparse::parse_mail(&m.data).expect("mail");
            let subject = mail
                .headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case("Subject"))
                .map(|h| h.get_value())
                .unwrap_or_default();
            (m.to.join(","), subject)
        })
        .collect();
    received.sort();
    let rows = store.outbox_after(0, i64::MAX).await.expect("outbox").len();
    (effects, received, rows)
}

#[tokio::test]
async fn serve_under_a_virtual_clock_and_simulate_send_the_same_messages_for_a_scenario_with_completions()
 {
    let sc = scenario();
    let cat = common::catalog_with(&[], true);
    let simulated = simulate::run(&sc, cat.clone()).await.expect("simulate");
    let count = |what: &str| simulated.iter().filter(|e| e.what == what).count();
    assert_eq!(count("complete"), 4, "{simulated:#?}");
    assert_eq!(count("stage"), 6, "{simulated:#?}");
    assert!(count("notify") > 20, "{simulated:#?}");
    assert!(
        simulated
            .iter()
            .any(|e| e.kind == "digest" || e.text.contains("项工作")),
        "several rows to one recipient in one hour went as one message: {simulated:#?}"
    );
    for (name, store, _g) in common::stores::stores().await {
        let (served, received, rows) = serve_path(store, &sc, cat.clone()).await;
        assert_eq!(served, simulated, "{name}");
        // What the observer reported is what the SMTP server got: one mail per message.
        let mut expected: Vec<(String, String)> = served
            .iter()
            .filter(|e| e.what == "notify")
            .map(|e| (e.recipient.clone(), e.text.clone()))
            .collect();
        expected.sort();
        assert_eq!(received, expected, "{name}");
        assert!(
            received.len() < rows,
            "{name}: digests merged rows ({} mails for {rows} rows)",
            received.len()
        );
    }
}

#[tokio::test]
async fn simulate_lists_one_message_per_digest_when_it_is_sent_not_each_queued_row() {
    // Two tasks of one branch due together: their reminders go to one recipient in the same
    // hour, so serve sends one digest after the 15-minute window.
    const TWO: &str = r#"id: two
title: 两项
stages:
  - id: s
    title: 阶段
    closes: {from: round_start, days: 5}
    tasks:
      - id: a
        title: 报送名册
        assignee: {group: branches}
        due: {from: stage_close}
        reminders:
          before: [{days: 1}]
      - id: b
        title: 报送总结
        assignee: {group: branches}
        due: {from: stage_close}
        reminders:
          before: [{days: 1}]
"#;
    let sc = Scenario {
        workflow: "two".into(),
        start: date(2025, 3, 3),
        until: date(2025, 3, 7),
        params: BTreeMap::new(),
        branches: Some(vec!["dongguan".into()]),
        completions: vec![],
    };
    let effects = simulate::run(&sc, common::catalog_with(&[TWO], false))
        .await
        .expect("simulate");
    let to_dongguan: Vec<&Effect> = effects
        .iter()
        .filter(|e| e.what == "notify" && e.recipient.starts_with("dongguan@"))
        .collect();
    // Reminders of both tasks at 3-7 18:00: one message, with the digest's own subject,
    // sent when its 15-minute window ends.
    assert_eq!(
        to_dongguan.len(),
        1,
        "one message for both tasks: {effects:#?}"
    );
    assert_eq!(to_dongguan[0].kind, "digest");
    assert_eq!(to_dongguan[0].text, "【工作提醒】您有2项工作需要办理");
    assert_eq!(to_dongguan[0].at, at(2025, 3, 7, 18, 15));
}
