//! The reserve pool's operations, shared by the CLI (`yanzhen pool`, `yanzhen event`), the
//! JSON API (`/api/people`) and the console: add, edit and remove people, import and export
//! the roster, record events. Each reads the clock once (the edge), sets fields through the
//! pure [`crate::core::pool`], and writes through the store in one transaction with its
//! audit entries.

use crate::engine::event::Occurrence;
use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::core::pool::{Ctx, Field, Person, PersonStatus, Reason, TierNames};
use crate::core::roster::RosterRow;
use crate::core::roster::{self, Format, Problem};
use crate::engine::{Engine, local_date, ms};
use crate::store::{
    EventFilter, EventRow, NewEvent, PeopleFilter, PeopleWriter, PersonRow, PoolWrite, StoreError,
};

/// Rows of a roster read, matched and written at a time by [`Pool::import`].
pub const IMPORT_SLICE: usize = 1000;

/// What a pool operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Field values refused (each with its reason).
    #[error("{}", invalid_text(.0))]
    Invalid(Vec<(Field, Reason)>),
    /// No such person.
    #[error("{0} not found")]
    NotFound(String),
    /// A name that several people share.
    #[error("{0}")]
    Ambiguous(String),
    /// An event kind no loaded workflow declares.
    #[error("unknown event kind `{kind}`; known: {known}")]
    UnknownKind {
        /// What was given.
        kind: String,
        /// The kinds the workflows declare.
        known: String,
    },
    /// A roster with bad rows (and no `--skip-bad`), or one that cannot be read at all.
    #[error("the roster has {} problem(s); nothing was imported", .0.len())]
    BadRoster(Vec<Problem>),
    /// The workbook could not be written.
    #[error(transparent)]
    Write(#[from] roster::WriteError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine could not add the tasks an event owes.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

fn invalid_text(errors: &[(Field, Reason)]) -> String {
    errors
        .iter()
        .map(|(f, r)| format!("{} ({}): {}", f.heading(), f.key(), r))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result alias.
pub type Result<T> = std::result::Result<T, PoolError>;

/// A recorded event and the tasks it owes (one per workflow task due from it, in every
/// running round the person's branch takes part in).
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The stored event.
    pub event: EventRow,
    /// The task instances it added.
    pub owed: Vec<crate::store::TaskRow>,
}

/// What an import did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// People added.
    pub added: usize,
    /// People already in the pool (same name, unit and birth) whose record changed.
    pub updated: usize,
    /// People already in the pool, unchanged.
    pub unchanged: usize,
    /// The problems of the rows left out (`skip_bad`).
    pub skipped: Vec<Problem>,
    /// What was ignored (unknown headings, sheets without a 姓名 column).
    pub warnings: Vec<Problem>,
    /// Nothing was written.
    pub dry_run: bool,
}

/// The pool's view of the engine: its catalog, tier names and today, read once.
pub struct Pool<'a> {
    engine: &'a Engine,
    catalog: std::sync::Arc<Catalog>,
    tiers: TierNames,
    today: NaiveDate,
}

impl<'a> Pool<'a> {
    /// The pool of an engine, with today by its clock in the office's time zone.
    pub fn new(engine: &'a Engine) -> Pool<'a> {
        let catalog = engine.catalog();
        let tiers = catalog.config.pool.tiers();
        let today = local_date(engine.clock().now(), catalog.config.tz());
        Pool {
            engine,
            catalog,
            tiers,
            today,
        }
    }

    /// The tier names.
    pub fn tiers(&self) -> &TierNames {
        &self.tiers
    }

    /// The catalog read when this view was made.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Today in the office's time zone.
    pub fn today(&self) -> NaiveDate {
        self.today
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            directory: &self.catalog.directory,
            tiers: &self.tiers,
            today: self.today,
        }
    }

    fn who(&self, actor: &str, action: &str) -> PoolWrite {
        PoolWrite {
            actor: actor.to_string(),
            at: ms(self.engine.clock().now()),
            action: action.to_string(),
        }
    }

    /// The pool rules check (库况检查) of every branch on `date` (default today), with the
    /// rules of the config's `[pool.rules]`.
    pub async fn check(
        &self,
        date: Option<NaiveDate>,
    ) -> Result<crate::core::pool_check::CheckReport> {
        let rows = self
            .list(&PeopleFilter {
                unit: None,
                tier: None,
                include_removed: false,
            })
            .await?;
        Ok(crate::core::pool_check::check(
            rows.iter().map(|r| &r.person),
            &self.catalog.directory,
            &self.catalog.config.pool.rules,
            &self.tiers,
            date.unwrap_or(self.today),
        ))
    }

    /// People by filter.
    pub async fn list(&self, filter: &PeopleFilter) -> Result<Vec<PersonRow>> {
        Ok(self.engine.store().people(filter).await?)
    }

    /// One person by id.
    pub async fn get(&self, id: i64) -> Result<PersonRow> {
        self.engine
            .store()
            .person(id)
            .await?
            .ok_or_else(|| PoolError::NotFound(format!("person {id}")))
    }

    /// One person by id or by a name only one person has.
    pub async fn find(&self, reference: &str) -> Result<PersonRow> {
        let r = reference.trim();
        if let Ok(id) = r.parse::<i64>() {
            return self.get(id).await;
        }
        let all = self
            .list(&PeopleFilter {
                include_removed: true,
                ..PeopleFilter::default()
            })
            .await?;
        let mut same: Vec<PersonRow> = all.into_iter().filter(|p| p.person.name == r).collect();
        match same.len() {
            0 => Err(PoolError::NotFound(format!("person named `{r}`"))),
            1 => Ok(same.remove(0)),
            _ => Err(PoolError::Ambiguous(format!(
                "{} people are named `{r}` (ids {}); give the id",
                same.len(),
                same.iter()
                    .map(|p| p.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Add a person from field texts.
    pub async fn add(&self, fields: &[(Field, String)], actor: &str) -> Result<PersonRow> {
        let person = Person::from_fields(fields, self.ctx()).map_err(PoolError::Invalid)?;
        let who = self.who(actor, "person.add");
        let (ids, _) = self
            .engine
            .store()
            .write_people(std::slice::from_ref(&person), &[], &who)
            .await?;
        let id = ids.first().copied().unwrap_or_default();
        self.get(id).await
    }

    /// Change fields of a person (set in field order; an empty text clears an optional
    /// field). Every refused value is reported and nothing is changed.
    pub async fn edit(
        &self,
        id: i64,
        fields: &[(Field, String)],
        actor: &str,
    ) -> Result<PersonRow> {
        let row = self.get(id).await?;
        let mut person = row.person.clone();
        let mut sorted: Vec<&(Field, String)> = fields.iter().collect();
        sorted.sort_by_key(|(f, _)| *f);
        let mut errors = Vec::new();
        for (f, v) in sorted {
            if let Err(r) = person.set(*f, v, self.ctx()) {
                errors.push((*f, r));
            }
        }
        errors.extend(person.check());
        if !errors.is_empty() {
            return Err(PoolError::Invalid(errors));
        }
        let who = self.who(actor, "person.edit");
        Ok(self.engine.store().update_person(id, &person, &who).await?)
    }

    /// 调整出库: take a person out of the pool with a reason, on `date` (default today).
    pub async fn remove(
        &self,
        id: i64,
        reason: &str,
        date: Option<NaiveDate>,
        actor: &str,
    ) -> Result<PersonRow> {
        let row = self.get(id).await?;
        if reason.trim().is_empty() {
            return Err(PoolError::Invalid(vec![(
                Field::RemovedReason,
                Reason::new("调整出库须填写原因", "a removal needs a reason"),
            )]));
        }
        let mut person = row.person;
        person.status = PersonStatus::Removed;
        person.removed_reason = Some(reason.trim().to_string());
        person.removed_at = Some(date.unwrap_or(self.today));
        let who = self.who(actor, "person.remove");
        Ok(self.engine.store().update_person(id, &person, &who).await?)
    }

    /// Import a roster. A person with the same name, unit and birth as one in the pool
    /// (removed ones included) is updated with the file's columns, not added again. Any bad
    /// row refuses the whole file unless `skip_bad`; a problem with the file or a sheet as
    /// a whole (a missing column) always does.
    ///
    /// The file is read and written [`IMPORT_SLICE`] rows at a time inside one transaction
    /// (a city's roster is 100,000 rows): only a slice of people and their audit entries
    /// are in memory at once. The transaction is committed only once the whole file has
    /// been read without a problem that refuses it; otherwise it is rolled back, so an
    /// import is still all or nothing. Once a refusing problem is found, nothing more is
    /// written and the rest of the file is only read for its problems.
    pub async fn import(
        &self,
        bytes: &[u8],
        skip_bad: bool,
        dry_run: bool,
        actor: &str,
    ) -> Result<ImportReport> {
        let store = self.engine.store();
        let index: HashMap<(String, String, NaiveDate), i64> = store
            .people_keys()
            .await?
            .into_iter()
            .map(|(id, name, unit, birth)| ((name, unit, birth), id))
            .collect();
        let mut scan = roster::Scanner::new(bytes, Format::sniff(bytes), self.ctx());
        let mut writer = if dry_run || (!skip_bad && scan.has_problems()) {
            None
        } else {
            Some(store.begin_people(self.who(actor, "person.import")).await?)
        };
        let mut report = ImportReport {
            dry_run,
            ..ImportReport::default()
        };
        let mut slice: Vec<(Option<i64>, RosterRow)> = Vec::with_capacity(IMPORT_SLICE);
        while let Some(row) = scan.next_row() {
            if !skip_bad && scan.has_problems() {
                // Refused: what was written is rolled back, the rest only read.
                writer = None;
                slice.clear();
                continue;
            }
            let key = (
                row.person.name.clone(),
                row.person.unit.clone(),
                row.person.birth,
            );
            slice.push((index.get(&key).copied(), row));
            if slice.len() == IMPORT_SLICE {
                self.import_slice(&mut slice, writer.as_deref_mut(), &mut report)
                    .await?;
            }
        }
        let refused = !skip_bad && scan.has_problems();
        if !refused {
            self.import_slice(&mut slice, writer.as_deref_mut(), &mut report)
                .await?;
        }
        let (problems, warnings) = scan.finish();
        if problems.iter().any(|p| p.row.is_none()) || (!skip_bad && !problems.is_empty()) {
            // `writer` is dropped unused: its transaction is rolled back.
            return Err(PoolError::BadRoster(problems));
        }
        if let Some(w) = writer {
            w.commit().await?;
        }
        report.skipped = problems;
        report.warnings = warnings;
        Ok(report)
    }

    /// Count (and unless a dry run, write) a slice of an import's good rows: `id` is the
    /// person in the pool a row matches.
    async fn import_slice(
        &self,
        slice: &mut Vec<(Option<i64>, RosterRow)>,
        mut writer: Option<&mut (dyn PeopleWriter + '_)>,
        report: &mut ImportReport,
    ) -> Result<()> {
        let mut adds = Vec::new();
        for (id, row) in slice.drain(..) {
            let Some(id) = id else {
                report.added += 1;
                adds.push(row.person);
                continue;
            };
            let old = match writer.as_deref_mut() {
                Some(w) => w.person(id).await?,
                None => self.engine.store().person(id).await?,
            }
            .ok_or_else(|| PoolError::NotFound(format!("person {id}")))?;
            let mut new = old.person.clone();
            for f in &row.given {
                new.copy_field(&row.person, *f);
            }
            if old.person.changes(&new).is_empty() {
                report.unchanged += 1;
            } else {
                report.updated += 1;
                if let Some(w) = writer.as_deref_mut() {
                    w.update(id, &new).await?;
                }
            }
        }
        if let Some(w) = writer
            && !adds.is_empty()
        {
            w.add(&adds).await?;
        }
        Ok(())
    }

    /// The whole pool (removed people too) as the offices' workbook.
    pub async fn export(&self) -> Result<Vec<u8>> {
        let people: Vec<Person> = self
            .list(&PeopleFilter {
                include_removed: true,
                ..PeopleFilter::default()
            })
            .await?
            .into_iter()
            .map(|r| r.person)
            .collect();
        Ok(roster::write_xlsx(
            &people,
            &self.catalog.directory,
            &self.tiers,
        )?)
    }

    /// The event kinds that may be recorded: those the loaded workflows declare, id and title.
    /// When no loaded workflow declares any, a fixed list (职务变动, 考核结果, 违纪问题,
    /// 信访举报, 谈心谈话, 其他) so that events can still be kept.
    pub fn event_kinds(&self) -> Vec<(String, String)> {
        let declared =
            crate::core::pool::event_kinds(self.catalog.workflows.values().map(|w| &w.workflow));
        if !declared.is_empty() {
            return declared;
        }
        [
            ("post_change", "职务变动"),
            ("assessment_result", "考核结果"),
            ("discipline", "违纪问题"),
            ("complaint", "信访举报"),
            ("talk", "谈心谈话"),
            ("other", "其他"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    /// The event kinds a branch may report on its signed page, (id, title).
    pub fn branch_event_kinds(&self) -> Vec<(String, String)> {
        crate::core::pool::branch_event_kinds(self.catalog.workflows.values().map(|w| &w.workflow))
    }

    /// An event kind by id or title.
    pub fn event_kind(&self, text: &str) -> Result<String> {
        let t = text.trim();
        let kinds = self.event_kinds();
        kinds
            .iter()
            .find(|(id, title)| id == t || title == t)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| PoolError::UnknownKind {
                kind: t.to_string(),
                known: kinds
                    .iter()
                    .map(|(id, title)| format!("{id} ({title})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Record an event about a person (by id or unique name).
    pub async fn record_event(
        &self,
        person: &str,
        kind: &str,
        date: NaiveDate,
        note: Option<String>,
        actor: &str,
    ) -> Result<Recorded> {
        let kind = self.event_kind(kind)?;
        let p = self.find(person).await?;
        let who = self.who(actor, "event.record");
        let e = NewEvent {
            person_id: p.id,
            kind,
            date,
            note: note.filter(|n| !n.trim().is_empty()),
        };
        let event = self.engine.store().record_event(&e, &who).await?;
        // Each running round whose workflow owes a task when this happens gets one for
        // this occurrence (idempotent per event id, so recording is safe to repeat).
        let owed = self
            .engine
            .event_occurred(&Occurrence {
                id: event.id,
                kind: event.kind.clone(),
                date: event.date,
                unit: p.person.unit.clone(),
                person: Some((p.id, p.person.name.clone())),
                person_tier: Some(p.person.tier.get()),
                actor: actor.to_string(),
            })
            .await?;
        Ok(Recorded { event, owed })
    }

    /// Recorded events.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRow>> {
        Ok(self.engine.store().events(filter).await?)
    }

    /// The title of an event kind (the id when no workflow declares it any more).
    pub fn kind_title(&self, kind: &str) -> String {
        self.event_kinds()
            .into_iter()
            .find(|(id, _)| id == kind)
            .map(|(_, t)| t)
            .unwrap_or_else(|| kind.to_string())
    }

    /// A person as JSON (the API's shape): the record, its id, the unit's and tier's names.
    pub fn person_json(&self, r: &PersonRow) -> serde_json::Value {
        let mut v = serde_json::to_value(&r.person).unwrap_or_default();
        v["id"] = r.id.into();
        v["unit_name"] = self
            .catalog
            .directory
            .unit(&r.person.unit)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| r.person.unit.clone())
            .into();
        v["tier_name"] = self.tiers.name(r.person.tier).into();
        v["created_at"] = crate::engine::from_ms(r.created_at).to_rfc3339().into();
        v["updated_at"] = crate::engine::from_ms(r.updated_at).to_rfc3339().into();
        v
    }

    /// An event as JSON.
    pub fn event_json(&self, e: &EventRow) -> serde_json::Value {
        serde_json::json!({
            "id": e.id, "person": e.person_id, "kind": e.kind, "kind_title": self.kind_title(&e.kind),
            "date": e.date, "note": e.note, "recorded_by": e.recorded_by,
            "recorded_at": crate::engine::from_ms(e.recorded_at).to_rfc3339(),
        })
    }
}
