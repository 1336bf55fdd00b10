//! Counting rules act on their check day by themselves (#16 item 4): the shipped
//! cadre-talks rule (two talks a year, checked on 20 December) has one durable timer in the
//! timer table; when the manual clock passes 20 December 09:00 the office and the short
//! person's branch each get one mail naming the person short and not the one with enough
//! talks; running on, ensuring again and restarting send nothing more. Real stores (SQLite
//! and PostgreSQL), a real SMTP server, time under a virtual clock through the driver.

use crate::common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use common::smtp::TestSmtp;
use std::collections::BTreeMap;
use std::sync::Arc;
use yanzhen::core::pool::Field;
use yanzhen::core::state::TimerState;
use yanzhen::engine::StartRound;
use yanzhen::pool::Pool;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::VirtualClock;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("time")
        .with_timezone(&Utc)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

/// (recipient, subject, text) of every count-check mail the server got.
fn count_mails(smtp: &TestSmtp) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = smtp
        .messages()
        .iter()
        .filter_map(|m| {
            let mail = mailparse::parse_mail(&m.data).expect("mail");
            let subject = mail
                .headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case("Subject"))
                .map(|h| h.get_value())
                .unwrap_or_default();
            let text = mail
                .subparts
                .iter()
                .find(|p| p.ctype.mimetype == "text/plain")
                .unwrap_or(&mail)
                .get_body()
                .unwrap_or_default();
            subject
                .contains("次数不足名单")
                .then(|| (m.to.join(","), subject, text))
        })
        .collect();
    out.sort();
    out
}

async fn app(
    store: Arc<dyn yanzhen::store::Store>,
    clock: Arc<VirtualClock>,
    port: u16,
    owner: &str,
) -> App {
    let text =
        std::fs::read_to_string(common::root().join("workflows/cadre-talks.yaml")).expect("read");
    let mut cat = common::catalog_with(&[&text], false);
    cat.config.notify = common::smtp::deliver_to(port);
    let app = App::build(cat, store, clock, AppOptions::new(owner))
        .await
        .expect("app");
    // What the daemon does at start-up.
    app.engine.ensure_count_checks().await.expect("ensure");
    app
}

#[tokio::test]
async fn on_the_check_day_the_office_and_the_branch_get_one_list_naming_only_the_person_short() {
    for (name, store, _g) in common::stores::stores().await {
        let smtp = TestSmtp::start();
        let clock = Arc::new(VirtualClock::new(at(2026, 1, 5, 9)));
        let a = app(store.clone(), clock.clone(), smtp.port(), "a").await;
        a.engine.ensure_count_checks().await.expect("ensure again");
        let timers = store.timers_with_prefix("counts:").await.expect("timers");
        assert_eq!(
            timers.len(),
            1,
            "{name}: one timer row however often ensured"
        );
        assert_eq!(
            timers[0].key, "counts:cadre-talks:talks_per_year:2026",
            "{name}"
        );
        assert_eq!(
            timers[0].due_at,
            at(2026, 12, 20, 9).timestamp_millis(),
            "{name}"
        );

        a.engine
            .start_round(StartRound {
                workflow: "cadre-talks".into(),
                start: date(2026, 1, 5),
                params: BTreeMap::new(),
                units: None,
                actor: "test".into(),
            })
            .await
            .expect("start");
        let pool = Pool::new(&a.engine);
        let person = |n: &str, unit: &str| {
            vec![
                (Field::Name, n.to_string()),
                (Field::Unit, unit.to_string()),
                (Field::Tier, "1".to_string()),
                (Field::Birth, "1990.05".to_string()),
            ]
        };
        let one = pool
            .add(&person("周晓明", "dongguan"), "test")
            .await
            .expect("add")
            .id;
        let two = pool
            .add(&person("吴丽", "nanmen"), "test")
            .await
            .expect("add")
            .id;
        for (who, day) in [
            (one, date(2026, 3, 2)),
            (two, date(2026, 4, 1)),
            (two, date(2026, 9, 1)),
        ] {
            pool.record_event(&who.to_string(), "routine_talk", day, None, "test")
                .await
                .expect("record");
        }

        a.driver
            .run_until(&clock, at(2026, 12, 20, 8))
            .await
            .expect("run");
        assert!(
            count_mails(&smtp).is_empty(),
            "{name}: nothing before the check day"
        );

        a.driver
            .run_until(&clock, at(2026, 12, 21, 9))
            .await
            .expect("run");
        let mails = count_mails(&smtp);
        let cat = a.engine.catalog();
        let emails = |contacts: &[yanzhen::core::directory::Contact]| -> Vec<String> {
            contacts.iter().filter_map(|c| c.email.clone()).collect()
        };
        let mut want: Vec<String> = emails(
            &cat.directory
                .role(&cat.config.notify.dead_letter_role)
                .expect("office role")
                .contacts,
        );
        want.extend(emails(
            &cat.directory.unit("dongguan").expect("dongguan").contacts,
        ));
        want.sort();
        let mut got: Vec<String> = mails.iter().map(|m| m.0.clone()).collect();
        got.sort();
        assert_eq!(
            got, want,
            "{name}: one mail to the office and one to the branch"
        );
        let branch = &cat.directory.unit("dongguan").expect("dongguan").name;
        for (to, subject, text) in &mails {
            assert_eq!(
                subject, "谈心谈话次数不足名单（2026年，1人）",
                "{name}: {to}"
            );
            assert!(
                text.contains(&format!(
                    "周晓明（{branch}）：2026年谈心谈话共1次，应不少于2次"
                )),
                "{name}: {to}: {text}"
            );
            assert!(
                !text.contains("吴丽"),
                "{name}: {to}: the one with two talks is not named"
            );
        }

        // Running on, ensuring again and a second daemon on the same store: nothing more
        // for 2026; next year's check waits for 20 December 2027.
        a.engine.ensure_count_checks().await.expect("ensure");
        let b = app(store.clone(), clock.clone(), smtp.port(), "b").await;
        b.driver
            .run_until(&clock, at(2027, 1, 10, 9))
            .await
            .expect("run");
        a.driver
            .run_until(&clock, at(2027, 1, 11, 9))
            .await
            .expect("run");
        assert_eq!(count_mails(&smtp).len(), want.len(), "{name}: no duplicate");
        let timers = store.timers_with_prefix("counts:").await.expect("timers");
        let states: Vec<(String, TimerState, i64)> = timers
            .iter()
            .map(|t| (t.key.clone(), t.state, t.due_at))
            .collect();
        assert_eq!(
            states,
            vec![
                (
                    "counts:cadre-talks:talks_per_year:2026".to_string(),
                    TimerState::Fired,
                    at(2026, 12, 20, 9).timestamp_millis()
                ),
                (
                    "counts:cadre-talks:talks_per_year:2027".to_string(),
                    TimerState::Pending,
                    at(2027, 12, 20, 9).timestamp_millis()
                ),
            ],
            "{name}"
        );
    }
}
